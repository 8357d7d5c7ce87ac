"""Decoding the documented many-to-one LSTM: one fixed window per new token."""

import tensorflow as tf

from lm_keras.generation.decoder import Decoder, batch_size

# log(0) guard for tokens the softmax gives no probability at all.
_TINY = 1e-30


class WindowDecoder(Decoder):
    """Decodes the documented `Sequential` LSTM, which maps a window of exactly
    `seq_len` tokens to the probabilities of the token after it.

    Each step runs the model on the last `seq_len` tokens; the model has no state
    to carry, so `use_cache` changes nothing. A sequence shorter than the window
    is left-padded with `pad_id`, the newline's id: the model reads the prompt as
    if it followed blank lines, which is how text after a paragraph break looks in
    training. The probabilities become logits by their log.

    Args:
        model: the documented LSTM (`lm_keras.models.documented_lstm`).
        pad_id: int, the id that fills the window before the first token.

    Example:

    >>> decoder = WindowDecoder(model, pad_id=tokenizer.encode("\\n")[0])
    >>> decoder.context == model.input_shape[1]
    True
    """

    def __init__(self, model, pad_id=0):
        super().__init__(model)
        self.context = int(model.input_shape[1])
        self.pad_id = int(pad_id)

    def start(self, tokens, prompt_width, position, use_cache):
        return self._window_logits(tokens, position - 1), ()

    def step(self, tokens, position, state, use_cache):
        return self._window_logits(tokens, position), state

    def _padded(self, tokens):
        pad = tf.fill([batch_size(tokens), self.context], tf.constant(self.pad_id, tf.int32))
        return tf.concat([pad, tf.cast(tokens, tf.int32)], axis=1)  # (B, S + W)

    def _log_probs(self, window):
        probs = tf.cast(self.model(window, training=False), tf.float32)  # (B, V)
        return tf.math.log(tf.maximum(probs, _TINY))

    def _window_logits(self, tokens, last):
        # Buffer position p sits at p + context in the padded buffer, so the window
        # of positions last + 1 - context .. last starts at last + 1.
        window = tf.slice(self._padded(tokens), [0, last + 1], [batch_size(tokens), self.context])  # (B, S)
        return self._log_probs(window)

    def next_token_logits(self, token_ids):
        return self._log_probs(self._padded(token_ids)[:, -self.context :])  # (B, S) -> (B, V)
