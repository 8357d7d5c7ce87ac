"""`python -m lm_keras.generate`: runs lm_keras.commands.generate (see there)."""

from lm_keras.commands.generate import run

if __name__ == "__main__":
    run()
