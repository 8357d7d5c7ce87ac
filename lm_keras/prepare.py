"""`python -m lm_keras.prepare`: runs lm_keras.commands.prepare (see there)."""

from lm_keras.commands.prepare import run

if __name__ == "__main__":
    run()
