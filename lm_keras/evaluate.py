"""`python -m lm_keras.evaluate`: runs lm_keras.commands.evaluate (see there)."""

from lm_keras.commands.evaluate import run

if __name__ == "__main__":
    run()
