"""Tests for CharTokenizer: vocabulary, lossless round trip, unknown id, save/load."""

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_keras import tokenizers
from lm_keras.tokenizers import CharTokenizer
from tests.tokenizers.cases import U2581, unicode_text

SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def tok(trained):
    return trained("char")


def test_vocabulary_is_the_train_split_characters_plus_unknown_and_end_of_text(tok, train_text):
    assert isinstance(tok, CharTokenizer)
    assert tok.kind == "char"
    assert tok.characters == SHAKESPEARE_CHARS == "".join(sorted(set(train_text)))
    assert tok.vocab_size == 67  # the unknown id 0, nanoGPT's 65 characters, the end-of-text id 66
    assert tok.unknown_id == 0
    assert tok.eot_id == 66
    assert tok.id_to_piece(0) == "\ufffd"
    assert tok.id_to_piece(1) == "\n"
    assert tok.id_to_piece(65) == "z"
    assert tok.id_to_piece(66) == "<|endoftext|>"
    assert tok.encode("\n !z").tolist() == [1, 2, 3, 65]


def test_whole_corpus_is_lossless(tok, corpus):
    start = time.perf_counter()
    ids = tok.encode(corpus)
    seconds = time.perf_counter() - start
    assert ids.dtype == np.int32
    assert ids.shape == (len(corpus),)
    assert ids.min() == 1 and ids.max() == 65  # no unknown id: the corpus uses only these
    assert tok.decode(ids) == corpus
    assert seconds < 5.0, f"encoding 1 MB took {seconds:.2f} s; the encode is not vectorised"


def test_unseen_characters_encode_to_unknown_and_decode_to_replacement(tok):
    text = "Hark\U0001f600 \u4e2d{x}\t" + U2581
    ids = tok.encode(text)
    assert ids.tolist() == [
        tok.encode("H")[0],
        tok.encode("a")[0],
        tok.encode("r")[0],
        tok.encode("k")[0],
        0,
        tok.encode(" ")[0],
        0,
        0,
        tok.encode("x")[0],
        0,
        0,
        0,
    ]
    assert tok.decode(ids) == "Hark\ufffd \ufffd\ufffdx\ufffd\ufffd\ufffd"


def test_lone_surrogate_encodes_to_unknown(tok):
    assert tok.encode("a\ud800b").tolist() == [tok.encode("a")[0], 0, tok.encode("b")[0]]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(SHAKESPEARE_CHARS), max_size=200))
def test_text_from_the_vocabulary_round_trips(tok, text):
    ids = tok.encode(text)
    assert ids.shape == (len(text),)
    assert tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=unicode_text)
def test_any_text_round_trips_up_to_unknown_characters(tok, text):
    ids = tok.encode(text)
    known = [c in SHAKESPEARE_CHARS for c in text]
    assert ids.shape == (len(text),)
    assert ((ids == 0) == ~np.array(known, bool)).all()
    assert tok.decode(ids) == "".join(c if k else "\ufffd" for c, k in zip(text, known))


def test_decode_accepts_lists_arrays_and_eager_tensors(tok):
    import tensorflow as tf

    ids = tok.encode("To be, or not to be")
    for form in (ids.tolist(), ids, ids.astype(np.int64), tf.constant(ids), tf.constant(ids, tf.int64)):
        assert tok.decode(form) == "To be, or not to be"
    assert tok.decode([]) == ""
    assert tok.encode("").shape == (0,)


def test_decode_rejects_ids_outside_the_vocabulary(tok):
    with pytest.raises(ValueError, match=r"ids must be in \[0, 67\).*id 67 at position 1"):
        tok.decode([1, 67])
    with pytest.raises(ValueError, match=r"id -1 at position 0"):
        tok.decode([-1])
    with pytest.raises(ValueError, match=r"token_id must be in \[0, 67\) .*; received token_id=67"):
        tok.id_to_piece(67)


def test_encode_rejects_bytes(tok):
    with pytest.raises(TypeError, match="takes a str; received bytes"):
        tok.encode(b"hello")


def test_train_uses_all_characters_and_sorts_them():
    tok = tokenizers.train("char", "hello world")
    assert tok.characters == " dehlorw"
    assert tok.vocab_size == 10 and tok.eot_id == 9
    assert tok.encode("hold!").tolist() == [4, 6, 5, 2, 0]
    assert tokenizers.train("char", "hello world", vocab_size=10).characters == " dehlorw"
    assert tokenizers.train("char", "hello world", vocab_size=0).vocab_size == 10


def test_vocab_size_other_than_the_texts_names_the_size(train_text):
    with pytest.raises(
        ValueError,
        match=r"vocab_size=100 .* the largest size it supports is 67 "
        r"\(65 distinct characters \+ the unknown id \+ the end-of-text id\)",
    ):
        tokenizers.train("char", train_text, vocab_size=100)
    with pytest.raises(ValueError, match=r"vocab_size=10 .* the smallest size it supports is 67"):
        tokenizers.train("char", train_text, vocab_size=10)


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        tokenizers.train("char", "")


def test_save_and_load_give_the_same_ids(tok, corpus, tmp_path):
    directory = tmp_path / "model" / "tokenizer"
    tok.save(str(directory))
    config = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    assert config["kind"] == "char"
    assert config["vocab_size"] == 67
    assert config["version"] == 1
    assert config["characters"] == SHAKESPEARE_CHARS
    assert config["eot_id"] == 66

    loaded = tokenizers.load(str(directory))
    assert isinstance(loaded, CharTokenizer)
    assert (loaded.vocab_size, loaded.eot_id) == (67, 66)
    text = corpus[:5000] + "\U0001f600" + U2581
    np.testing.assert_array_equal(loaded.encode(text), tok.encode(text))
    # A model directory holding tokenizer/ loads too.
    assert tokenizers.load(tmp_path / "model").characters == SHAKESPEARE_CHARS
