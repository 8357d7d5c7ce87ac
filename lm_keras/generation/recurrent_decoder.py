"""Decoding an LSTMLM: carry each layer's (h, c) state from token to token."""

import tensorflow as tf

from lm_keras.generation.decoder import Decoder, batch_size


class RecurrentDecoder(Decoder):
    """Decodes an `LSTMLM`, whose context has no limit.

    With the cache, the loop carries every layer's `(h, c)` state and feeds one
    token per step, starting from each row's first prompt token: while a row is
    still inside its prompt the loop feeds the prompt's token, so rows of any
    length stay exact without padding ever entering a state. Without the cache,
    each step reruns the model over the whole buffer and reads the logits at the
    position (the model is causal, so later buffer slots do not matter).

    Args:
        model: an `LSTMLM`.

    Example:

    >>> RecurrentDecoder(model).context is None
    True
    """

    def first_position(self, shortest_prompt, use_cache):
        # The state must see every prompt token, so the loop starts after the first.
        return tf.constant(1, tf.int32) if use_cache else shortest_prompt

    def start(self, tokens, prompt_width, position, use_cache):
        if not use_cache:
            return self._full_logits(tokens, position - 1), ()
        cache = self.model.init_cache(batch_size(tokens))
        logits, cache = self.model.call_with_cache(tokens[:, :1], cache)  # (B, 1, V)
        return logits[:, 0], cache

    def step(self, tokens, position, state, use_cache):
        if not use_cache:
            return self._full_logits(tokens, position), ()
        token = tf.slice(tokens, [0, position], [batch_size(tokens), 1])  # (B, 1)
        logits, state = self.model.call_with_cache(token, state)  # (B, 1, V)
        return logits[:, 0], state

    def _full_logits(self, tokens, last):
        return tf.gather(self.model(tokens, training=False), last, axis=1)  # (B, V)

    def next_token_logits(self, token_ids):
        return self.model(token_ids, training=False)[:, -1]  # (B, V)
