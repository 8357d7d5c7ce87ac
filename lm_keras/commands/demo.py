"""The README's first command: train the default preset briefly, sample, export.

    python -m lm_keras.demo [--model_dir=runs/demo] [--max_steps=N]

It runs the same three command lines a user would type, printing each one first.
Without tiny Shakespeare (offline, no local copy) it falls back, visibly, to the
Python documentation that ships with the interpreter.
"""

import shlex
import subprocess
import sys

from absl import flags

from lm_keras.commands import cli

FLAGS = flags.FLAGS


def pick_corpus():
    from lm_keras.data import load_corpus
    from lm_keras.errors import UserError

    try:
        load_corpus("tiny_shakespeare")
        return "tiny_shakespeare", "ROMEO:"
    except UserError as e:
        print(
            f"tiny_shakespeare is not available ({e}).\n"
            "Falling back to --corpus=python_docs, the documentation shipped with Python.",
            flush=True,
        )
        return "python_docs", "The "


def step(*args):
    command = [sys.executable, "-m", *args]
    print("\n$ " + " ".join(shlex.quote(a) for a in ["python", *command[1:]]), flush=True)
    if subprocess.call(command) != 0:
        cli.fail(f"the demo stopped: `{' '.join(args[:1])}` failed (see above)", cli.EXIT_FAILURE)


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("model_dir", "runs/demo", "where the demo model is trained")
    flags.DEFINE_string("export_dir", "runs/demo_export", "where the SavedModel is exported")
    flags.DEFINE_integer("max_steps", 1000, "training steps of the default preset")


def main(argv):
    cli.reject_arguments(argv)
    cli.quiet_tensorflow()  # finding the corpus loads TensorFlow
    corpus, prompt = pick_corpus()
    step(
        "lm_keras.train",
        f"--model_dir={FLAGS.model_dir}",
        f"--corpus={corpus}",
        f"--max_steps={FLAGS.max_steps}",
        "--eval_every=250",
        "--log_every=100",
    )
    step(
        "lm_keras.generate",
        f"--model_dir={FLAGS.model_dir}",
        f"--prompt={prompt}",
        "--max_new_tokens=300",
        "--temperature=0.8",
        "--top_k=40",
        "--seed=1",
    )
    step("lm_keras.export", f"--model_dir={FLAGS.model_dir}", f"--export_dir={FLAGS.export_dir}")
    print(f"\nDone. Serve it with: python -m lm_keras.serve --export_dir={FLAGS.export_dir}", flush=True)


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
