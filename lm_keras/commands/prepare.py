"""Prepare a corpus once: `python -m lm_keras.prepare --corpus=SPEC --output_dir=DIR [flags]`.

Streams the corpus into DIR (in memory that does not grow with it): the tokenizer,
token shards and manifest.json (see `lm_keras.data.shards`). A --corpus=FILE.jsonl of
task examples (see `lm_keras.data.examples`) gets a loss mask beside its ids and an
example index; --validation_data=FILE.jsonl is then its validation split. Train on it with
`python -m lm_keras.train --corpus=DIR`. Killed or failed (a full disk), it resumes
when rerun with the same flags, and writes the same bytes as a run that never stopped.
"""

from absl import flags

from lm_keras import config as config_lib
from lm_keras.commands import cli

FLAGS = flags.FLAGS


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --corpus, and absl allows one definition each)."""
    flags.DEFINE_string(
        "corpus",
        None,
        "tiny_shakespeare, python_docs, a UTF-8 text file, a directory of .txt files, a glob, "
        "or tfds:NAME[/CONFIG][:SPLIT]; or FILE.jsonl of task examples ({text}, {prompt, completion} or "
        "{messages}, one format per file)",
    )
    flags.DEFINE_string(
        "validation_data",
        "",
        "with --corpus=FILE.jsonl: a .jsonl file of validation examples (default: the last --val_fraction "
        "of the examples)",
    )
    flags.DEFINE_string("output_dir", None, "the dataset's folder (new, or an unfinished run of these flags)")
    flags.DEFINE_enum("tokenizer", "char", list(config_lib.TOKENIZERS), "the tokenizer kind to train")
    flags.DEFINE_integer("vocab_size", 0, "subword vocabulary size (not for char)")
    flags.DEFINE_float(
        "val_fraction",
        0.1,
        "the share of the characters that validates (whole lines, at the end); of a .jsonl corpus, "
        "the share of its examples (whole, at the end)",
    )
    flags.DEFINE_string(
        "tokenizer_from", "", "encode with this tokenizer (a model directory, dataset or tokenizer folder)"
    )
    flags.DEFINE_integer("tokens_per_shard", 1 << 17, "token ids per shard file")
    flags.DEFINE_string("tfds_data_dir", "", "where TFDS datasets live (for --corpus=tfds:...)")


def main(argv):
    cli.reject_arguments(argv)
    for name in ("corpus", "output_dir"):
        if not FLAGS[name].value:
            cli.fail(f"--{name} is required (see --helpshort)", cli.EXIT_USAGE)
    if FLAGS.tokenizer_from and (FLAGS["tokenizer"].present or FLAGS["vocab_size"].present):
        cli.fail("--tokenizer_from fixes the tokenizer: drop --tokenizer and --vocab_size", cli.EXIT_USAGE)
    if FLAGS.tokens_per_shard < 2:
        cli.fail(
            f"--tokens_per_shard must be >= 2; received tokens_per_shard={FLAGS.tokens_per_shard}",
            cli.EXIT_USAGE,
        )
    try:
        if not FLAGS.tokenizer_from:
            config_lib.DataConfig(
                corpus=FLAGS.corpus,
                tokenizer=FLAGS.tokenizer,
                vocab_size=FLAGS.vocab_size,
                val_fraction=FLAGS.val_fraction,
                validation_data=FLAGS.validation_data,
            )
        elif not 0.0 < FLAGS.val_fraction < 1.0:
            raise ValueError(f"--val_fraction must be in (0, 1); received {FLAGS.val_fraction}")
        else:
            config_lib.DataConfig(corpus=FLAGS.corpus, validation_data=FLAGS.validation_data)
    except ValueError as e:
        cli.fail(str(e), cli.EXIT_USAGE)
    if FLAGS.corpus.startswith("tfds:"):
        cli.quiet_tensorflow()  # TFDS loads TensorFlow; nothing else here does
    from lm_keras.data.prepare import prepare
    from lm_keras.errors import UserError

    try:
        prepare(
            FLAGS.corpus,
            FLAGS.output_dir,
            tokenizer=FLAGS.tokenizer,
            vocab_size=FLAGS.vocab_size,
            val_fraction=FLAGS.val_fraction,
            tokenizer_from=FLAGS.tokenizer_from,
            tokens_per_shard=FLAGS.tokens_per_shard,
            tfds_data_dir=FLAGS.tfds_data_dir,
            validation_data=FLAGS.validation_data,
            log=lambda line: print(line, flush=True),
        )
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
