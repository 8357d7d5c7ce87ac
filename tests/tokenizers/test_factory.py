"""Tests for train() and load(): kinds, errors for bad input, files, a TensorFlow-free import."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from lm_keras import tokenizers
from lm_keras.errors import UserError

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_train_returns_each_kind(train_text):
    text = train_text[:30_000]
    for kind, cls in [
        ("char", tokenizers.CharTokenizer),
        ("bpe", tokenizers.SentencePieceTokenizer),
        ("unigram", tokenizers.SentencePieceTokenizer),
        ("gpt2_bpe", tokenizers.ByteLevelBPETokenizer),
    ]:
        tok = tokenizers.train(kind, text, vocab_size=None if kind == "char" else 400)
        assert isinstance(tok, cls) and isinstance(tok, tokenizers.Tokenizer)
        assert tok.kind == kind
        assert tok.vocab_size == (len(set(text)) + 2 if kind == "char" else 400)
        assert tok.eot_id == tok.vocab_size - 1
        assert tok.decode(tok.encode(text)) == text


def test_unknown_kind_is_refused():
    with pytest.raises(
        ValueError, match=r"kind must be one of char, bpe, unigram, gpt2_bpe; received kind='wordpiece'"
    ):
        tokenizers.train("wordpiece", "some text")


def test_load_of_a_folder_without_a_tokenizer_says_what_is_missing(tmp_path):
    with pytest.raises(UserError, match=r"no tokenizer in .*tokenizer\.json does not exist"):
        tokenizers.load(tmp_path)


def _write_config(directory, **config):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.json").write_text(json.dumps(config), encoding="utf-8")


def test_load_refuses_damaged_or_newer_files(tmp_path):
    _write_config(tmp_path / "newer", kind="char", vocab_size=3, version=99, characters="ab")
    with pytest.raises(ValueError, match="format version 99, which this lm_keras cannot read"):
        tokenizers.load(tmp_path / "newer")
    _write_config(tmp_path / "kind", kind="wordpiece", vocab_size=3, version=1)
    with pytest.raises(ValueError, match="kind='wordpiece'; expected one of char, bpe, unigram, gpt2_bpe"):
        tokenizers.load(tmp_path / "kind")
    _write_config(tmp_path / "size", kind="char", vocab_size=5, version=1, characters="ab")
    with pytest.raises(ValueError, match="says vocab_size=5 but holds 2 characters"):
        tokenizers.load(tmp_path / "size")
    _write_config(tmp_path / "model", kind="bpe", vocab_size=400, version=1, model_file="spm.model")
    with pytest.raises(UserError, match=r"spm\.model does not exist"):
        tokenizers.load(tmp_path / "model")
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid JSON"):
        tokenizers.load(tmp_path / "json")


def test_importing_the_package_does_not_import_tensorflow():
    code = (
        "import sys, lm_keras.tokenizers as t; t.train('char', 'abc').encode('ab'); "
        "print(sorted(m for m in ('tensorflow', 'tensorflow_text', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
