"""`python -m lm_keras.serve`: runs lm_keras.commands.serve (see there)."""

from lm_keras.commands.serve import run

if __name__ == "__main__":
    run()
