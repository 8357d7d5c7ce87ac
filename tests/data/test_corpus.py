import os
import time

import pytest

from lm_keras.data import load_corpus
from lm_keras.errors import UserError

SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def test_tiny_shakespeare_from_data_dir(shakespeare):
    assert shakespeare.name == "tiny_shakespeare"
    assert len(shakespeare.text) == 1_115_394
    assert len(set(shakespeare.text)) == 65
    assert shakespeare.sha256 == SHAKESPEARE_SHA256
    assert shakespeare.origin.endswith("tinyshakespeare.txt")


def test_standard_split(shakespeare):
    train, val = shakespeare.split(0.1)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert train + val == shakespeare.text


def test_tiny_shakespeare_offline_fails_fast_and_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("LM_KERAS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("lm_keras.data.corpus.REPO_DATA_DIR", tmp_path / "data")
    start = time.monotonic()
    with pytest.raises(UserError, match=r"put tinyshakespeare.txt in data/ or set LM_KERAS_DATA_DIR"):
        load_corpus("tiny_shakespeare")
    assert time.monotonic() - start < 10


def test_python_docs_is_offline_and_real():
    corpus = load_corpus("python_docs")
    assert len(corpus.text) > 200_000
    assert 'The "assert" statement' in corpus.text
    assert corpus.origin == "pydoc_data.topics"


def test_file_directory_and_glob(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("beta 中文", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not text corpus", encoding="utf-8")
    assert load_corpus(str(tmp_path / "a.txt")).text == "alpha\n"
    assert load_corpus(str(tmp_path)).text == "alpha\nbeta 中文"
    assert load_corpus(str(tmp_path / "*.txt")).text == "alpha\nbeta 中文"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.txt", r"is not a known name .* nor an existing file"),
        (lambda p: (p / "empty.txt").write_text("  \n") and p / "empty.txt", r"is empty"),
        (lambda p: (p / "bin.txt").write_bytes(b"GIF89a\x00\x01") and p / "bin.txt", r"looks binary"),
        (
            lambda p: (p / "latin.txt").write_bytes(b"caf\xe9 ok") and p / "latin.txt",
            r"is not UTF-8: invalid byte 0xe9 at byte offset 3",
        ),
        (lambda p: (p / "d").mkdir() or p / "d", r"holds no .txt files"),
        (lambda p: p / "*.nothing", r"matches no files"),
    ],
)
def test_bad_corpus_input_names_input_and_fix(tmp_path, make, message):
    spec = str(make(tmp_path))
    with pytest.raises(UserError, match=message) as info:
        load_corpus(spec)
    assert "\n" not in str(info.value)
    assert os.path.basename(spec) in str(info.value)
