"""Decoding a TransformerLM: the key/value cache, and full windows past the context."""

import tensorflow as tf

from lm_keras.generation.decoder import Decoder, Phase, batch_size

# The cached phases attend over S / 2^k cache slots, k = CACHE_PHASES - 1 .. 0.
CACHE_PHASES = 4


class TransformerDecoder(Decoder):
    """Decodes a `TransformerLM` with its key/value cache.

    Like nanoGPT's `generate`, the model always sees the last `seq_len` tokens
    (`S`). With the cache, the padded prompts are prefilled in one pass and each
    new token costs one single-token call at its position. The model's positions
    are absolute (learned or sinusoidal), so a cache cannot slide: once the
    sequence outgrows the context, each step recomputes the window of the last
    `S` tokens, exactly what the uncached path does at every step. Cached and
    uncached decoding therefore compute the same function.

    A step attends over a cache not much longer than the sequence so far: the loop
    runs in phases (`cache_lengths`), the positions below `S/8` with a cache of
    `S/8` slots, then the cache grows to `S/4` for the positions below that, and so
    on up to `S`. Each phase is a loop over static shapes, and after the first a
    step reads at most twice the slots it needs. A last phase recomputes windows
    past the context.

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
    >>> decoder.cache_lengths(prompt_width=32, reach=None)  # seq_len 1024
    [128, 256, 512, 1024]
    """

    def __init__(self, model):
        super().__init__(model)
        self.context = model.seq_len

    def buffer_width(self, width):
        # The uncached path slices full windows of `context` tokens out of the buffer.
        if isinstance(width, int):
            return max(width, self.context)
        return tf.maximum(width, self.context)

    def cache_lengths(self, prompt_width, reach):
        """The cache's length in each cached phase: `S/8, S/4, S/2, S` (at least 1), each
        at least `prompt_width` (the prefill writes every prompt position). With Python
        ints, the phases a loop filling `reach` positions cannot get to are left out."""
        lengths = sorted({max(1, self.context >> k) for k in range(CACHE_PHASES)})
        if not isinstance(prompt_width, int):
            return [tf.maximum(n, prompt_width) for n in lengths]
        lengths = [n for n in lengths if n >= prompt_width]
        if isinstance(reach, int):
            # Steps run at the positions before the last one filled, below reach - 1.
            lengths = [n for i, n in enumerate(lengths) if i == 0 or lengths[i - 1] < reach - 1]
        return lengths

    def start(self, tokens, prompt_width, position, use_cache):
        if not use_cache:
            return self._window_logits(tokens, position - 1), ()
        length = self.cache_lengths(prompt_width, None)[0]
        cache = self.model.init_cache(batch_size(tokens), length)
        prompts = tokens[:, :prompt_width]  # (B, P), P <= S
        logits, cache = self.model.call_with_cache(prompts, cache, tf.constant(0, tf.int32))  # (B, P, V)
        return tf.gather(logits, position - 1, axis=1), cache  # (B, V)

    def phases(self, prompt_width, reach, use_cache):
        window = Phase(lambda tokens, position, state: (self._window_logits(tokens, position), state))
        if not use_cache:
            return [window]

        def cached(tokens, position, cache):
            token = tf.slice(tokens, [0, position], [batch_size(tokens), 1])  # (B, 1)
            logits, cache = self.model.call_with_cache(token, cache, position)  # (B, 1, V)
            return logits[:, 0], cache  # (B, V)

        def grow(extra):
            # Each (B, H, n, D) keys or values -> (B, H, n + extra, D): the new slots are empty.
            return lambda cache: tf.nest.map_structure(
                lambda c: tf.pad(c, [[0, 0], [0, 0], [0, extra], [0, 0]]), cache
            )

        # A cache of n slots takes the steps at the positions below n (each writes its own).
        lengths = self.cache_lengths(prompt_width, reach)
        phases = [Phase(cached, end=lengths[0])]
        phases += [Phase(cached, end=n, enter=grow(n - m)) for m, n in zip(lengths, lengths[1:])]
        if not isinstance(reach, int) or reach - 1 > self.context:
            # Past the context every step recomputes a window; the cache is not needed.
            phases.append(Phase(window.step, enter=lambda cache: ()))
        return phases

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
