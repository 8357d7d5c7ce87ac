"""`python -m lm_keras.train`: runs lm_keras.commands.train (see there)."""

from lm_keras.commands.train import run

if __name__ == "__main__":
    run()
