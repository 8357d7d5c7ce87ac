"""Stop strings inside the graph: where the text of generated tokens first holds one."""

import tensorflow as tf

# Bytes that the end of a text may change by when one more token is appended: a text that ends
# inside a character (a byte-level BPE token may hold part of one) detokenizes with U+FFFD (3
# bytes, up to 3 of them) where the next token completes the character.
_CHANGING_TAIL_BYTES = 9
# `check` reads a row's last (longest stop string in bytes + this many) tokens: every token is at
# least one byte of text, and a window's first 3 tokens may decode differently than in the whole
# text (a byte-level BPE window may start inside a character, a SentencePiece one drops the
# leading space of its first piece).
_WINDOW_EXTRA_TOKENS = 4


class StopStrings:
    """Finds stop strings in the text of generated tokens, with stock TensorFlow string ops.

    Each row has its own stop strings (a batched server merges requests with
    different ones); "" entries are ignored, so rows with fewer strings pad with "".
    A search looks only where a new occurrence can be: text that ends after the
    row's text without its last token, and `check` detokenizes only the row's last
    (longest stop string + 4) tokens, so each step of the decoding loop costs about
    (stop strings x their length) substring comparisons per row, whatever the
    text's length. An occurrence further back would have stopped the row at an
    earlier step, so the first occurrence found is the first in the text.

    String ops do not compile with XLA: a decoding loop that checks stop strings
    runs as a plain graph.

    Args:
        detokenize: function, int32 ids `(B, None)` (a tf.RaggedTensor) -> tf.string
            `(B,)`, the text of each row (an in-graph tokenizer's `detokenize`).
        stops: tf.string `(B, S)`, row b's stop strings, "" for none.

    Example:

    >>> stop = StopStrings(tokenizer.in_graph().detokenize, tf.constant([["\\n\\n", ""]]))
    >>> decode(decoder, ids, lengths, 50, 64, ..., stop_check=stop.check)
    """

    def __init__(self, detokenize, stops):
        self.detokenize = detokenize
        self.stops = tf.convert_to_tensor(stops, tf.string)  # (B, S)
        self.stop_bytes = tf.strings.length(self.stops)  # (B, S), bytes
        self.longest = tf.reduce_max(tf.concat([[0], tf.reshape(self.stop_bytes, [-1])], axis=0))  # scalar

    def check(self, tokens, begin, end):
        """`(B,)` bool: whether the text of `tokens[b, begin[b]:end[b]]` holds one of
        row b's stop strings (`decode`'s `stop_check`). Without a stop string in the
        batch it costs one comparison."""
        window = tf.maximum(begin, end - self.longest - _WINDOW_EXTRA_TOKENS)  # (B,)
        return tf.cond(
            self.longest > 0,
            lambda: self.find(tokens, window, end)[1] >= 0,
            lambda: tf.zeros(tf.shape(begin), tf.bool),
        )

    def find(self, tokens, begin, end):
        """The text of each row's tokens and where its first stop string starts.

        Args:
            tokens: int32 `(B, W)`.
            begin, end: int32 `(B,)`: row b's text is the detokenized
                `tokens[b, begin[b]:end[b]]`.

        Returns:
            (text tf.string `(B,)`, offset int32 `(B,)`): the byte offset in the text
            of the first stop string, or -1 where it holds none.
        """
        text = self._text(tokens, begin, end)  # (B,)
        before = self._text(tokens, begin, end - 1)  # (B,) without the last token
        text_bytes = tf.strings.length(text)  # (B,)
        # A new occurrence ends past what `before` and `text` share.
        first = tf.maximum(tf.strings.length(before) - self.longest - _CHANGING_TAIL_BYTES, 0)  # (B,)
        span = tf.maximum(tf.reduce_max(text_bytes - first), 0)
        shape = tf.concat([tf.shape(self.stops), [span]], axis=0)  # (B, S, K)
        starts = tf.broadcast_to(first[:, None, None] + tf.range(span)[None, None, :], shape)  # (B, S, K)
        lengths = tf.broadcast_to(self.stop_bytes[:, :, None], shape)  # (B, S, K)
        fits = (lengths > 0) & (starts + lengths <= text_bytes[:, None, None])  # (B, S, K)
        pieces = tf.strings.substr(
            tf.broadcast_to(text[:, None, None], shape),
            tf.minimum(starts, text_bytes[:, None, None]),  # in range even where it does not fit
            tf.where(fits, lengths, 0),
        )  # (B, S, K)
        found = fits & (pieces == self.stops[:, :, None])  # (B, S, K)
        none = tf.int32.max
        offset = tf.reduce_min(tf.where(found, starts, none), axis=[1, 2])  # (B,)
        return text, tf.where(offset == none, -1, offset)

    def _text(self, tokens, begin, end):
        positions = tf.range(tf.shape(tokens)[1])[None, :]  # (1, W)
        inside = (positions >= begin[:, None]) & (positions < end[:, None])  # (B, W)
        return self.detokenize(tf.ragged.boolean_mask(tokens, inside))  # (B,)
