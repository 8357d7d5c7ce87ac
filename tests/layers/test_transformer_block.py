import math

import keras
import numpy as np
import pytest

from lm_keras.layers import TransformerBlock
from tests.layer_test_case import run_layer_test


def _reference_block(block, x):
    """The block's formula in NumPy: x + Attn(LN(x)), then + W2 GELU(W1 LN(x))."""

    def layer_norm(x, norm):
        if block.norm == "rmsnorm":
            return x / np.sqrt((x**2).mean(-1, keepdims=True) + norm.epsilon) * norm.scale.numpy()
        mean = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        out = (x - mean) / np.sqrt(var + norm.epsilon) * norm.gamma.numpy()
        return out + norm.beta.numpy() if norm.center else out

    attention = block.attention
    h = layer_norm(x, block.attention_norm)
    qkv = np.einsum("btd,dshk->btshk", h, attention.qkv_kernel.numpy())  # (B, T, 3, H, D)
    if attention.use_bias:
        qkv = qkv + attention.qkv_bias.numpy().reshape(qkv.shape[2:])
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    scores = np.einsum("bthk,bshk->bhts", q, k) / math.sqrt(q.shape[-1])
    length = x.shape[1]
    scores = np.where(np.tril(np.ones((length, length), bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bhts,bshk->bthk", weights, v)
    attended = np.einsum("bthk,hkd->btd", heads, attention.output_kernel.numpy())
    if attention.use_bias:
        attended = attended + attention.output_bias.numpy()
    x = x + attended
    normed = layer_norm(x, block.mlp_norm)
    h = normed @ block.mlp_in.kernel.numpy()
    if block.use_bias:
        h = h + block.mlp_in.bias.numpy()
    if block.mlp == "gelu":
        h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))  # exact GELU
    elif block.mlp == "gelu_tanh":  # GPT-2's tanh approximation
        h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    elif block.mlp == "relu2":
        h = np.maximum(h, 0.0) ** 2
    else:  # swiglu: SiLU(W_g h) * W_1 h
        gate = normed @ block.mlp_gate.kernel.numpy()
        if block.use_bias:
            gate = gate + block.mlp_gate.bias.numpy()
        h = gate / (1 + np.exp(-gate)) * h
    h = h @ block.mlp_out.kernel.numpy()
    if block.use_bias:
        h = h + block.mlp_out.bias.numpy()
    return x + h


@pytest.mark.parametrize(
    "use_bias, mlp, norm",
    [
        (False, "gelu", "layernorm"),
        (True, "gelu", "layernorm"),
        (True, "gelu_tanh", "layernorm"),
        (False, "relu2", "rmsnorm"),
        (True, "swiglu", "rmsnorm"),
    ],
)
def test_matches_the_formula(use_bias, mlp, norm):
    block = TransformerBlock(
        num_heads=2, mlp_dim=24, mlp=mlp, norm=norm, use_bias=use_bias, kernel_initializer="random_normal"
    )
    x = np.random.RandomState(0).randn(2, 5, 8).astype("float32")
    outputs = block(x)
    assert outputs.shape == (2, 5, 8)
    if use_bias:  # make the biases count
        for w in block.weights:
            if w.path.endswith(("bias", "beta", "scale")):
                w.assign(np.random.RandomState(1).randn(*w.shape).astype("float32") * 0.1)
        outputs = block(x)
    np.testing.assert_allclose(outputs, _reference_block(block, x), atol=1e-5)


def test_parameter_count():
    d, m = 128, 512
    block = TransformerBlock(num_heads=4, mlp_dim=m, use_bias=False)
    block.build((None, None, d))
    assert block.count_params() == 4 * d * d + 2 * d * m + 2 * d == 196_864
    block = TransformerBlock(num_heads=4, mlp_dim=m, use_bias=True)
    block.build((None, None, d))
    assert block.count_params() == 196_864 + 7 * d + m


@pytest.mark.parametrize(
    "kwargs, extra",
    [
        (dict(mlp="swiglu"), 128 * 512),  # a third MLP matrix
        (dict(norm="rmsnorm"), 0),  # a gain per norm, as layer norm without biases
        (dict(use_qk_norm=True), 2 * 32),  # a gain over each head's width for Q and for K
        (dict(norm="rmsnorm", use_bias=True), 5 * 128 + 512),  # RMS norms have no shift
        (dict(mlp="swiglu", use_bias=True), 7 * 128 + 512 + 128 * 512 + 512),
    ],
)
def test_parameter_count_of_the_options(kwargs, extra):
    block = TransformerBlock(num_heads=4, mlp_dim=512, **kwargs)
    block.build((None, None, 128))
    assert block.count_params() == 196_864 + extra


def test_is_causal():
    block = TransformerBlock(num_heads=2, mlp_dim=16)
    x = np.random.RandomState(0).randn(1, 6, 8).astype("float32")
    changed = x.copy()
    changed[:, 4:] += 1.0
    np.testing.assert_allclose(block(changed)[:, :4], block(x)[:, :4], atol=1e-6)
    assert np.abs(np.asarray(block(changed)[:, 4:]) - np.asarray(block(x)[:, 4:])).max() > 1e-3


def test_cache_steps_equal_full_pass_and_attention_scores():
    block = TransformerBlock(num_heads=2, mlp_dim=16, use_bias=True)
    x = np.random.RandomState(0).randn(2, 5, 8).astype("float32")
    full, weights = block(x, return_attention_scores=True)
    assert weights.shape == (2, 2, 5, 5)
    cache = (np.zeros((2, 2, 8, 4), "float32"),) * 2  # keys, values (B, H, S, d / H)
    prefill, cache = block(x[:, :3], cache=cache, cache_index=np.int32(0))
    steps = [prefill]
    for t in (3, 4):
        out, cache = block(x[:, t : t + 1], cache=cache, cache_index=np.int32(t))
        steps.append(out)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_gelu_tanh_is_a_different_function():
    # The two GELUs differ by up to ~1e-3 at |h| ~ 2, so the formula test above can tell them apart.
    kwargs = dict(num_heads=2, mlp_dim=24, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0))
    exact, tanh = TransformerBlock(**kwargs), TransformerBlock(mlp="gelu_tanh", **kwargs)
    x = np.random.RandomState(0).randn(2, 5, 8).astype("float32")
    exact.build(x.shape)
    tanh.build(x.shape)
    tanh.set_weights(exact.get_weights())
    assert np.abs(np.asarray(exact(x)) - np.asarray(tanh(x))).max() > 1e-4


def test_config_round_trip_and_errors():
    block = TransformerBlock(
        num_heads=2,
        mlp_dim=16,
        mlp="gelu_tanh",
        norm="rmsnorm",
        use_qk_norm=True,
        use_rope=True,
        dropout=0.1,
        use_bias=True,
        layer_norm_epsilon=1e-6,
        output_kernel_initializer="zeros",
    )
    block.build((None, None, 8))
    config = block.get_config()
    clone = TransformerBlock.from_config(config)
    clone.build((None, None, 8))
    assert clone.get_config() == config
    assert config["mlp_dim"] == 16 and config["layer_norm_epsilon"] == 1e-6 and config["mlp"] == "gelu_tanh"
    assert block.attention_norm.epsilon == block.mlp_norm.epsilon == block.attention.qk_norm_epsilon == 1e-6
    assert (config["norm"], config["use_qk_norm"], config["use_rope"]) == ("rmsnorm", True, True)
    np.testing.assert_array_equal(clone.mlp_out.kernel.numpy(), 0.0)
    with pytest.raises(
        ValueError, match="hidden_dim must be divisible by num_heads; received hidden_dim=130, num_heads=4"
    ):
        TransformerBlock(num_heads=4, mlp_dim=16).build((None, None, 130))
    with pytest.raises(ValueError, match="mlp_dim must be a positive int; received mlp_dim=0"):
        TransformerBlock(num_heads=4, mlp_dim=0)
    with pytest.raises(
        ValueError, match="mlp must be one of gelu, gelu_tanh, relu2, swiglu; received mlp='relu'"
    ):
        TransformerBlock(num_heads=4, mlp_dim=16, mlp="relu")
    with pytest.raises(ValueError, match="norm must be one of layernorm, rmsnorm; received norm='rms'"):
        TransformerBlock(num_heads=4, mlp_dim=16, norm="rms")


@pytest.mark.parametrize(
    "call_kwargs, shapes, dtypes",
    [
        ({}, (2, 5, 8), "bfloat16"),
        (dict(return_attention_scores=True), ((2, 5, 8), (2, 2, 5, 5)), ("bfloat16", "float32")),
    ],
)
def test_layer_contract(tmp_path, call_kwargs, shapes, dtypes):
    d, m = 8, 16
    run_layer_test(
        TransformerBlock,
        init_kwargs=dict(num_heads=2, mlp_dim=m, dropout=0.1, use_bias=True),
        input_data=np.random.RandomState(0).randn(2, 5, d).astype("float32"),
        call_kwargs=call_kwargs,
        expected_output_shape=shapes,
        expected_num_weights=12,  # attention 4, two norms 2 each, two dense layers 2 each
        expected_num_params=4 * d * d + 2 * d * m + 2 * d + 7 * d + m,
        expected_mixed_dtypes=dtypes,
        tmp_path=tmp_path,
    )


def test_functional_call_with_a_cache_gives_the_new_cache():
    block = TransformerBlock(num_heads=2, mlp_dim=16)
    step = keras.Input((1, 8))
    cache = (keras.Input((2, 10, 4)), keras.Input((2, 10, 4)))  # keys, values (B, H, S, d / H), S = 10
    outputs, weights, new_cache = block(step, cache=cache, cache_index=3, return_attention_scores=True)
    assert [tuple(t.shape) for t in (outputs, weights)] == [(None, 1, 8), (None, 2, 1, 10)]
    assert [tuple(t.shape) for t in new_cache] == [(None, 2, 10, 4)] * 2


def test_layer_norms_default_to_nanogpts_epsilon():
    block = TransformerBlock(num_heads=2, mlp_dim=16)
    block.build((None, None, 8))
    # nanoGPT's LayerNorm is PyTorch's, whose epsilon is 1e-5.
    assert block.attention_norm.epsilon == block.mlp_norm.epsilon == 1e-5
