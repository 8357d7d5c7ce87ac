"""Write a task's examples: `python -m lm_keras.tasks --task=NAME --output_dir=DIR [flags]`.

Writes DIR/train.jsonl, validation.jsonl and test.jsonl, one {"prompt": ..., "completion": ...}
object a line, and DIR/task.json. The same flags give the same bytes; no prompt is in two
splits; every example has len(prompt) + len(completion) <= --max_chars. Tasks:
  addition   minGPT's 2-digit addition, the sum written backwards (the sanity task)
  speaker    question answering: who says this line of tiny Shakespeare?
  name       extraction: the first proper name in a line of tiny Shakespeare
  pig_latin  translation: a phrase of tiny Shakespeare into Pig Latin
"""

from absl import flags

from lm_keras.commands import cli
from lm_keras.tasks import DEFAULT_COUNTS, DEFAULT_MAX_CHARS, DEFAULT_SEED, SPLITS, TASKS

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_enum("task", None, list(TASKS), "the task to write")
    flags.DEFINE_string(
        "output_dir", None, "the folder to write (new, empty, or an earlier output of this --task and --seed)"
    )
    flags.DEFINE_integer("seed", DEFAULT_SEED, "shuffles the task's examples into the splits")
    for split in SPLITS:
        flags.DEFINE_integer(f"{split}_examples", DEFAULT_COUNTS[split], f"examples in {split}.jsonl")
    flags.DEFINE_integer(
        "max_chars",
        DEFAULT_MAX_CHARS,
        "the most characters of an example's prompt and completion together (below the model's context)",
    )


def main(argv):
    cli.reject_arguments(argv)
    for name in ("task", "output_dir"):
        if not FLAGS[name].value:
            cli.fail(f"--{name} is required (see --helpshort)", cli.EXIT_USAGE)
    for name in (*(f"{split}_examples" for split in SPLITS), "max_chars"):
        if FLAGS[name].value < 1:
            cli.fail(f"--{name} must be >= 1; received {name}={FLAGS[name].value}", cli.EXIT_USAGE)
    from lm_keras import tasks
    from lm_keras.errors import UserError

    try:
        tasks.check_output_dir(FLAGS.output_dir, FLAGS.task, FLAGS.seed)
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    counts = {split: FLAGS[f"{split}_examples"].value for split in SPLITS}
    try:
        splits, info = tasks.make_splits(FLAGS.task, FLAGS.seed, counts, FLAGS.max_chars)
    except UserError as e:  # the corpus cannot be read
        cli.fail(str(e), cli.EXIT_FAILURE)
    except ValueError as e:  # counts the task cannot give
        cli.fail(str(e), cli.EXIT_USAGE)
    tasks.write_splits(FLAGS.output_dir, splits, info)
    written = ", ".join(f"{n} {split}" for split, n in counts.items())
    print(f"wrote {written} examples of {FLAGS.task} to {FLAGS.output_dir}")


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
