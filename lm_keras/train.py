"""Train a language model: `python -m lm_keras.train --model_dir=DIR [--preset=NAME] [flags]`.

Flags override the preset. Rerunning the same command resumes from the latest
checkpoint. `--init_from=DIR` fine-tunes another run's weights on a new corpus.
"""

from absl import app, flags

from lm_keras import cli
from lm_keras import config as config_lib

FLAGS = flags.FLAGS
_TYPES = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string,
          bool: flags.DEFINE_bool}
_CHOICES = {
    "model": config_lib.MODELS, "tokenizer": config_lib.TOKENIZERS, "position": config_lib.POSITIONS,
    "jit_compile": config_lib.JIT_CHOICES, "mixed_precision": config_lib.PRECISIONS,
    "strategy": config_lib.STRATEGIES, "optimizer": config_lib.OPTIMIZERS, "schedule": config_lib.SCHEDULES,
}
_HELP = {
    "model": "model family", "corpus": "tiny_shakespeare, python_docs, or a path/dir/glob of UTF-8 text",
    "tokenizer": "char, or SentencePiece bpe/unigram", "vocab_size": "SentencePiece vocabulary size",
    "seq_len": "context length T", "hidden_dim": "Transformer width / LSTM units",
    "init_from": "fine-tune from this model directory's weights (keeps its architecture and tokenizer)",
    "jit_compile": "XLA: auto picks what is faster for the model and device",
    "strategy": "tf.distribute strategy; multi_worker reads TF_CONFIG", "tpu": "TPU name or address",
    "deterministic": "deterministic ops: a resumed run ends with the same weights",
    "checkpoint_every": "steps between checkpoints", "eval_batches": "batches per periodic estimate",
}

flags.DEFINE_string("model_dir", None, "where the run lives (config, tokenizer, checkpoints, metrics)")
flags.DEFINE_enum("preset", config_lib.DEFAULT_PRESET, list(config_lib.PRESETS), "starting configuration")
for _name, _type in config_lib.FLAG_TYPES.items():
    _help = _HELP.get(_name, _name.replace("_", " ")) + " (default: the preset's)"
    if _name in _CHOICES:
        flags.DEFINE_enum(_name, None, list(_CHOICES[_name]), _help)
    else:
        _TYPES[_type](_name, None, _help)


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}: every option is a --flag (see --helpshort)", cli.EXIT_USAGE)
    if not FLAGS.model_dir:
        cli.fail("--model_dir is required: the directory the run writes to (and resumes from)", cli.EXIT_USAGE)
    from lm_keras.errors import UserError
    from lm_keras.training.run_config import resolve_config

    overrides = cli.explicit_flags(config_lib.FLAG_SECTIONS)
    try:
        config, preset = resolve_config(FLAGS.model_dir, FLAGS.preset, overrides, FLAGS["preset"].present)
    except (UserError, ValueError) as e:
        cli.fail(str(e), cli.EXIT_USAGE)

    cli.quiet_tensorflow()
    from lm_keras.training.trainer import Trainer

    try:
        Trainer(config, FLAGS.model_dir, preset=preset).run()
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)


def run():
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
