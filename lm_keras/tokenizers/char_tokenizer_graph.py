"""The character tokenizer as TensorFlow ops: unicode_decode and a hash table."""

import numpy as np
import tensorflow as tf

from lm_keras.tokenizers import graph_ops

_REPLACEMENT_CODEPOINT = 0xFFFD


class CharTokenizerGraph(tf.Module):
    """`CharTokenizer` in the TF graph, giving the same ids as its `encode`.

    Uses only stock TensorFlow ops (tf.strings.unicode_decode / unicode_encode and a
    `tf.lookup.StaticHashTable`), so a SavedModel holding it is servable by TF Serving.

    Args:
        characters: str, the vocabulary in id order (ids 1..n); id 0 is unknown.
        eot_id: None, or n + 1: the end-of-text id, which tokenize never gives and
            detokenize drops.

    Call arguments:
        tokenize(strings): tf.string (B,).
        detokenize(ids): tf.RaggedTensor or dense tensor (B, N) of int32 or int64 ids.

    Returns:
        tokenize: tf.RaggedTensor int32 (B, None); characters outside the vocabulary
            give id 0, and invalid UTF-8 raises tf.errors.InvalidArgumentError.
        detokenize: tf.string (B,); id 0 gives U+FFFD, and an id outside
            [0, vocab_size) raises tf.errors.InvalidArgumentError.

    Example:

    >>> graph = CharTokenizer.train("hello world").in_graph()
    >>> graph.tokenize(tf.constant(["hold!"])).to_list()
    [[4, 6, 5, 2, 0]]
    >>> graph.detokenize(tf.ragged.constant([[4, 6, 5, 2]])).numpy()
    array([b'hold'], dtype=object)
    """

    def __init__(self, characters, eot_id=None, name="char_tokenizer"):
        super().__init__(name=name)
        if eot_id is not None and eot_id != len(characters) + 1:
            raise ValueError(f"eot_id must be None or {len(characters) + 1}; received {eot_id}")
        self.eot_id = eot_id
        self.vocab_size = len(characters) + 1 + (eot_id is not None)
        codepoints = np.array([ord(c) for c in characters], np.int32)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(codepoints, tf.int32),
                tf.range(1, len(characters) + 1, dtype=tf.int32),
            ),
            default_value=0,
        )
        self._id_to_codepoint = np.concatenate([[_REPLACEMENT_CODEPOINT], codepoints]).astype(np.int32)
        # SavedModel keeps the traced functions only: trace detokenize for both id types.
        for ids_dtype in (tf.int32, tf.int64):
            self.detokenize.get_concrete_function(tf.RaggedTensorSpec([None, None], ids_dtype))
            self.detokenize.get_concrete_function(tf.TensorSpec([None, None], ids_dtype))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        codepoints = tf.strings.unicode_decode(strings, "UTF-8", errors="strict")  # (B, None)
        return codepoints.with_flat_values(self._table.lookup(codepoints.flat_values))

    @tf.function
    def detokenize(self, ids):
        ids = graph_ops.drop_id(graph_ops.as_ragged_ids(ids, self.vocab_size), self.eot_id)  # (B, None) int32
        codepoints = ids.with_flat_values(tf.gather(tf.constant(self._id_to_codepoint), ids.flat_values))
        return tf.strings.unicode_encode(codepoints, "UTF-8")  # (B,)
