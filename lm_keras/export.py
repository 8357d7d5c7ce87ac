"""`python -m lm_keras.export`: runs lm_keras.commands.export (see there)."""

from lm_keras.commands.export import run

if __name__ == "__main__":
    run()
