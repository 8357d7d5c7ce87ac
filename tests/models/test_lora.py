"""LoRA on TransformerLM: what trains, what it computes, and the plain model it merges into."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_keras.models import TransformerLM
from tests.models.helpers import VOCAB, train_with_xla

TINY = dict(vocab_size=11, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, seq_len=12, use_bias=True)


def _ids(batch=2, length=12, seed=0):
    return np.random.RandomState(seed).randint(0, 11, (batch, length)).astype("int32")


def _randomise(variables, seed=0):
    """Non-zero adapters (B starts at zero): what training leaves, so a test sees them act."""
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(rng.normal(0.0, 0.3, v.shape).astype("float32"))


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.parametrize(
    "targets, mlp, per_block",
    [
        # r = 4, d = 16, m = 32: query and value, each A (d, r) + B (r, H, D) = 2 r d.
        ("attention", "gelu", 2 * (2 * 4 * 16)),
        # ... and the MLP's two dense layers, each r (d + m).
        ("attention_mlp", "gelu", 2 * (2 * 4 * 16) + 2 * 4 * (16 + 32)),
        # ... and swiglu's third (its gate).
        ("attention_mlp", "swiglu", 2 * (2 * 4 * 16) + 3 * 4 * (16 + 32)),
        # query, key, value and output: 4 * 2 r d; the MLP's 2 r (d + m).
        ("all", "gelu", 4 * (2 * 4 * 16) + 2 * 4 * (16 + 32)),
    ],
)
def test_only_the_adapters_train_and_their_count_is_the_formula(targets, mlp, per_block):
    model = TransformerLM(**{**TINY, "mlp": mlp})
    base = model.count_params()
    model.enable_lora(4, 8.0, targets)
    assert _count(model.trainable_variables) == 2 * per_block  # N = 2 blocks
    assert model.trainable_variables == model.lora_variables
    assert {v.dtype for v in model.lora_variables} == {"float32"}
    assert model.count_params() == base + 2 * per_block
    # The documented formulas (TransformerLM.enable_lora), N (4 r d) and N (8 r d + 2 r (d + m)).
    if (targets, mlp) == ("attention", "gelu"):
        assert _count(model.trainable_variables) == 2 * 4 * 4 * 16
    if targets == "all":
        assert _count(model.trainable_variables) == 2 * (8 * 4 * 16 + 2 * 4 * (16 + 32))


def test_a_zero_adapter_leaves_the_logits_unchanged():
    model = TransformerLM(**TINY)
    ids = _ids()
    before = np.asarray(model(ids))
    model.enable_lora(4, 16.0, "all")
    # A random, B zeros: the model computes exactly what it did.
    assert all(np.any(v.numpy() != 0) for v in model.lora_variables if v.name.endswith(("_a", "kernel_a")))
    np.testing.assert_array_equal(np.asarray(model(ids)), before)
    cache = model.init_cache(2)
    cached, _ = model.call_with_cache(ids, cache, 0)
    np.testing.assert_allclose(np.asarray(cached), before, atol=1e-5)


@pytest.mark.parametrize("targets", ["attention", "attention_mlp", "all"])
def test_merged_model_is_plain_and_computes_the_same(targets):
    model = TransformerLM(**TINY)
    ids = _ids()
    base_logits = np.asarray(model(ids))
    model.enable_lora(2, 6.0, targets)
    _randomise(model.lora_variables)
    adapted = np.asarray(model(ids))
    assert np.max(np.abs(adapted - base_logits)) > 0.05  # the adapters act
    plain = model.merge_lora()
    assert not plain.lora_variables and plain.count_params() == TransformerLM(**TINY).count_params()
    assert len(plain.trainable_variables) == len(TransformerLM(**TINY).trainable_variables)
    np.testing.assert_allclose(np.asarray(plain(ids)), adapted, atol=2e-5)
    # The cached decoding path of the adapted model agrees as well.
    logits, _ = model.call_with_cache(ids, model.init_cache(2), 0)
    np.testing.assert_allclose(np.asarray(logits), adapted, atol=2e-5)


def test_training_moves_only_the_adapters():
    model = TransformerLM(**{**TINY, "vocab_size": len(VOCAB)})
    base = {v.path: v.numpy().copy() for v in model.weights}
    model.enable_lora(4, 8.0, "attention")
    losses = train_with_xla(model, epochs=2)
    assert losses[-1] < losses[0]
    for v in model.weights:
        if v.path in base:
            np.testing.assert_array_equal(v.numpy(), base[v.path])  # bit-identical
    assert any(np.any(v.numpy() != 0) for v in model.lora_variables if v.name.endswith("_b"))


def test_adapters_stay_float32_under_mixed_bfloat16(mixed_bfloat16):
    model = TransformerLM(**TINY)
    model.enable_lora(4, None, "attention_mlp")
    assert {v.dtype for v in model.lora_variables} == {"float32"}
    assert model.blocks[0].attention.lora_alpha == 4.0  # alpha None: the rank, a scale of 1
    _randomise(model.lora_variables)
    logits = model(_ids())
    assert logits.dtype == "float32"
    plain = model.merge_lora()
    np.testing.assert_allclose(np.asarray(plain(_ids())), np.asarray(logits), atol=0.1)


def test_enable_lora_refuses_bad_arguments():
    model = TransformerLM(**TINY)
    with pytest.raises(ValueError, match="lora_targets must be one of attention, attention_mlp, all"):
        model.enable_lora(4, 8.0, "mlp")
    with pytest.raises(ValueError, match="lora_rank must be a positive int; received lora_rank=0"):
        model.enable_lora(0)
    model.enable_lora(2)
    with pytest.raises(ValueError, match="already enabled"):
        model.enable_lora(2)


def test_xla_step_of_an_adapted_model_compiles():
    model = TransformerLM(**TINY)
    model.enable_lora(2, 4.0, "all")
    step = tf.function(lambda x: model(x), jit_compile=True)
    np.testing.assert_allclose(np.asarray(step(_ids())), np.asarray(model(_ids())), atol=1e-5)
    assert keras.config.dtype_policy().name == "float32"
