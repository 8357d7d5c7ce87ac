import math

import keras
import numpy as np
import pytest

from lm_keras.layers import MultiHeadSelfAttention
from tests.layer_test_case import run_layer_test


def _inputs(batch=2, length=7, width=16, seed=0):
    return np.random.RandomState(seed).randn(batch, length, width).astype("float32")


def _copy_from_keras(reference, layer):
    """Copies keras.layers.MultiHeadAttention's weights into our fused layout."""
    q, k, v, o = (
        reference._query_dense,
        reference._key_dense,
        reference._value_dense,
        reference._output_dense,
    )
    layer.qkv_kernel.assign(np.stack([q.kernel.numpy(), k.kernel.numpy(), v.kernel.numpy()], axis=1))
    layer.output_kernel.assign(o.kernel.numpy())
    if layer.use_bias:
        layer.qkv_bias.assign(np.stack([q.bias.numpy(), k.bias.numpy(), v.bias.numpy()]).reshape(-1))
        layer.output_bias.assign(o.bias.numpy())


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_keras_multi_head_attention(use_bias, causal):
    x = _inputs()
    reference = keras.layers.MultiHeadAttention(
        num_heads=4, key_dim=5, use_bias=use_bias, bias_initializer="random_normal"
    )
    reference(x, x)
    layer = MultiHeadSelfAttention(num_heads=4, key_dim=5, use_bias=use_bias)
    layer(x)
    _copy_from_keras(reference, layer)

    expected, expected_weights = reference(x, x, use_causal_mask=causal, return_attention_scores=True)
    outputs, weights = layer(x, use_causal_mask=causal, return_attention_scores=True)

    assert outputs.shape == (2, 7, 16) and weights.shape == (2, 4, 7, 7)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)


def test_padding_mask_matches_keras_attention_mask():
    x = _inputs()
    padding = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=bool)
    reference = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)
    reference(x, x)
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=8)
    layer(x)
    _copy_from_keras(reference, layer)

    expected = reference(
        x, x, attention_mask=np.broadcast_to(padding[:, None, :], (2, 7, 7)), use_causal_mask=True
    )
    outputs, weights = layer(x, padding_mask=padding, use_causal_mask=True, return_attention_scores=True)

    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    # Padded keys get exactly zero weight.
    np.testing.assert_array_equal(np.asarray(weights)[0, :, :, 5:], 0.0)


def test_two_heads_against_hand_computation():
    # d = 2, H = 2 heads of D = 1, so the scale 1 / sqrt(d_k) is 1.
    # x_1 = [1, 0], x_2 = [0, 2].
    # Head 0: q = k = x[0], v = x[1]: q = k = (1, 0), v = (0, 2).
    #   scores QK^T = [[1, 0], [0, 0]] -> rows softmax([1, 0]), softmax([0, 0])
    #   head_0 = (2 / (e + 1), 1)
    # Head 1: q = k = x[1], v = x[0]: q = k = (0, 2), v = (1, 0).
    #   scores = [[0, 0], [0, 4]] -> rows softmax([0, 0]), softmax([0, 4])
    #   head_1 = (1 / 2, 1 / (1 + e^4))
    # W^O maps head 0 to [1, 0] and head 1 to [1, 2]: out = (h0 + h1, 2 h1).
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=1, use_bias=False)
    x = np.array([[[1.0, 0.0], [0.0, 2.0]]], dtype="float32")
    layer(x)
    picks_0, picks_1 = [[1.0], [0.0]], [[0.0], [1.0]]  # (d, D) columns selecting x[0], x[1]
    qkv = np.zeros((2, 3, 2, 1), "float32")  # (d, 3, H, D)
    qkv[:, 0, 0], qkv[:, 1, 0], qkv[:, 2, 0] = picks_0, picks_0, picks_1
    qkv[:, 0, 1], qkv[:, 1, 1], qkv[:, 2, 1] = picks_1, picks_1, picks_0
    layer.qkv_kernel.assign(qkv)
    layer.output_kernel.assign(np.array([[[1.0, 0.0]], [[1.0, 2.0]]], "float32"))  # (H, D, d)

    e = math.e
    h0 = [2 / (e + 1), 1.0]
    h1 = [0.5, 1 / (1 + e**4)]
    expected = [[h0[0] + h1[0], 2 * h1[0]], [h0[1] + h1[1], 2 * h1[1]]]
    outputs, weights = layer(x, return_attention_scores=True)
    np.testing.assert_allclose(outputs[0], expected, rtol=1e-6)
    np.testing.assert_allclose(weights[0, 0], [[e / (e + 1), 1 / (e + 1)], [0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(weights[0, 1], [[0.5, 0.5], [1 / (1 + e**4), e**4 / (1 + e**4)]], rtol=1e-6)

    # Causal: position 1 sees only itself, so head_0 = v_1 = 0 and head_1 = v_1 = 1.
    causal = layer(x, use_causal_mask=True)
    np.testing.assert_allclose(causal[0], [[0.0 + 1.0, 2 * 1.0], expected[1]], rtol=1e-6)


def test_scale_and_biases_against_hand_computation():
    # One head of D = 2 with identity projections: scores are x_i . x_j / sqrt(2).
    # x_1 = [1, 0], x_2 = [1, 1]: scores = [[1, 1], [1, 2]] / sqrt(2).
    # Row 1: softmax is [1/2, 1/2] -> (x_1 + x_2) / 2 = [1, 0.5].
    # Row 2: softmax is [1, a] / (1 + a), a = e^(1 / sqrt(2)) -> [1, a / (1 + a)].
    # The output bias [0.5, -0.5] is added; the QKV biases are zero.
    layer = MultiHeadSelfAttention(num_heads=1, key_dim=2, use_bias=True)
    x = np.array([[[1.0, 0.0], [1.0, 1.0]]], dtype="float32")
    layer(x)
    eye = np.eye(2, dtype="float32")
    layer.qkv_kernel.assign(np.stack([eye, eye, eye], axis=1)[:, :, None, :])  # (d, 3, 1, D)
    layer.output_kernel.assign(eye[None])  # (1, D, d)
    layer.output_bias.assign(np.array([0.5, -0.5], "float32"))

    a = math.exp(1 / math.sqrt(2))
    expected = [[1.0 + 0.5, 0.5 - 0.5], [1.0 + 0.5, a / (1 + a) - 0.5]]
    np.testing.assert_allclose(layer(x)[0], expected, rtol=1e-6)


def _cached_layer():
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=4, use_bias=True, bias_initializer="random_normal")
    x = _inputs(batch=2, length=6, width=8, seed=1)
    full = np.asarray(layer(x, use_causal_mask=True))
    cache = (np.zeros((2, 2, 10, 4), "float32"),) * 2  # keys, values (B, H, S, D), S = 10 > T
    return layer, x, full, cache


def test_cache_one_token_at_a_time_equals_full_causal_pass():
    layer, x, full, cache = _cached_layer()
    outputs = []
    for t in range(6):
        step, cache = layer(x[:, t : t + 1], cache=cache, cache_index=np.int32(t))
        outputs.append(step)
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)
    # The cache holds each position's keys and values x W^K + b^K, x W^V + b^V; the rest stays zero.
    kernel, bias = layer.qkv_kernel.numpy(), layer.qkv_bias.numpy().reshape(3, 2, 4)
    keys = np.einsum("btd,dhk->bthk", x, kernel[:, 1]) + bias[1]  # (B, T, H, D)
    values = np.einsum("btd,dhk->bthk", x, kernel[:, 2]) + bias[2]
    cached_keys, cached_values = (np.asarray(c) for c in cache)
    np.testing.assert_allclose(cached_keys[:, :, :6], keys.transpose(0, 2, 1, 3), atol=1e-5)
    np.testing.assert_allclose(cached_values[:, :, :6], values.transpose(0, 2, 1, 3), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(cache)[..., 6:, :], 0.0)


def test_cache_prefill_then_steps_equals_full_causal_pass():
    layer, x, full, cache = _cached_layer()
    prefill, cache = layer(x[:, :4], cache=cache, cache_index=np.int32(0))
    step_4, cache = layer(x[:, 4:5], cache=cache, cache_index=np.int32(4))
    step_5, weights, cache = layer(
        x[:, 5:6], cache=cache, cache_index=np.int32(5), return_attention_scores=True
    )
    np.testing.assert_allclose(prefill, full[:, :4], atol=1e-5)
    np.testing.assert_allclose(step_4, full[:, 4:5], atol=1e-5)
    np.testing.assert_allclose(step_5, full[:, 5:6], atol=1e-5)
    assert weights.shape == (2, 2, 1, 10)
    np.testing.assert_array_equal(np.asarray(weights)[..., 6:], 0.0)  # empty slots get no weight


def test_a_cache_shorter_than_the_context_attends_the_same():
    """A decoding loop starts with a short cache and grows it: the same outputs, fewer slots read."""
    layer, x, full, _ = _cached_layer()
    short = (np.zeros((2, 2, 4, 4), "float32"),) * 2  # 4 slots
    prefill, short = layer(x[:, :4], cache=short, cache_index=np.int32(0))
    grown = tuple(np.pad(np.asarray(c), [(0, 0), (0, 0), (0, 3), (0, 0)]) for c in short)  # 7 slots
    step_4, weights, grown = layer(
        x[:, 4:5], cache=grown, cache_index=np.int32(4), return_attention_scores=True
    )
    step_5, grown = layer(x[:, 5:6], cache=grown, cache_index=np.int32(5))
    assert weights.shape == (2, 2, 1, 7) and grown[0].shape == (2, 2, 7, 4)
    # The same products over fewer (empty, masked) slots: float32 rounding apart at most.
    np.testing.assert_allclose(np.concatenate([prefill, step_4, step_5], axis=1), full, atol=1e-5)


def test_attention_dropout_only_in_training():
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=4, dropout=0.5)
    x = _inputs(width=8)
    inference = np.asarray(layer(x, use_causal_mask=True))
    np.testing.assert_array_equal(layer(x, use_causal_mask=True, training=False), inference)
    trained = np.asarray(layer(x, use_causal_mask=True, training=True))
    assert np.abs(trained - inference).max() > 1e-3


def test_config_round_trip_and_weights():
    layer = MultiHeadSelfAttention(
        num_heads=3, key_dim=4, dropout=0.1, use_bias=False, output_kernel_initializer="zeros", name="mhsa"
    )
    x = _inputs(width=12)
    layer(x)
    config = layer.get_config()
    assert {k: config[k] for k in ("num_heads", "key_dim", "dropout", "use_bias")} == {
        "num_heads": 3,
        "key_dim": 4,
        "dropout": 0.1,
        "use_bias": False,
    }
    clone = MultiHeadSelfAttention.from_config(config)
    clone(x)
    assert clone.get_config() == config
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x, use_causal_mask=True), layer(x, use_causal_mask=True))
    # Fused layout: (d, 3, H, D) and (H, D, d), no biases.
    assert [tuple(w.shape) for w in layer.weights] == [(12, 3, 3, 4), (3, 4, 12)]
    np.testing.assert_array_equal(layer.output_kernel.numpy(), 0.0)


def test_parameter_count():
    layer = MultiHeadSelfAttention(num_heads=4, key_dim=32, use_bias=True)
    layer.build((None, None, 128))
    # 4 d^2 kernel entries (W^Q, W^K, W^V, W^O) and 3 H D + d bias entries.
    assert layer.count_params() == 4 * 128 * 128 + 3 * 128 + 128


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_heads=0, key_dim=4), "num_heads must be a positive int; received num_heads=0"),
        (dict(num_heads=2, key_dim=-1), "key_dim must be a positive int; received key_dim=-1"),
        (dict(num_heads=2, key_dim=4, dropout=1.0), r"dropout must be in \[0, 1\); received dropout=1.0"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadSelfAttention(**kwargs)


def test_mixed_bfloat16_scores_in_float32():
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=4, dtype="mixed_bfloat16")
    outputs, weights = layer(_inputs(width=8), use_causal_mask=True, return_attention_scores=True)
    assert outputs.dtype == "bfloat16" and weights.dtype == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, atol=1e-6)


def _rms(x, gain, epsilon=1e-5):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + epsilon) * gain


@pytest.mark.parametrize("use_qk_norm, use_rope", [(True, False), (False, True), (True, True)])
def test_qk_norm_and_rope_against_the_formula(use_qk_norm, use_rope):
    from tests.layers.test_rotary_embedding import _reference as rotate

    layer = MultiHeadSelfAttention(num_heads=2, key_dim=4, use_qk_norm=use_qk_norm, use_rope=use_rope)
    x = _inputs(width=8)
    outputs = layer(x, use_causal_mask=True)
    if use_qk_norm:
        assert [tuple(w.shape) for w in layer.weights][-2:] == [(4,), (4,)]  # one gain each, over D
        for norm in (layer.query_norm, layer.key_norm):
            norm.scale.assign(np.random.RandomState(3).uniform(0.5, 2.0, 4).astype("float32"))
        outputs = layer(x, use_causal_mask=True)
    qkv = np.einsum("btd,dshk->btshk", x, layer.qkv_kernel.numpy())
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if use_qk_norm:
        q, k = _rms(q, layer.query_norm.scale.numpy()), _rms(k, layer.key_norm.scale.numpy())
    if use_rope:
        q, k = rotate(q), rotate(k)
    scores = np.einsum("bthk,bshk->bhts", q, k) / 2.0  # sqrt(D) = 2
    scores = np.where(np.tril(np.ones((7, 7), bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = np.einsum(
        "bthk,hkd->btd", np.einsum("bhts,bshk->bthk", weights, v), layer.output_kernel.numpy()
    )
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_qk_norm_and_rope_cache_equals_full_pass():
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=4, use_qk_norm=True, use_rope=True)
    x = _inputs(batch=2, length=6, width=8, seed=1)
    full = np.asarray(layer(x, use_causal_mask=True))
    cache = (np.zeros((2, 2, 10, 4), "float32"),) * 2
    prefill, cache = layer(x[:, :3], cache=cache, cache_index=np.int32(0))
    steps = [prefill]
    for t in range(3, 6):  # each step rotates its query and key by the cached position
        step, cache = layer(x[:, t : t + 1], cache=cache, cache_index=np.int32(t))
        steps.append(step)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    config = layer.get_config()
    assert (config["use_qk_norm"], config["use_rope"], config["qk_norm_epsilon"]) == (True, True, 1e-5)
    clone = MultiHeadSelfAttention.from_config(config)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x, use_causal_mask=True), full)
    assert layer.count_params() == 4 * 8 * 8 + (3 * 8 + 8) + 2 * 4  # kernels, biases, Q and K gains
    with pytest.raises(ValueError, match="use_rope needs an even key_dim; received key_dim=3"):
        MultiHeadSelfAttention(num_heads=2, key_dim=3, use_rope=True)


@pytest.mark.parametrize(
    "call_kwargs, shapes, dtypes",
    [
        (dict(use_causal_mask=True), (2, 5, 8), "bfloat16"),
        (
            dict(use_causal_mask=True, return_attention_scores=True),
            ((2, 5, 8), (2, 2, 5, 5)),
            ("bfloat16", "float32"),  # the weights are computed in float32
        ),
    ],
)
def test_layer_contract(tmp_path, call_kwargs, shapes, dtypes):
    run_layer_test(
        MultiHeadSelfAttention,
        init_kwargs=dict(num_heads=2, key_dim=4, dropout=0.1),
        input_data=_inputs(length=5, width=8),
        call_kwargs=call_kwargs,
        expected_output_shape=shapes,
        expected_num_weights=4,
        expected_num_params=4 * 8 * 8 + 3 * 8 + 8,  # W^Q, W^K, W^V, W^O; QKV and output biases
        expected_mixed_dtypes=dtypes,
        tmp_path=tmp_path,
    )


def test_functional_call_with_a_cache_gives_the_new_cache():
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=4)
    step = keras.Input((1, 8))
    cache = (keras.Input((2, 10, 4)), keras.Input((2, 10, 4)))  # keys, values (B, H, S, D), S = 10
    outputs, new_cache = layer(step, cache=cache, cache_index=3)
    assert tuple(outputs.shape) == (None, 1, 8)
    assert [tuple(t.shape) for t in new_cache] == [(None, 2, 10, 4)] * 2
    outputs, weights, new_cache = layer(step, cache=cache, cache_index=3, return_attention_scores=True)
    assert [tuple(t.shape) for t in (outputs, weights)] == [(None, 1, 8), (None, 2, 1, 10)]
    assert [tuple(t.shape) for t in new_cache] == [(None, 2, 10, 4)] * 2
    assert [t.dtype for t in (outputs, weights, *new_cache)] == ["float32"] * 4
