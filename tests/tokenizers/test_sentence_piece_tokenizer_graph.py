"""Tests for SentencePieceTokenizerGraph: the same ids as SentencePieceTokenizer, in a SavedModel too."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lm_keras.tokenizers.sentence_piece_tokenizer import MAX_CHUNK_CHARS
from tests.tokenizers.cases import MIXED_BATCH, U2581, unicode_text
from tests.tokenizers.graph_checks import load_in_fresh_process, tokenize

KINDS = ("bpe", "unigram")


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def tok(kind, trained):
    return trained(kind)


@pytest.fixture(scope="module")
def graph(kind, in_graph):
    return in_graph(kind)


def test_tokenize_gives_the_python_ids(tok, graph):
    assert tokenize(graph, MIXED_BATCH) == [tok.encode(s).tolist() for s in MIXED_BATCH]
    assert tokenize(graph, []) == []


def test_tokenize_whole_corpus_gives_the_python_ids(tok, graph, corpus):
    (ids,) = tokenize(graph, [corpus])
    np.testing.assert_array_equal(np.array(ids, np.int32), tok.encode(corpus))


def test_tokenize_long_lines_gives_the_python_ids(tok, graph, corpus):
    # 200k characters without a newline: the encoders agree only because both cut it
    # into chunks of MAX_CHUNK_CHARS (over 100k characters unigram's Viterbi differs).
    long_line = corpus[:200_000].replace("\n", " ")
    batch = [long_line, long_line[: MAX_CHUNK_CHARS + 1], "x" * MAX_CHUNK_CHARS + U2581 + "x"]
    got = tokenize(graph, batch)
    for text, ids in zip(batch, got):
        np.testing.assert_array_equal(np.array(ids, np.int32), tok.encode(text))


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(unicode_text, min_size=1, max_size=8))
@example(batch=[U2581, "", f"{U2581}\n{U2581} "])
def test_random_unicode_gives_the_python_ids_and_text(tok, graph, batch):
    ids = graph.tokenize(tf.constant(batch))
    assert ids.to_list() == [tok.encode(s).tolist() for s in batch]
    assert [t.decode("utf-8") for t in graph.detokenize(ids).numpy()] == batch


def test_detokenize_gives_the_python_text(tok, graph):
    ids = graph.tokenize(tf.constant(MIXED_BATCH))
    expected = [s.encode("utf-8") for s in MIXED_BATCH]
    assert graph.detokenize(ids).numpy().tolist() == expected
    assert graph.detokenize(tf.cast(ids, tf.int64)).numpy().tolist() == expected
    # A lone byte id is not UTF-8: both paths give U+FFFD.
    lone = [tok.encode("a")[0], tok.escaped_space_ids[0]]
    assert graph.detokenize(tf.constant([lone])).numpy()[0].decode("utf-8") == tok.decode(lone)
    # Dense ids decode in full, every column.
    dense = tf.constant([tok.encode("Hark")[:1].tolist() * 2, tok.encode("Hark")[:1].tolist() * 2])
    assert graph.detokenize(dense).numpy().tolist() == [tok.decode(dense[0]).encode("utf-8")] * 2


def test_tokenize_works_inside_another_tf_function(tok, graph):
    @tf.function
    def lengths(strings):
        return graph.tokenize(strings).row_lengths()

    batch = ["To be, or not to be", "", U2581]
    assert lengths(tf.constant(batch)).numpy().tolist() == [len(tok.encode(s)) for s in batch]


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff",
        b"ok\xc3",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xf4\x90\x80\x80",
        b"fine\n\xff",
        "\u2581".encode("utf-8") + b"\xfe",
    ],
)
def test_invalid_utf8_raises_invalid_argument(graph, bad):
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph.tokenize(tf.constant([b"fine", bad]))


def test_ids_outside_the_vocabulary_raise_invalid_argument(graph):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"token ids must be in \[0, 1024\)"):
        graph.detokenize(tf.ragged.constant([[5, 1024]]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph.detokenize(tf.constant([[-1]]))


@pytest.mark.slow  # SentencePiece exports run in bare processes in tests/serving/test_session_loader.py
def test_savedmodel_round_trip_in_a_fresh_process(trained, in_graph, tmp_path):
    export_dirs = {}
    for kind in KINDS:
        export_dirs[kind] = tmp_path / f"{kind}_tokenizer"
        tf.saved_model.save(in_graph(kind), str(export_dirs[kind]))
    results = load_in_fresh_process(MIXED_BATCH, export_dirs.values(), tmp_path)
    for kind in KINDS:
        tok, result = trained(kind), results[str(export_dirs[kind])]
        assert result["ids"] == [tok.encode(s).tolist() for s in MIXED_BATCH], kind
        assert result["text"] == MIXED_BATCH, kind
        assert result["dense_text"] == [MIXED_BATCH[1]], kind
        assert result["invalid_utf8"] == "InvalidArgumentError", kind
