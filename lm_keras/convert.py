"""`python -m lm_keras.convert`: runs lm_keras.commands.convert (see there)."""

from lm_keras.commands.convert import run

if __name__ == "__main__":
    run()
