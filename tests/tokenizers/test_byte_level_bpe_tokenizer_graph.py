"""Tests for ByteLevelBPETokenizerGraph: the ids of ByteLevelBPETokenizer (Hugging Face's), stock ops only."""

import random

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lm_keras.tokenizers import ByteLevelBPETokenizer
from lm_keras.tokenizers.byte_level_bpe_tokenizer import BYTE_CHARS
from lm_keras.tokenizers.byte_level_classes import parse_ranges
from tests.tokenizers import character_classes
from tests.tokenizers.cases import MIXED_BATCH, gpt2_text, unicode_text
from tests.tokenizers.graph_checks import load_in_fresh_process, tokenize


@pytest.fixture(scope="module")
def tok(trained):
    return trained("gpt2_bpe")


@pytest.fixture(scope="module")
def graph(in_graph):
    return in_graph("gpt2_bpe")


def test_tokenize_gives_the_python_ids(tok, graph):
    assert tokenize(graph, MIXED_BATCH) == [tok.encode(s).tolist() for s in MIXED_BATCH]
    assert tokenize(graph, []) == []


def test_tokenize_whole_corpus_gives_the_python_ids(tok, graph, corpus):
    (ids,) = tokenize(graph, [corpus])
    np.testing.assert_array_equal(np.array(ids, np.int32), tok.encode(corpus))


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(unicode_text | gpt2_text, min_size=1, max_size=8))
@example(batch=["", " ", "a  b", "\t\n 's 'S 12345 x\u00a0\u3000y  ", "'''s"])
def test_random_unicode_gives_the_python_ids_and_text(tok, graph, batch):
    ids = graph.tokenize(tf.constant(batch))
    assert ids.to_list() == [tok.encode(s).tolist() for s in batch]
    assert [t.decode("utf-8") for t in graph.detokenize(ids).numpy()] == batch


def test_every_class_boundary_gives_the_python_ids(tok, graph):
    # Each code point where the class table changes, and the one before: in the contexts
    # that tell letters, numbers, whitespace and the rest apart.
    starts, _ = parse_ranges()
    chars = [
        chr(cp) for s in starts for cp in (s - 1, s) if cp >= 0 and cp not in character_classes.SURROGATES
    ]
    batch = [f"{context}{c}{c} x{c}" for c in chars for context in ("a", "1", "!", " ", "  ")]
    assert tokenize(graph, batch) == [tok.encode(s).tolist() for s in batch]


def test_merges_exact_when_a_merge_uses_a_token_before_it_is_made(tmp_path):
    # "abc" is made by rank 1 and again by rank 4, and rank 2 merges it before rank 4
    # comes: merging every "ab c" of a word at once could differ from Hugging Face's
    # one-at-a-time order, so the graph merges rank 4 one pair at a time.
    vocab = {c: b for b, c in BYTE_CHARS.items()}
    merges = [("b", "c"), ("a", "bc"), ("abc", "d"), ("a", "b"), ("ab", "c"), ("d", "d"), ("dd", "dd")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = ByteLevelBPETokenizer(vocab, merges)
    graph = tok.in_graph()
    assert graph._merge_all.numpy().tolist() == [True, True, True, True, False, True, True, False]
    rng = random.Random(0)
    batch = ["".join(rng.choice("abcd") for _ in range(rng.randint(0, 30))) for _ in range(300)]
    assert tokenize(graph, batch) == [tok.encode(s).tolist() for s in batch]


def test_detokenize_gives_the_python_text_for_any_ids(tok, graph):
    rng = np.random.default_rng(0)
    # Byte tokens mostly, so that many rows are not valid UTF-8: both give U+FFFD the same way.
    byte_ids = np.array([tok.vocab[BYTE_CHARS[b]] for b in range(128, 256)])
    rows = [rng.choice(byte_ids if i % 2 else tok.vocab_size, size=rng.integers(0, 12)) for i in range(200)]
    got = graph.detokenize(tf.ragged.constant([r.tolist() for r in rows], dtype=tf.int32)).numpy()
    assert [t.decode("utf-8") for t in got] == [tok.decode(r) for r in rows]
    dense = tf.constant([tok.encode("Hark, ").tolist()] * 2, tf.int64)
    assert graph.detokenize(dense).numpy().tolist() == [b"Hark, "] * 2


def test_tokenize_works_inside_another_tf_function(tok, graph):
    @tf.function
    def lengths(strings):
        return graph.tokenize(strings).row_lengths()

    batch = ["To be, or not to be", "", " \u3000"]
    assert lengths(tf.constant(batch)).numpy().tolist() == [len(tok.encode(s)) for s in batch]


@pytest.mark.parametrize(
    "bad", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"fine\n\xff"]
)
def test_invalid_utf8_raises_invalid_argument(graph, bad):
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph.tokenize(tf.constant([b"fine", bad]))


def test_ids_outside_the_vocabulary_raise_invalid_argument(graph):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"token ids must be in \[0, 1024\)"):
        graph.detokenize(tf.ragged.constant([[5, 1024]]))


def test_savedmodel_round_trip_in_a_fresh_process(tok, graph, tmp_path):
    export_dir = tmp_path / "gpt2_bpe_tokenizer"
    tf.saved_model.save(graph, str(export_dir))
    result = load_in_fresh_process(MIXED_BATCH, [export_dir], tmp_path)[str(export_dir)]
    assert result["ids"] == [tok.encode(s).tolist() for s in MIXED_BATCH]
    assert result["text"] == MIXED_BATCH
    assert result["dense_text"] == [MIXED_BATCH[1]]
    assert result["invalid_utf8"] == "InvalidArgumentError"


@pytest.mark.slow
def test_class_table_is_hugging_faces_for_every_code_point():
    runs = character_classes.ranges()
    starts, classes = parse_ranges()
    assert runs == list(zip(starts, classes))
