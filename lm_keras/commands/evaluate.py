"""Evaluate a trained model: `python -m lm_keras.evaluate --model_dir=DIR [--corpus=SPEC] [--split=val]`.

Scores the latest checkpoint on every target of a split (by default the validation
split of the run's own corpus) and prints one JSON object: loss in nats/token,
perplexity and bits per character.
"""

import json

from absl import flags

from lm_keras.commands import cli

FLAGS = flags.FLAGS


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("model_dir", None, "the trained run to evaluate")
    flags.DEFINE_string("corpus", None, "corpus to score (default: the run's own); a name or a path")
    flags.DEFINE_enum(
        "split",
        "val",
        ["val", "all"],
        "val: the last 10% of the text (the run's protocol); all: the whole text",
    )
    flags.DEFINE_integer("batch_size", 32, "windows per evaluation batch")
    flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA for the evaluation step")


def main(argv):
    cli.reject_arguments(argv)
    if not FLAGS.model_dir:
        cli.fail("--model_dir is required: the trained run to evaluate", cli.EXIT_USAGE)
    if FLAGS.batch_size <= 0:
        cli.fail(f"--batch_size must be > 0; received batch_size={FLAGS.batch_size}", cli.EXIT_USAGE)
    cli.quiet_tensorflow()
    from lm_keras.data import check_windows, load_corpus
    from lm_keras.errors import UserError
    from lm_keras.training.distribution import resolve_jit
    from lm_keras.training.model_dir import load_trained
    from lm_keras.training.trainer import full_evaluation, make_eval_step, view_of

    try:
        trained = load_trained(FLAGS.model_dir)
        cfg = trained.config
        corpus = load_corpus(FLAGS.corpus or cfg.data.corpus)
        text = corpus.split(cfg.data.val_fraction)[1] if FLAGS.split == "val" else corpus.text
        ids = trained.tokenizer.encode(text)
        check_windows(ids, cfg.model.seq_len, FLAGS.split, corpus.name)
        view = view_of(cfg.model.model)
        eval_step = make_eval_step(trained.model, view, resolve_jit(FLAGS.jit_compile, cfg.model.model))
        figures = full_evaluation(
            eval_step,
            trained.tokenizer,
            ids,
            text,
            view=view,
            seq_len=cfg.model.seq_len,
            batch_size=FLAGS.batch_size,
            vocab_size=cfg.model.vocab_size,
        )
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    print(
        json.dumps(
            {
                "model_dir": FLAGS.model_dir,
                "step": trained.step,
                "corpus": corpus.name,
                "split": FLAGS.split,
                **figures,
            },
            indent=2,
        )
    )


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
