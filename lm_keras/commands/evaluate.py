"""Evaluate a trained model: `python -m lm_keras.evaluate --model_dir=DIR [--corpus=...] [--split=val]`.

Scores the latest checkpoint on a split (by default the validation split of the data
the run trained on) and prints one JSON object: loss in nats/token, perplexity, bits
per character, and how many targets were scored (`--eval_tokens` caps them), each named
after its split (`val_loss`; `--split=all` adds `train_loss` and the rest beside them).

`--corpus` takes a prepared dataset (made with the run's tokenizer: `python -m
lm_keras.prepare --tokenizer_from=MODEL_DIR ...`) or any corpus spec, which is then
prepared with the run's tokenizer into a temporary folder first.

A task: `--corpus=test.jsonl` (prompt/completion or messages examples) scores every
example of the file: `completion_loss` (nats per completion token, end-of-text included),
and `exact_match` and `f1` (SQuAD's normalisation, in [0, 1]) of greedy answers that stop
at the end-of-text id, with `examples`, `prompts_cut` (prompts longer than the context,
cut from the left) and `stopped` (answers that ended with end-of-text). Without --corpus,
a run trained on examples is scored on its --validation_data file. `--predictions=FILE.jsonl`
writes each prompt, reference and output.
"""

import json
import pathlib
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
        "split",
        "val",
        ["val", "all"],
        "val: the validation split (the run's protocol); all: the training split's figures too",
    )
    flags.DEFINE_integer(
        "eval_tokens", None, "targets scored per split, from its start; 0 for all (default: the run's)"
    )
    flags.DEFINE_integer("batch_size", 32, "windows per evaluation batch")
    flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA for the evaluation step")
    flags.DEFINE_string("tfds_data_dir", "", "where TFDS datasets live (for --corpus=tfds:...)")
    flags.DEFINE_string(
        "predictions", None, "with a .jsonl corpus of examples: write each prompt, reference and output here"
    )
    flags.DEFINE_integer(
        "max_new_tokens",
        0,
        "with examples: the longest answer generated (0: the longest reference's tokens + 8)",
    )


def main(argv):
    cli.reject_arguments(argv)
    if not FLAGS.model_dir:
        cli.fail("--model_dir is required: the trained run to evaluate", cli.EXIT_USAGE)
    from lm_keras.config import TrainConfig
    from lm_keras.errors import UserError

    try:  # the training settings' own rules
        TrainConfig(batch_size=FLAGS.batch_size, eval_tokens=FLAGS.eval_tokens or 0)
    except UserError as e:
        cli.fail(str(e), cli.EXIT_USAGE)
    if FLAGS.max_new_tokens < 0:
        cli.fail(
            f"--max_new_tokens must be >= 0; received max_new_tokens={FLAGS.max_new_tokens}", cli.EXIT_USAGE
        )
    if FLAGS.predictions and not (FLAGS.corpus or "").lower().endswith(".jsonl"):
        cli.fail(
            "--predictions needs --corpus=FILE.jsonl, the examples whose answers it writes", cli.EXIT_USAGE
        )
    cli.check_model_dir(FLAGS.model_dir)
    cli.quiet_tensorflow()

    try:
        with tempfile.TemporaryDirectory(prefix="lm_keras_evaluate_") as scratch:
            figures = _evaluate(scratch)
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    print(json.dumps(figures, indent=2))


def _evaluate(scratch):
    from lm_keras import model_dir as md
    from lm_keras.data import check_windows, shards
    from lm_keras.data.pipeline import shard_errors
    from lm_keras.data.prepare import prepare
    from lm_keras.errors import UserError
    from lm_keras.families import family, resolve_jit
    from lm_keras.training.evaluation import full_evaluation, make_eval_step

    trained = md.load_trained(FLAGS.model_dir)
    cfg = trained.config
    own_tokenizer = pathlib.Path(FLAGS.model_dir) / md.TOKENIZER
    if (FLAGS.corpus or "").lower().endswith(".jsonl") or (not FLAGS.corpus and cfg.data.validation_data):
        return _score_task(trained, FLAGS.corpus or cfg.data.validation_data)
    own_dataset = None if FLAGS.corpus else md.run_dataset(FLAGS.model_dir)
    corpus = FLAGS.corpus or cfg.data.corpus
    persistent = own_dataset is not None or shards.is_prepared(corpus)
    if persistent:
        dataset = own_dataset or shards.PreparedDataset(corpus)
        if shards.tokenizer_sha256(dataset.tokenizer_dir) != shards.tokenizer_sha256(own_tokenizer):
            raise UserError(
                f"the dataset {dataset.path} was prepared with another tokenizer than {FLAGS.model_dir}'s: "
                f"prepare it with --tokenizer_from={FLAGS.model_dir}"
            )
    else:
        dataset = prepare(
            corpus,
            f"{scratch}/data",
            tokenizer_from=str(own_tokenizer),
            val_fraction=cfg.data.val_fraction,
            tfds_data_dir=FLAGS.tfds_data_dir or cfg.data.tfds_data_dir,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    view = family(cfg.model.model).view
    eval_step = make_eval_step(trained.model, view, resolve_jit(FLAGS.jit_compile, cfg.model.model))
    eval_tokens = cfg.train.eval_tokens if FLAGS.eval_tokens is None else FLAGS.eval_tokens
    splits = [dataset.val] if FLAGS.split == "val" else [dataset.train, dataset.val]
    figures = {}
    for split in splits:
        check_windows(split, cfg.model.seq_len, split.name, dataset.manifest["corpus"]["name"])
        with shard_errors():
            scored = full_evaluation(
                eval_step,
                split,
                trained.tokenizer,
                view=view,
                seq_len=cfg.model.seq_len,
                batch_size=FLAGS.batch_size,
                vocab_size=cfg.model.vocab_size,
                max_targets=eval_tokens,
            )
        # full_evaluation names its figures val_*: each split's are named after it
        figures.update({key.replace("val_", f"{split.name}_", 1): value for key, value in scored.items()})
    return {
        "model_dir": FLAGS.model_dir,
        "step": trained.step,
        "corpus": dataset.manifest["corpus"]["name"],
        "dataset": str(dataset.path) if persistent else None,  # None: prepared for this run only
        "split": FLAGS.split,
        **figures,
    }


def _score_task(trained, path):
    """The task figures of a .jsonl file of examples: completion loss, exact match and F1."""
    from lm_keras.data.examples import check_example_lengths, encode_file
    from lm_keras.data.pipeline import example_eval_dataset
    from lm_keras.families import family, resolve_jit
    from lm_keras.files import write_text_atomic
    from lm_keras.training.evaluation import evaluate, make_eval_step
    from lm_keras.training.scoring import score_file

    cfg = trained.config
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    # A test file is scored whole and held in memory: no dataset is prepared for it.
    examples_split = encode_file(path, trained.tokenizer.with_end_of_text())
    check_example_lengths(examples_split, cfg.model.seq_len)
    view = family(cfg.model.model).view
    eval_step = make_eval_step(trained.model, view, resolve_jit(FLAGS.jit_compile, cfg.model.model))
    ds = example_eval_dataset(
        examples_split,
        seq_len=cfg.model.seq_len,
        batch_size=FLAGS.batch_size,
        view=view,
        vocab_size=cfg.model.vocab_size,
    )
    total, count = evaluate(eval_step, ds)
    figures, predictions = score_file(
        trained.model,
        trained.tokenizer,
        path,
        batch_size=FLAGS.batch_size,
        max_new_tokens=FLAGS.max_new_tokens,
        log=progress,
    )
    if FLAGS.predictions:
        lines = [json.dumps(p, ensure_ascii=False) + "\n" for p in predictions]
        write_text_atomic(FLAGS.predictions, "".join(lines))
    return {
        "model_dir": FLAGS.model_dir,
        "step": trained.step,
        "corpus": path,
        "completion_loss": total / max(count, 1.0),
        "completion_tokens": int(count),
        **figures,
    }


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
