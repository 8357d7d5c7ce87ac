"""Tests for CharTokenizerGraph: the same ids as CharTokenizer, in the graph and a SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from tests.tokenizers.cases import MIXED_BATCH
from tests.tokenizers.graph_checks import load_in_fresh_process, tokenize


@pytest.fixture(scope="module")
def tok(trained):
    return trained("char")


@pytest.fixture(scope="module")
def graph(in_graph):
    return in_graph("char")


def test_tokenize_gives_the_python_ids(tok, graph):
    assert tokenize(graph, MIXED_BATCH) == [tok.encode(s).tolist() for s in MIXED_BATCH]
    assert 0 in tokenize(graph, ["\U0001f600"])[0]  # unseen -> unknown id, in the graph too


def test_tokenize_whole_corpus_gives_the_python_ids(tok, graph, corpus):
    (ids,) = tokenize(graph, [corpus])
    np.testing.assert_array_equal(np.array(ids, np.int32), tok.encode(corpus))


def test_detokenize_gives_the_python_text(tok, graph):
    ids = graph.tokenize(tf.constant(MIXED_BATCH))
    expected = [tok.decode(tok.encode(s)).encode("utf-8") for s in MIXED_BATCH]
    assert graph.detokenize(ids).numpy().tolist() == expected
    assert graph.detokenize(tf.cast(ids, tf.int64)).numpy().tolist() == expected
    # Dense ids decode in full, every column.
    dense = tf.constant([tok.encode("Hark"), tok.encode("w\u00fcrd")])  # (2, 4)
    assert graph.detokenize(dense).numpy().tolist() == [b"Hark", "w\ufffdrd".encode("utf-8")]
    assert graph.detokenize(tf.zeros((0, 3), tf.int32)).shape == (0,)


def test_tokenize_works_inside_another_tf_function(tok, graph):
    @tf.function
    def lengths(strings):
        return graph.tokenize(strings).row_lengths()

    assert lengths(tf.constant(["abc", "", "\U0001f600!"])).numpy().tolist() == [3, 0, 2]


@pytest.mark.parametrize("bad", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"])
def test_invalid_utf8_raises_invalid_argument(graph, bad):
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph.tokenize(tf.constant([b"fine", bad]))


def test_ids_outside_the_vocabulary_raise_invalid_argument(graph):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"token ids must be in \[0, 67\)"):
        graph.detokenize(tf.ragged.constant([[1, 67]]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph.detokenize(tf.constant([[-1]]))


def test_savedmodel_round_trip_in_a_fresh_process(tok, graph, tmp_path):
    export_dir = tmp_path / "char_tokenizer"
    tf.saved_model.save(graph, str(export_dir))
    (result,) = load_in_fresh_process(MIXED_BATCH, [export_dir], tmp_path).values()
    assert result["ids"] == [tok.encode(s).tolist() for s in MIXED_BATCH]
    assert result["text"] == [tok.decode(tok.encode(s)) for s in MIXED_BATCH]
    assert result["dense_text"] == [MIXED_BATCH[1]]
    assert result["invalid_utf8"] == "InvalidArgumentError"
