"""Test set-up: the shared tiny Shakespeare corpus, quiet TensorFlow logs."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "LM_KERAS_DATA_DIR" not in os.environ and (SHARED_DATA / "tinyshakespeare.txt").is_file():
    os.environ["LM_KERAS_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def shakespeare():
    """The tiny Shakespeare corpus (from $LM_KERAS_DATA_DIR)."""
    from lm_keras.data import load_corpus

    return load_corpus("tiny_shakespeare")
