"""The SentencePiece tokenizer as TensorFlow ops (tensorflow_text's SentencePiece kernels)."""

import tensorflow as tf
import tensorflow_text as tf_text

from lm_keras.tokenizers import graph_ops
from lm_keras.tokenizers.sentence_piece_tokenizer import ESCAPED_SPACE, MAX_CHUNK_CHARS, NEWLINE


class SentencePieceTokenizerGraph(tf.Module):
    """`SentencePieceTokenizer` in the TF graph, giving the same ids as its `encode`.

    Uses stock TensorFlow ops and tensorflow_text's SentencePiece ops (no
    tf.py_function), so a SavedModel holding it is servable by TF Serving built
    with tensorflow_text's ops. Loading such a SavedModel needs `import
    tensorflow_text` first.

    Args:
        model_proto: bytes, the serialized SentencePiece model.
        escaped_space_ids: the 3 byte-fallback ids of U+2581's UTF-8 bytes, which
            stand for a literal U+2581 in the text (see `SentencePieceTokenizer`).
        newline_ids: the id of the newline piece, as a one-element list.
        eot_id: None, or the number of pieces: the end-of-text id after them, which
            tokenize never gives and detokenize drops.

    Call arguments:
        tokenize(strings): tf.string (B,).
        detokenize(ids): tf.RaggedTensor or dense tensor (B, N) of int32 or int64 ids.

    Returns:
        tokenize: tf.RaggedTensor int32 (B, None); invalid UTF-8 raises
            tf.errors.InvalidArgumentError.
        detokenize: tf.string (B,); an id outside [0, vocab_size) raises
            tf.errors.InvalidArgumentError.

    Example:

    >>> graph = tok.in_graph()
    >>> ids = graph.tokenize(tf.constant(["To be", "▁ 🙂"]))
    >>> graph.detokenize(ids).numpy()[1].decode("utf-8")
    '▁ 🙂'
    """

    def __init__(
        self, model_proto, escaped_space_ids, newline_ids, eot_id=None, name="sentence_piece_tokenizer"
    ):
        super().__init__(name=name)
        self._sentencepiece = tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
        pieces = int(self._sentencepiece.vocab_size())
        if eot_id is not None and eot_id != pieces:
            raise ValueError(f"eot_id must be None or {pieces} (the number of pieces); received {eot_id}")
        self.eot_id = eot_id
        self.vocab_size = pieces + (eot_id is not None)
        self._escaped_space_ids = [int(i) for i in escaped_space_ids]
        self._newline_ids = [int(i) for i in newline_ids]
        # SavedModel keeps the traced functions only: trace detokenize for both id types.
        for ids_dtype in (tf.int32, tf.int64):
            self.detokenize.get_concrete_function(tf.RaggedTensorSpec([None, None], ids_dtype))
            self.detokenize.get_concrete_function(tf.TensorSpec([None, None], ids_dtype))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        # The same cuts as SentencePieceTokenizer.encode: lines, chunks of lines, and the
        # text between literal U+2581s; the cut-out newlines and U+2581s come back as ids.
        lines = tf.strings.split(strings, sep=NEWLINE)  # (B, L), every row >= 1 line
        # Splitting at the byte 0x0A keeps (in)valid UTF-8 (in)valid, so this decode
        # checks the whole input.
        chunks = graph_ops.split_into_chunks(lines.flat_values, MAX_CHUNK_CHARS)  # (sum L, C)
        parts = tf.strings.split(chunks.flat_values, sep=ESCAPED_SPACE)  # (sum C, P)
        part_ids = self._sentencepiece.tokenize(parts.flat_values)  # (sum P, None)
        chunk_ids = graph_ops.join_parts(part_ids, parts.row_splits, self._escaped_space_ids)
        line_ids = graph_ops.join_parts(chunk_ids, chunks.row_splits, [])  # (sum L, None)
        return graph_ops.join_parts(line_ids, lines.row_splits, self._newline_ids)  # (B, None)

    @tf.function
    def detokenize(self, ids):
        ids = graph_ops.drop_id(graph_ops.as_ragged_ids(ids, self.vocab_size), self.eot_id)  # (B, None) int32
        return self._sentencepiece.detokenize(ids)  # (B,)
