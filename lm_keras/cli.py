"""What every command line shares: one-line errors, exit codes, quiet TensorFlow logs."""

import os
import sys

from absl import flags

EXIT_USAGE = 2  # bad flags or flag values, refused before TensorFlow loads
EXIT_FAILURE = 1  # bad input found while running (missing files, bad text, a diverged run)


def fail(message, code):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_flags(argv):
    """absl's flag parser, but a bad flag is one line on stderr and exit code 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{e} (see --helpshort)", EXIT_USAGE)


def quiet_tensorflow():
    """Keeps TensorFlow's C++ start-up chatter out of the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def explicit_flags(names):
    """{name: value} of the flags the user gave (on the command line or in a --flagfile)."""
    return {name: flags.FLAGS[name].value for name in names if flags.FLAGS[name].present}
