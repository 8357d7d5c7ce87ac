"""MultiHeadSelfAttention.enable_lora: which projections change, by how much, and merged kernels."""

import numpy as np
import pytest

from lm_keras.layers.multi_head_self_attention import MultiHeadSelfAttention


def _layer(**kwargs):
    layer = MultiHeadSelfAttention(num_heads=2, key_dim=4, **kwargs)
    layer.build((None, None, 8))
    return layer


def _set(layer, seed=0):
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.normal(0.0, 0.3, v.shape).astype("float32"))


def test_query_and_value_adapters_change_only_the_query_and_value():
    layer = _layer()
    layer.enable_lora(3, 6.0, ("query", "value"))
    _set(layer)
    assert [v.name for v in layer.trainable_weights] == [
        "output_kernel",  # not adapted: left as it was (TransformerLM.enable_lora freezes every weight)
        "qkv_bias",
        "output_bias",
        "lora_query_a",
        "lora_query_b",
        "lora_value_a",
        "lora_value_b",
    ]
    assert not layer.qkv_kernel.trainable and layer.output_kernel.trainable
    merged = layer.merged_kernels()
    qkv, kernel = merged["qkv_kernel"].numpy(), layer.qkv_kernel.numpy()
    scale = 6.0 / 3
    a, b = layer.lora_query_a.numpy(), layer.lora_query_b.numpy()
    np.testing.assert_allclose(qkv[:, 0], kernel[:, 0] + scale * np.einsum("dr,rhk->dhk", a, b), atol=1e-6)
    np.testing.assert_array_equal(qkv[:, 1], kernel[:, 1])  # the keys keep their kernel exactly
    a, b = layer.lora_value_a.numpy(), layer.lora_value_b.numpy()
    np.testing.assert_allclose(qkv[:, 2], kernel[:, 2] + scale * np.einsum("dr,rhk->dhk", a, b), atol=1e-6)
    np.testing.assert_array_equal(merged["output_kernel"].numpy(), layer.output_kernel.numpy())


def test_merged_kernels_compute_what_the_adapted_layer_computes():
    layer = _layer()
    layer.enable_lora(2, 2.0, ("query", "key", "value", "output"))
    _set(layer)
    x = np.random.default_rng(1).normal(size=(2, 5, 8)).astype("float32")
    adapted = layer(x, use_causal_mask=True).numpy()
    plain = _layer()
    for name in ("qkv_bias", "output_bias"):
        getattr(plain, name).assign(getattr(layer, name))
    for name, value in layer.merged_kernels().items():
        getattr(plain, name).assign(value)
    np.testing.assert_allclose(plain(x, use_causal_mask=True).numpy(), adapted, atol=1e-5)


def test_enable_lora_needs_a_built_layer_and_known_targets():
    with pytest.raises(ValueError, match="needs a built layer"):
        MultiHeadSelfAttention(num_heads=2, key_dim=4).enable_lora(2)
    with pytest.raises(ValueError, match="targets must be some of query, key, value, output"):
        _layer().enable_lora(2, 2.0, ("query", "mlp"))
