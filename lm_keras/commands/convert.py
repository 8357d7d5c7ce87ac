"""Convert pre-trained GPT-2: `python -m lm_keras.convert --source=DIR --model_dir=OUT`.

`--source` is a local Hugging Face GPT-2 folder (config.json, model.safetensors,
vocab.json, merges.txt) or a keras-hub preset folder; OUT becomes an ordinary model
directory (config.json, tokenizer/, checkpoints/), so `train --init_from=OUT`,
`evaluate`, `generate`, `export`, `serve` and `lm_keras.interpret` work on it.
"""

from absl import flags

from lm_keras.commands import cli

FLAGS = flags.FLAGS


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("source", None, "a Hugging Face GPT-2 folder or a keras-hub GPT-2 preset folder")
    flags.DEFINE_string("model_dir", None, "the new model directory to write (must not exist, or be empty)")


def main(argv):
    cli.reject_arguments(argv)
    if not FLAGS.source:
        cli.fail(
            "--source is required: a Hugging Face GPT-2 folder or a keras-hub preset folder", cli.EXIT_USAGE
        )
    if not FLAGS.model_dir:
        cli.fail("--model_dir is required: the model directory to write", cli.EXIT_USAGE)
    from lm_keras.conversion.model_dir import check_source
    from lm_keras.errors import UserError
    from lm_keras.model_dir import check_new

    # Both paths are refused before TensorFlow loads (seconds); convert() checks them again.
    try:
        check_source(FLAGS.source)
        check_new(FLAGS.model_dir, "--model_dir")
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    cli.quiet_tensorflow()
    from lm_keras.conversion import convert

    try:
        convert(FLAGS.source, FLAGS.model_dir, log=lambda line: print(line, flush=True))
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    print(
        f"converted {FLAGS.source} into {FLAGS.model_dir}; fine-tune it with "
        f"python -m lm_keras.train --init_from={FLAGS.model_dir} --model_dir=NEW_DIR",
        flush=True,
    )


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
