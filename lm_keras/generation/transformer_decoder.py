"""Decoding a TransformerLM: the key/value cache, and full windows past the context."""

import tensorflow as tf

from lm_keras.generation.decoder import Decoder, batch_size


class TransformerDecoder(Decoder):
    """Decodes a `TransformerLM` with its key/value cache.

    Like nanoGPT's `generate`, the model always sees the last `seq_len` tokens
    (`S`). With the cache, the padded prompts are prefilled in one pass and each
    new token costs one single-token call at its position. The model's positions
    are absolute (learned or sinusoidal), so a cache cannot slide: once the
    sequence outgrows the context, each step recomputes the window of the last
    `S` tokens, exactly what the uncached path does at every step. Cached and
    uncached decoding therefore compute the same function.

    Prefilling right-padded prompts is exact: a row's padded slots in the cache are
    overwritten (at their position, before anything reads them) by the tokens the
    loop writes there, and the causal mask keeps every query from seeing slots
    after its own.

    Args:
        model: a `TransformerLM`.

    Example:

    >>> decoder = TransformerDecoder(model)
    >>> decoder.context == model.seq_len
    True
    """

    def __init__(self, model):
        super().__init__(model)
        self.context = model.seq_len

    def buffer_width(self, width):
        # The uncached path slices full windows of `context` tokens out of the buffer.
        if isinstance(width, int):
            return max(width, self.context)
        return tf.maximum(width, self.context)

    def start(self, tokens, prompt_width, position, use_cache):
        if not use_cache:
            return self._window_logits(tokens, position - 1), ()
        cache = self.model.init_cache(batch_size(tokens))
        prompts = tokens[:, :prompt_width]  # (B, P), P <= S
        logits, cache = self.model.call_with_cache(prompts, cache, tf.constant(0, tf.int32))  # (B, P, V)
        return tf.gather(logits, position - 1, axis=1), cache  # (B, V)

    def step(self, tokens, position, state, use_cache):
        if not use_cache:
            return self._window_logits(tokens, position), ()

        def cached():
            token = tf.slice(tokens, [0, position], [batch_size(tokens), 1])  # (B, 1)
            logits, cache = self.model.call_with_cache(token, state, position)  # (B, 1, V)
            return logits[:, 0], cache

        def window():
            return self._window_logits(tokens, position), state

        if tokens.shape[1] is not None and tokens.shape[1] <= self.context:
            # Every position of the buffer is inside the context. Without the cond,
            # XLA updates the cache in place instead of copying it at every step.
            return cached()
        return tf.cond(position < self.context, cached, window)

    def _window_logits(self, tokens, last):
        """Logits after position `last`, from the window of `context` tokens that ends
        there (or starts at 0 while the sequence is shorter)."""
        begin = tf.maximum(last + 1 - self.context, 0)
        window = tf.slice(tokens, [0, begin], [batch_size(tokens), self.context])  # (B, S)
        logits = self.model(window, training=False)  # (B, S, V)
        return tf.gather(logits, last - begin, axis=1)  # (B, V)

    def next_token_logits(self, token_ids):
        window = token_ids[:, -self.context :]  # (B, min(T, S))
        return self.model(window, training=False)[:, -1]  # (B, V)
