"""`python -m lm_keras.tasks`: runs lm_keras.commands.tasks (see there)."""

from lm_keras.commands.tasks import run

if __name__ == "__main__":
    run()
