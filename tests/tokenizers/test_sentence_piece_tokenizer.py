"""Tests for SentencePieceTokenizer (BPE and unigram): lossless for any text, limits, save/load."""

import json
import time

import hypothesis
import numpy as np
import pytest
from hypothesis import example, given, settings

from lm_keras import tokenizers
from lm_keras.errors import UserError
from lm_keras.tokenizers import SentencePieceTokenizer
from lm_keras.tokenizers.sentence_piece_tokenizer import MAX_CHUNK_CHARS, training_sentences
from tests.tokenizers.cases import MIXED_BATCH, U2581, unicode_text
from tests.tokenizers.conftest import SENTENCEPIECE_VOCAB_SIZE

KINDS = ("bpe", "unigram")
U2581_BYTE_PIECES = ["<0xE2>", "<0x96>", "<0x81>"]


@pytest.fixture(scope="module", params=KINDS)
def tok(request, trained):
    return trained(request.param)


def test_vocabulary_layout(tok):
    assert isinstance(tok, SentencePieceTokenizer)
    assert tok.kind in KINDS
    assert tok.vocab_size == SENTENCEPIECE_VOCAB_SIZE
    assert tok.id_to_piece(0) == "<unk>"
    assert tok.id_to_piece(1) == "\n"
    assert [tok.id_to_piece(i) for i in (2, 3, 2 + 0xE2, 257)] == ["<0x00>", "<0x01>", "<0xE2>", "<0xFF>"]
    assert tok.escaped_space_ids == [2 + 0xE2, 2 + 0x96, 2 + 0x81]
    # Spaces inside pieces show as spaces, for plot labels.
    pieces = [tok.id_to_piece(i) for i in tok.encode(" the king")]
    assert "".join(pieces) == " the king"


def test_whole_corpus_is_lossless(tok, corpus):
    start = time.perf_counter()
    ids = tok.encode(corpus)
    seconds = time.perf_counter() - start
    assert ids.dtype == np.int32 and ids.ndim == 1
    # 1024 pieces cut 1.1M characters to under half as many tokens.
    assert 0.3 * len(corpus) < len(ids) < 0.5 * len(corpus)
    assert ids.min() >= 1  # byte fallback: the unknown id never appears
    assert tok.decode(ids) == corpus
    assert seconds < 5.0, f"encoding 1 MB took {seconds:.2f} s"


@pytest.mark.parametrize(
    "text",
    MIXED_BATCH
    + [
        "\n",
        " ",
        "\t\t",
        "a\n\nb",
        "\u2581\u2581\u2581",
        "trailing\u2581",
        "\u2581leading",
        "\u00e9 vs e\u0301",
        "\ud7ff\ue000\uffff",
        "y" * (3 * MAX_CHUNK_CHARS + 7),
    ],
)
def test_hard_strings_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_literal_u2581_is_spelled_by_its_bytes(tok):
    ids = tok.encode(f"a{U2581}b")
    pieces = [tok.id_to_piece(i) for i in ids]
    assert pieces == ["a"] + U2581_BYTE_PIECES + ["b"]
    assert tok.decode(ids) == f"a{U2581}b"
    # While a space is a space.
    assert tok.decode(tok.encode("a b")) == "a b"


@settings(max_examples=200, deadline=None)
@given(text=unicode_text)
@example(text=U2581)
@example(text=f" {U2581} \n{U2581}\t")
def test_any_unicode_round_trips(tok, text):
    ids = tok.encode(text)
    assert ids.dtype == np.int32
    assert ((ids >= 0) & (ids < tok.vocab_size)).all()
    assert tok.decode(ids) == text


def test_the_random_text_strategy_generates_u2581_and_unseen_scripts():
    # The property test is only as good as its inputs: check they reach the hard cases.
    quiet = settings(database=None, max_examples=2000)
    assert U2581 in hypothesis.find(unicode_text, lambda s: U2581 in s, settings=quiet)
    hypothesis.find(unicode_text, lambda s: any(ord(c) > 0xFFFF for c in s), settings=quiet)
    hypothesis.find(unicode_text, lambda s: "\n" in s and "  " in s, settings=quiet)


def test_decode_accepts_lists_arrays_and_eager_tensors(tok):
    import tensorflow as tf

    text = "To be, or not to be \U0001f600"
    ids = tok.encode(text)
    for form in (ids.tolist(), ids, ids.astype(np.int64), tf.constant(ids), tf.constant(ids, tf.int64)):
        assert tok.decode(form) == text
    assert tok.decode([]) == ""
    assert tok.encode("").shape == (0,)


def test_decode_rejects_ids_outside_the_vocabulary(tok):
    with pytest.raises(ValueError, match=r"ids must be in \[0, 1024\).*id 1024 at position 2"):
        tok.decode([5, 6, 1024])
    with pytest.raises(ValueError, match=r"token_id must be in \[0, 1024\)"):
        tok.id_to_piece(-1)


def test_invalid_text_is_refused(tok):
    with pytest.raises(ValueError, match="not valid Unicode.*surrogate"):
        tok.encode("a\ud800b")
    with pytest.raises(TypeError, match="takes a str; received bytes"):
        tok.encode(b"abc")


@pytest.mark.parametrize("kind", KINDS)
def test_vocab_size_limits_are_named_and_exact(kind, corpus):
    text = corpus[:30_000]
    # UserError: the commands print it as one line, not a traceback.
    with pytest.raises(
        UserError, match=r"vocab_size=100 is too small .* smallest size it supports is (\d+)"
    ) as small:
        tokenizers.train(kind, text, vocab_size=100)
    smallest = int(small.value.args[0].split("smallest size it supports is ")[1].split()[0])
    # 256 bytes + unknown + newline + one piece per distinct character other than newline
    # + the end-of-text id.
    assert smallest == 259 + len(set(text) - {"\n"})
    assert tokenizers.train(kind, text, vocab_size=smallest).vocab_size == smallest

    with pytest.raises(
        UserError, match=r"vocab_size=50000 is too large .* largest size it supports is (\d+)"
    ) as large:
        tokenizers.train(kind, text, vocab_size=50_000)
    largest = int(large.value.args[0].split("largest size it supports is ")[1].split(";")[0])
    assert smallest < largest < 50_000
    assert tokenizers.train(kind, text, vocab_size=largest).vocab_size == largest
    with pytest.raises(UserError, match=rf"largest size it supports is {largest}"):
        tokenizers.train(kind, text, vocab_size=largest + 1)


@pytest.mark.parametrize("vocab_size", [None, 0, -5, 2.5, "1024"])
def test_vocab_size_is_required(vocab_size):
    with pytest.raises(UserError, match="vocab_size"):
        tokenizers.train("bpe", "some text", vocab_size=vocab_size)


def test_training_is_deterministic(tok, train_text):
    again = tokenizers.train(tok.kind, train_text, vocab_size=tok.vocab_size)
    assert [again.id_to_piece(i) for i in range(again.vocab_size)] == [
        tok.id_to_piece(i) for i in range(tok.vocab_size)
    ]


def test_save_and_load_give_the_same_ids(tok, corpus, tmp_path):
    directory = tmp_path / "model" / "tokenizer"
    tok.save(str(directory))
    config = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    assert config["kind"] == tok.kind
    assert config["vocab_size"] == SENTENCEPIECE_VOCAB_SIZE
    assert config["version"] == 1
    assert (directory / config["model_file"]).read_bytes() == tok.model_proto

    loaded = tokenizers.load(directory)
    assert isinstance(loaded, SentencePieceTokenizer)
    assert (loaded.kind, loaded.vocab_size) == (tok.kind, tok.vocab_size)
    text = corpus[:20_000] + " \U0001f600 \u4e2d\u6587 " + U2581
    np.testing.assert_array_equal(loaded.encode(text), tok.encode(text))
    assert loaded.decode(loaded.encode(text)) == text


def test_training_sentences_are_paragraphs_within_the_trainers_limit():
    text = "a b\n\nc\n\n\n" + ("long line " * 30 + "\n") * 3 + "x" * 700 + "\u4e2d" * 300
    sentences = list(training_sentences(text, max_bytes=400))
    assert "".join(sentences) == text  # nothing lost, nothing added
    assert sentences[:2] == ["a b\n\n", "c\n\n"]
    assert all(0 < len(s.encode("utf-8")) <= 400 for s in sentences)
