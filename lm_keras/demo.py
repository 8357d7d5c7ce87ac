"""`python -m lm_keras.demo`: runs lm_keras.commands.demo (see there)."""

from lm_keras.commands.demo import run

if __name__ == "__main__":
    run()
