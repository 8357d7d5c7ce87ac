"""`python -m lm_keras`: lists the command lines (`lm_keras.commands.COMMANDS`)."""

import sys

from lm_keras import __version__
from lm_keras.commands import COMMANDS


def main(argv):
    if argv and argv[0] not in ("-h", "--help", "--helpshort"):
        print(
            f"error: python -m lm_keras takes no arguments (received {argv}); "
            f"run a command as python -m lm_keras.COMMAND",
            file=sys.stderr,
        )
        return 2
    width = max(map(len, COMMANDS))
    print(f"lm_keras {__version__}: the commands (python -m lm_keras.COMMAND, or lm-keras-COMMAND)\n")
    for name, purpose in COMMANDS.items():
        module = f"lm_keras.{name}"
        print(f"  python -m {module:<{width + 9}}  lm-keras-{name:<{width}}  {purpose}")
    print("\nEach one's --helpshort lists its flags and --help says what it does.")
    print("Their code: lm_keras.commands.COMMAND.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
