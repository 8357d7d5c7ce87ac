import os
import pathlib
import time

import pytest

from lm_keras.data import corpus as corpus_lib
from lm_keras.data import load_corpus
from lm_keras.data.corpus import resolve, validation_start
from lm_keras.errors import UserError

SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def test_tiny_shakespeare_from_data_dir(shakespeare):
    assert shakespeare.name == "tiny_shakespeare"
    assert len(shakespeare.text) == 1_115_394
    assert len(set(shakespeare.text)) == 65
    assert shakespeare.sha256 == SHAKESPEARE_SHA256
    assert shakespeare.origin.endswith("tinyshakespeare.txt")


def test_standard_split(shakespeare):
    # The first line at or after 90% of the characters: 2 characters after char-rnn's cut at
    # exactly 90% (1,003,854), which falls inside the line "But who comes here?".
    train, val = shakespeare.split(0.1)
    assert (len(train), len(val)) == (1_003_856, 111_538)
    assert train + val == shakespeare.text
    assert train.endswith("But who comes here?\n") and val.startswith("\nGREMIO:\n")


@pytest.mark.parametrize(
    "text, fraction, start",
    [
        ("aaaa\nbbbb\ncccc\ndddd\n", 0.25, 15),  # cut at 15 = a line start: kept
        ("aaaa\nbbbb\ncccc\ndddd\n", 0.3, 15),  # cut at 14, inside "dddd": the next line
        ("aaaa\nbbbb\ncccc\ndddd", 0.1, 17),  # no line starts after the cut: the cut itself
        ("one long line without breaks", 0.5, 14),
        ("x\n", 0.9, 0),  # nothing trains
    ],
)
def test_validation_starts_at_a_whole_line(text, fraction, start):
    assert validation_start([text], len(text), fraction) == start
    # ... the same when the text comes in pieces, as prepare streams it
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    assert validation_start(pieces, len(text), fraction) == start


def test_blocks_end_at_lines_and_resume_where_they_say(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_lib, "BLOCK_BYTES", 64)
    lines = [f"line {i} " + "é" * (i % 7) + "\n" for i in range(40)] + ["🙂" * 50]  # a long last line
    (tmp_path / "a.txt").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "b.txt").write_text("no newline at the end", encoding="utf-8")
    source = resolve(str(tmp_path))
    blocks = list(source.blocks())
    text = "".join(b.text for b in blocks)
    assert text == "".join(lines) + "\n" + "no newline at the end"
    assert all(b.data == b.text.encode("utf-8") for b in blocks)
    assert all(len(b.data) <= 64 for b in blocks)
    assert all(b.text.endswith("\n") for b in blocks[:4])  # cut at line ends while there are some
    assert [b.inserted for b in blocks].count(True) == 1  # the newline between a.txt and b.txt
    for i, block in enumerate(blocks):  # a reader resuming after any block reads what follows it
        resumed = list(source.blocks(block.next))
        assert [b.text for b in resumed] == [b.text for b in blocks[i + 1 :]]


def test_tiny_shakespeare_offline_fails_fast_and_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("LM_KERAS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("lm_keras.data.corpus.REPO_DATA_DIR", tmp_path / "data")
    start = time.monotonic()
    with pytest.raises(
        UserError, match=r"put tinyshakespeare.txt in one of these folders \(or set LM_KERAS_DATA_DIR"
    ):
        load_corpus("tiny_shakespeare")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("data_dir_set", [True, False])
def test_a_downloaded_corpus_is_cached_where_users_expect(monkeypatch, tmp_path, data_dir_set):
    """In $LM_KERAS_DATA_DIR, else the user's cache folder; never inside the installed package."""
    package_data = tmp_path / "site-packages" / "data"
    monkeypatch.setattr(corpus_lib, "REPO_DATA_DIR", package_data)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if data_dir_set:
        monkeypatch.setenv("LM_KERAS_DATA_DIR", str(tmp_path / "mine"))
    else:
        monkeypatch.delenv("LM_KERAS_DATA_DIR", raising=False)
    downloads = []
    # Stands in for the network download only; the caching around it is what is tested.
    monkeypatch.setattr(corpus_lib, "_tiny_shakespeare_from_tfds", lambda: downloads.append(1) or "To be.\n")
    corpus = load_corpus("tiny_shakespeare")
    expected = tmp_path / ("mine" if data_dir_set else "cache/lm_keras") / "tinyshakespeare.txt"
    assert corpus.text == "To be.\n" and pathlib.Path(corpus.origin) == expected
    assert expected.read_text() == "To be.\n" and not package_data.exists()
    assert load_corpus("tiny_shakespeare").origin == str(expected) and downloads == [1]  # read, not fetched


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
