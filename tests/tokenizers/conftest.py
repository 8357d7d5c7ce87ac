"""Fixtures for the tokenizer tests: the corpus, its train split, tokenizers trained once."""

import functools
import os
import pathlib

import pytest

from lm_keras import tokenizers

CORPUS_FILE = "tinyshakespeare.txt"
SHARED_DATA = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
SENTENCEPIECE_VOCAB_SIZE = 1024


def corpus_path():
    return pathlib.Path(os.environ.get("LM_KERAS_DATA_DIR", SHARED_DATA)) / CORPUS_FILE


@pytest.fixture(scope="session")
def corpus():
    """The whole tiny Shakespeare corpus, read from the shared data folder."""
    path = corpus_path()
    if not path.is_file():
        pytest.skip(f"{path} is missing; set LM_KERAS_DATA_DIR to the folder holding {CORPUS_FILE}")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def train_text(corpus):
    """The train split: the first 90% of the corpus, as lm_keras.data cuts it."""
    return corpus[: int(len(corpus) * 0.9)]


@pytest.fixture(scope="session")
def trained(train_text):
    """kind -> a tokenizer of that kind trained on the train split (each trained once)."""

    @functools.cache
    def get(kind):
        size = None if kind == "char" else SENTENCEPIECE_VOCAB_SIZE
        return tokenizers.train(kind, train_text, vocab_size=size)

    return get


@pytest.fixture(scope="session")
def in_graph(trained):
    """kind -> the in_graph() module of `trained(kind)` (each built once)."""
    return functools.lru_cache(maxsize=None)(lambda kind: trained(kind).in_graph())
