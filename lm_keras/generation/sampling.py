"""Choosing the next token from logits: greedy, temperature, top-k and top-p (nucleus).

Every setting is per row, so one batch can mix greedy and sampled requests, and a
row's random draw depends only on its own seed and the position it fills: a
prompt samples the same text alone or in any batch. Only stock TensorFlow ops, so
the same code runs under XLA, in a SavedModel and under TF Serving.
"""

import tensorflow as tf


def sample_next_tokens(logits, temperature, top_k, top_p, seeds, position):
    """The next token of each row.

    Rows with `temperature == 0` take the argmax (greedy). Other rows divide the
    logits by their temperature, keep the `top_k` most likely tokens (`0`: all),
    then the smallest set of those whose probabilities sum to at least `top_p`
    (`1.0`: all), and draw from what is left. The draw is the Gumbel-max trick
    (argmax of logits + Gumbel noise), an exact sample of the softmax, with noise
    that is a counter-based hash of `(seed, position, rank)` (see `_row_uniform`).

    Args:
        logits: `(B, V)` float logits of the next token.
        temperature: `(B,)` float32, `>= 0`.
        top_k: `(B,)` int32, `>= 0`.
        top_p: `(B,)` float32 in `(0, 1]`.
        seeds: `(B,)` int64, one seed per row.
        position: scalar int32, the position being filled (makes each step's
            noise different and reproducible).

    Returns:
        `(B,)` int32 token ids.

    Example:

    >>> logits = tf.math.log([[0.1, 0.7, 0.2]])
    >>> sample_next_tokens(logits, [0.0], [0], [1.0], tf.constant([7], tf.int64), 5)
    <tf.Tensor: shape=(1,), dtype=int32, numpy=array([1], dtype=int32)>
    """
    logits = tf.cast(logits, tf.float32)
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (B,)
    # Skip sorting and noise when every row is greedy (the common serving default).
    return tf.cond(
        tf.reduce_any(temperature > 0.0),
        lambda: tf.where(
            temperature > 0.0,
            _sample(logits, temperature, top_k, top_p, seeds, position),
            greedy,
        ),
        lambda: greedy,
    )


def _sample(logits, temperature, top_k, top_p, seeds, position):
    vocab_size = tf.shape(logits)[-1]
    safe_temperature = tf.where(temperature > 0.0, temperature, 1.0)
    scaled = logits / safe_temperature[:, None]  # (B, V)
    sorted_logits, sorted_ids = tf.math.top_k(scaled, k=vocab_size)  # (B, V) each, descending
    rank = tf.range(vocab_size)[None, :]  # (1, V)
    top_k = tf.convert_to_tensor(top_k, tf.int32)
    keep = (top_k[:, None] <= 0) | (rank < top_k[:, None])  # (B, V)
    sorted_logits = tf.where(keep, sorted_logits, float("-inf"))
    probs = tf.nn.softmax(sorted_logits, axis=-1)  # (B, V)
    # A token stays while the mass before it is below top_p, so the first always stays.
    mass_before = tf.cumsum(probs, axis=-1, exclusive=True)  # (B, V)
    top_p = tf.convert_to_tensor(top_p, tf.float32)
    keep &= mass_before < top_p[:, None]
    sorted_logits = tf.where(keep, sorted_logits, float("-inf"))
    noise = _row_uniform(seeds, position, vocab_size)  # (B, V)
    gumbel = -tf.math.log(-tf.math.log(noise))
    choice = tf.argmax(sorted_logits + gumbel, axis=-1, output_type=tf.int32)  # (B,)
    return tf.gather(sorted_ids, choice, batch_dims=1)  # (B,)


def _row_uniform(seeds, position, vocab_size):
    """(B, V) uniform noise in (0, 1): element (b, v) is a hash of (seeds[b], position, v).

    A counter-based draw made of 32-bit integer ops (MurmurHash3's finalizer), so
    it is bit-identical in eager, graph, XLA and TF Serving alike, and needs no
    per-row loop. (`tf.random.stateless_uniform` is not: its XLA and CPU kernels
    give different numbers for the same seed, measured on TF 2.21.)
    """
    seeds = tf.cast(seeds, tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(seeds, 0xFFFFFFFF), tf.uint32)  # (B,)
    high = tf.cast(tf.bitwise.right_shift(seeds, 32), tf.uint32)  # (B,)
    step = tf.cast(position, tf.uint32) * _u32(0x9E3779B1)
    key = _fmix32(low ^ _fmix32(high ^ _fmix32(step ^ _u32(0x85EBCA77))))  # (B,)
    counters = tf.range(vocab_size, dtype=tf.int32)  # (V,)
    element = _fmix32(tf.cast(counters, tf.uint32) * _u32(0xC2B2AE3D) + _u32(0x27D4EB2F))  # (V,)
    bits = _fmix32(key[:, None] ^ element[None, :])  # (B, V)
    # The top 24 bits, centred in their interval: floats in (0, 1), never 0 or 1.
    return (tf.cast(tf.bitwise.right_shift(bits, _u32(8)), tf.float32) + 0.5) * (1.0 / (1 << 24))


def _u32(value):
    return tf.constant(value, tf.uint32)


def _fmix32(h):
    """MurmurHash3's 32-bit finalizer: every input bit flips each output bit with
    probability about 1/2."""
    h ^= tf.bitwise.right_shift(h, _u32(16))
    h *= _u32(0x85EBCA6B)
    h ^= tf.bitwise.right_shift(h, _u32(13))
    h *= _u32(0xC2B2AE35)
    return h ^ tf.bitwise.right_shift(h, _u32(16))
