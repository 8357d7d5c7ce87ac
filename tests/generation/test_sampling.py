"""The samplers: greedy, temperature, top-k and top-p, and their seeded noise."""

import numpy as np
import pytest
import tensorflow as tf

from lm_keras.generation import sample_next_tokens

PROBS = np.array([0.05, 0.5, 0.3, 0.15], np.float32)  # token 1 > 2 > 3 > 0
LOGITS = np.log(PROBS)


def draws(n, temperature=1.0, top_k=0, top_p=1.0, position=3):
    """Token counts of n rows of LOGITS, each with its own seed."""
    logits = tf.constant(np.tile(LOGITS, (n, 1)))
    tokens = sample_next_tokens(
        logits,
        tf.fill([n], float(temperature)),
        tf.fill([n], top_k),
        tf.fill([n], float(top_p)),
        tf.range(n, dtype=tf.int64),
        position,
    )
    return np.bincount(tokens.numpy(), minlength=len(PROBS))


def test_temperature_zero_is_argmax_and_rows_mix_settings():
    logits = tf.constant(np.stack([LOGITS, LOGITS[::-1]]))
    tokens = sample_next_tokens(logits, [0.0, 0.0], [0, 0], [1.0, 1.0], tf.constant([1, 2], tf.int64), 0)
    assert tokens.numpy().tolist() == [1, 2]
    # A greedy row stays greedy next to a sampled one.
    mixed = sample_next_tokens(logits, [0.0, 5.0], [0, 0], [1.0, 1.0], tf.constant([1, 2], tf.int64), 0)
    assert mixed.numpy()[0] == 1


def test_sampling_follows_the_softmax():
    n = 20_000
    counts = draws(n)
    # Binomial standard deviation of each count is at most sqrt(n / 4) ~ 71.
    np.testing.assert_allclose(counts / n, PROBS, atol=4 * np.sqrt(0.25 / n))


def test_temperature_sharpens_and_flattens():
    n = 20_000
    cold, hot = draws(n, temperature=0.5) / n, draws(n, temperature=2.0) / n
    for t, freq in ((0.5, cold), (2.0, hot)):
        expected = PROBS ** (1 / t) / np.sum(PROBS ** (1 / t))
        np.testing.assert_allclose(freq, expected, atol=4 * np.sqrt(0.25 / n))


def test_top_k_keeps_the_k_most_likely_renormalised():
    n = 20_000
    counts = draws(n, top_k=2)
    assert counts[0] == 0 and counts[3] == 0
    np.testing.assert_allclose(counts[1] / n, 0.5 / 0.8, atol=4 * np.sqrt(0.25 / n))
    assert draws(200, top_k=1).tolist() == [0, 200, 0, 0]


@pytest.mark.parametrize("top_p,allowed", [(0.5, {1}), (0.7, {1, 2}), (0.81, {1, 2, 3}), (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, allowed):
    counts = draws(2_000, top_p=top_p)
    assert set(np.flatnonzero(counts)) == allowed


def test_seeded_noise_is_reproducible_per_row_and_position():
    from lm_keras.generation.sampling import _row_uniform

    a = _row_uniform(tf.constant([5, 6], tf.int64), 7, 1000).numpy()
    b = _row_uniform(tf.constant([6], tf.int64), 7, 1000).numpy()
    np.testing.assert_array_equal(a[1], b[0])  # a row's noise ignores the rest of the batch
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], _row_uniform(tf.constant([5], tf.int64), 8, 1000).numpy()[0])
    xla = tf.function(lambda s: _row_uniform(s, 7, 1000), jit_compile=True)(tf.constant([5, 6], tf.int64))
    np.testing.assert_array_equal(a, xla.numpy())
    assert a.min() > 0.0 and a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.03 and abs(a.var() - 1 / 12) < 0.01


def test_seeded_noise_is_pinned():
    """A seed's noise is fixed, so --seed gives the same text on every machine and after any
    change that keeps these numbers (the 24-bit integers behind two seeds' first draws)."""
    from lm_keras.generation.sampling import _row_uniform

    noise = _row_uniform(tf.constant([1, 2**40 + 3], tf.int64), 5, 4).numpy()
    expected = [[12976270, 4858246, 5553222, 4474454], [3276733, 11082524, 5499002, 10413562]]
    # Integer ops, then one float32 rounding of (bits + 0.5) / 2**24: exact.
    np.testing.assert_array_equal(noise, ((np.array(expected) + 0.5) / 2**24).astype(np.float32))
