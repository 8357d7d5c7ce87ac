"""Evaluate a trained model: `python -m lm_keras.evaluate --model_dir=DIR [--corpus=...] [--split=val]`.

Scores the latest checkpoint on a split (by default the validation split of the data
the run trained on) and prints one JSON object: loss in nats/token, perplexity, bits
per character, and how many targets were scored (`--eval_tokens` caps them).

`--corpus` takes a prepared dataset (made with the run's tokenizer: `python -m
lm_keras.prepare --tokenizer_from=MODEL_DIR ...`) or any corpus spec, which is then
prepared with the run's tokenizer into a temporary folder first.
"""

import json
import math
import sys
import tempfile

from absl import flags

from lm_keras.commands import cli

FLAGS = flags.FLAGS


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("model_dir", None, "the trained run to evaluate")
    flags.DEFINE_string(
        "corpus", None, "a prepared dataset or a corpus spec to score (default: the run's own data)"
    )
    flags.DEFINE_enum(
        "split", "val", ["val", "all"], "val: the validation split (the run's protocol); all: both splits"
    )
    flags.DEFINE_integer(
        "eval_tokens", None, "targets scored per split, from its start; 0 for all (default: the run's)"
    )
    flags.DEFINE_integer("batch_size", 32, "windows per evaluation batch")
    flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA for the evaluation step")
    flags.DEFINE_string("tfds_data_dir", "", "where TFDS datasets live (for --corpus=tfds:...)")


def main(argv):
    cli.reject_arguments(argv)
    if not FLAGS.model_dir:
        cli.fail("--model_dir is required: the trained run to evaluate", cli.EXIT_USAGE)
    if FLAGS.batch_size <= 0:
        cli.fail(f"--batch_size must be > 0; received batch_size={FLAGS.batch_size}", cli.EXIT_USAGE)
    if FLAGS.eval_tokens is not None and FLAGS.eval_tokens < 0:
        cli.fail(f"--eval_tokens must be >= 0; received eval_tokens={FLAGS.eval_tokens}", cli.EXIT_USAGE)
    cli.check_model_dir(FLAGS.model_dir)
    cli.quiet_tensorflow()
    from lm_keras.errors import UserError

    try:
        with tempfile.TemporaryDirectory(prefix="lm_keras_evaluate_") as scratch:
            figures = _evaluate(scratch)
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    print(json.dumps(figures, indent=2))


def _evaluate(scratch):
    from lm_keras.data import check_windows, shards
    from lm_keras.data.pipeline import shard_errors
    from lm_keras.data.prepare import prepare
    from lm_keras.errors import UserError
    from lm_keras.training import model_dir as md
    from lm_keras.training.distribution import resolve_jit
    from lm_keras.training.evaluation import full_evaluation, make_eval_step, view_of

    trained = md.load_trained(FLAGS.model_dir)
    cfg, raw = trained.config, md.read_config(FLAGS.model_dir)[1]
    own_tokenizer = f"{FLAGS.model_dir}/{md.TOKENIZER}"
    own_data = f"{FLAGS.model_dir}/{md.DATA}"
    if not shards.is_prepared(own_data):  # trained on a dataset outside the model directory
        own_data = raw.get("dataset", {}).get("path") or cfg.data.corpus
    corpus = FLAGS.corpus or own_data
    persistent = shards.is_prepared(corpus)
    if persistent:
        dataset = shards.PreparedDataset(corpus)
        if shards.tokenizer_sha256(dataset.tokenizer_dir) != shards.tokenizer_sha256(own_tokenizer):
            raise UserError(
                f"the dataset {corpus} was prepared with another tokenizer than {FLAGS.model_dir}'s: "
                f"prepare it with --tokenizer_from={FLAGS.model_dir}"
            )
    else:
        dataset = prepare(
            corpus,
            f"{scratch}/data",
            tokenizer_from=own_tokenizer,
            val_fraction=cfg.data.val_fraction,
            tfds_data_dir=FLAGS.tfds_data_dir or cfg.data.tfds_data_dir,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    view = view_of(cfg.model.model)
    eval_step = make_eval_step(trained.model, view, resolve_jit(FLAGS.jit_compile, cfg.model.model))
    eval_tokens = cfg.train.eval_tokens if FLAGS.eval_tokens is None else FLAGS.eval_tokens
    splits = [dataset.val] if FLAGS.split == "val" else [dataset.train, dataset.val]
    parts = []
    for split in splits:
        check_windows(split, cfg.model.seq_len, split.name, dataset.manifest["corpus"]["name"])
        with shard_errors():
            parts.append(
                full_evaluation(
                    eval_step,
                    split,
                    trained.tokenizer,
                    view=view,
                    seq_len=cfg.model.seq_len,
                    batch_size=FLAGS.batch_size,
                    vocab_size=cfg.model.vocab_size,
                    max_targets=eval_tokens,
                )
            )
    figures = _combined(parts)
    return {
        "model_dir": FLAGS.model_dir,
        "step": trained.step,
        "corpus": dataset.manifest["corpus"]["name"],
        "dataset": str(dataset.path) if persistent else None,  # None: prepared for this run only
        "split": FLAGS.split,
        **figures,
    }


def _combined(parts):
    """One set of figures over several splits' evaluations: their nats and characters summed."""
    if len(parts) == 1:
        return parts[0]
    nats = sum(p["val_loss"] * p["val_tokens"] for p in parts)
    tokens = sum(p["val_tokens"] for p in parts)
    chars = sum(p["val_chars"] for p in parts)
    return {
        "val_loss": nats / tokens,
        "val_perplexity": math.exp(nats / tokens),
        "val_bits_per_char": nats / math.log(2.0) / chars,
        "val_tokens": tokens,
        "val_chars": chars,
        "val_split_targets": sum(p["val_split_targets"] for p in parts),
        "eval_tokens": parts[0]["eval_tokens"],
    }


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
