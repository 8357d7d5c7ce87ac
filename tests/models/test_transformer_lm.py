import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_keras.config import ModelConfig
from lm_keras.errors import UserError
from lm_keras.layers.multi_head_self_attention import segment_positions
from lm_keras.models import TransformerLM, build_model
from tests.layer_test_case import run_layer_test
from tests.models.helpers import VOCAB, train_with_xla

TINY = dict(vocab_size=11, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, seq_len=12)


def _tiny(**kwargs):
    return TransformerLM(**{**TINY, **kwargs})


def _ids(batch=2, length=12, vocab=11, seed=0):
    return np.random.RandomState(seed).randint(0, vocab, (batch, length)).astype("int32")


def test_nanogpt_cpu_configuration_parameter_count():
    # nanoGPT's shakespeare_char CPU run: 4 layers, 4 heads, width 128, context 64,
    # vocab 65, bias=False. Per block (d = 128, MLP m = 4d = 512):
    #   W^Q, W^K, W^V, W^O: 4 d^2 = 65,536; MLP: 2 d m = 131,072; 2 layer-norm scales: 2 d = 256
    #   -> 196,864; 4 blocks -> 787,456.
    # Token embedding (tied with the output projection) 65 * 128 = 8,320; final norm 128;
    # learned positions 64 * 128 = 8,192.
    config = ModelConfig(vocab_size=65, num_layers=4, num_heads=4, hidden_dim=128, seq_len=64)
    model = build_model(config)
    assert model.count_params() == 787_456 + 8_320 + 128 + 8_192 == 804_096
    # nanoGPT prints "number of parameters: 0.80M": it leaves the position table out,
    # 804,096 - 8,192 = 795,904, which is exactly our count with sinusoidal positions.
    sinusoidal = build_model(ModelConfig(**{**vars(config), "position": "sinusoidal"}))
    assert sinusoidal.count_params() == 795_904
    assert round(sinusoidal.count_params() / 1e6, 2) == 0.80
    # Biases: per block 3d (QKV) + d (W^O) + 2d (norm shifts) + m + d (MLP); + d final.
    with_bias = build_model(ModelConfig(**{**vars(config), "use_bias": True}))
    assert with_bias.count_params() == 804_096 + 4 * (7 * 128 + 512) + 128


def test_every_weight_starts_from_its_own_draw():
    # GPT-2 initialisation, each weight drawn independently: one shared unseeded Keras
    # initializer would repeat the same values in every block.
    model = build_model(ModelConfig(vocab_size=65, num_layers=4, num_heads=4, hidden_dim=128, seq_len=64))
    weights = {v.path: v.numpy() for v in model.trainable_variables if len(v.shape) >= 2}
    kernels = [w.ravel()[:1000] for w in weights.values()]
    for i in range(len(kernels)):
        for j in range(i + 1, len(kernels)):
            assert abs(np.corrcoef(kernels[i], kernels[j])[0, 1]) < 0.2
    stds = {path.split("/", 1)[1]: w.std() for path, w in weights.items()}
    assert stds["token_embedding/embeddings"] == pytest.approx(0.02, rel=0.05)
    assert stds["block_3/attention/qkv_kernel"] == pytest.approx(0.02, rel=0.05)
    assert stds["block_3/mlp_out/kernel"] == pytest.approx(0.02 / np.sqrt(8), rel=0.05)


def test_output_projection_is_the_tied_embedding():
    model = _tiny()
    assert [tuple(w.shape) for w in model.weights if 11 in w.shape] == [(11, 16)]
    ids = _ids()
    hidden = model.final_norm(_hidden_states(model, ids))
    expected = np.asarray(hidden) @ model.token_embedding.embeddings.numpy().T
    logits = model(ids)
    assert logits.shape == (2, 12, 11) and logits.dtype == "float32"
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def _hidden_states(model, ids):
    x = model.token_embedding(ids) + model.position_embedding(model.token_embedding(ids))
    for block in model.blocks:
        x = block(x)
    return x


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_is_causal(position):
    model = _tiny(position=position)
    ids = _ids()
    changed = ids.copy()
    changed[:, 7:] = (changed[:, 7:] + 1) % 11
    np.testing.assert_allclose(model(changed)[:, :7], model(ids)[:, :7], atol=1e-6)
    assert np.abs(np.asarray(model(changed)[:, 7:]) - np.asarray(model(ids)[:, 7:])).max() > 1e-4


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
def test_packed_examples_compute_what_each_computes_alone(position):
    # Three examples packed in one window: with their segments, each attends only to itself
    # and restarts at position 0.
    model = _tiny(position=position)
    ids = np.array([[3, 4, 10, 5, 6, 7, 10, 8, 9, 1, 2, 3]], np.int32)
    segments = np.array([[0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]], np.int32)
    np.testing.assert_array_equal(segment_positions(segments), [[0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]])
    packed = model(ids, segment_ids=segments).numpy()
    for start, end in ((0, 3), (3, 7), (7, 12)):
        np.testing.assert_allclose(packed[:, start:end], model(ids[:, start:end]).numpy(), atol=2e-6)
    # Without segments the later examples see the earlier ones.
    assert np.abs(model(ids).numpy()[:, 3:7] - packed[:, 3:7]).max() > 1e-3


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_cached_decoding_equals_full_pass(position):
    model = _tiny(position=position, use_bias=True)
    ids = _ids()
    full = np.asarray(model(ids))

    cache = model.init_cache(2)
    assert len(cache) == 2 and all(k.shape == v.shape == (2, 2, 12, 8) for k, v in cache)  # (B, H, S, D)
    steps = []
    for t in range(12):
        logits, cache = model.call_with_cache(ids[:, t : t + 1], cache, np.int32(t))
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)

    cache = model.init_cache(2)
    prefill, cache = model.call_with_cache(ids[:, :5], cache, np.int32(0))
    step, cache = model.call_with_cache(ids[:, 5:6], cache, np.int32(5))
    assert prefill.dtype == "float32" and prefill.shape == (2, 5, 11)
    np.testing.assert_allclose(prefill, full[:, :5], atol=1e-5)
    np.testing.assert_allclose(step, full[:, 5:6], atol=1e-5)


def test_cached_decoding_in_an_xla_while_loop():
    model = _tiny()
    ids = tf.constant(_ids())
    prompt = 4

    @tf.function(jit_compile=True)
    def decode(ids):
        cache = model.init_cache(2)
        first, cache = model.call_with_cache(ids[:, :prompt], cache, tf.constant(0))
        steps = tf.TensorArray(tf.float32, size=12 - prompt)

        def body(i, cache, steps):
            token = tf.slice(ids, [0, i], [2, 1])
            logits, cache = model.call_with_cache(token, cache, i)
            return i + 1, cache, steps.write(i - prompt, logits[:, 0])

        _, _, steps = tf.while_loop(lambda i, *_: i < 12, body, (tf.constant(prompt), cache, steps))
        return tf.concat([first, tf.transpose(steps.stack(), (1, 0, 2))], axis=1)

    np.testing.assert_allclose(decode(ids), model(ids), atol=1e-5)


def test_attention_maps():
    model = _tiny()
    maps = np.asarray(model.attention_maps(_ids(length=9)))
    assert maps.shape == (2, 2, 2, 9, 9) and maps.dtype == np.float32
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.triu(maps, k=1), 0.0)


def test_config_round_trip():
    model = _tiny(dropout=0.1, use_bias=True, position="sinusoidal", name="lm")
    config = model.get_config()
    assert {
        k: config[k]
        for k in (
            "vocab_size",
            "num_layers",
            "num_heads",
            "hidden_dim",
            "mlp_dim",
            "seq_len",
            "dropout",
            "use_bias",
            "position",
        )
    } == dict(
        vocab_size=11,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
        seq_len=12,
        dropout=0.1,
        use_bias=True,
        position="sinusoidal",
    )
    clone = TransformerLM.from_config(config)
    assert clone.get_config() == config and clone.count_params() == model.count_params()
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(_ids()), model(_ids()))


def test_from_model_config_maps_the_fields():
    cfg = ModelConfig(
        vocab_size=7,
        seq_len=10,
        num_layers=3,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=0,
        dropout=0.2,
        use_bias=True,
        position="sinusoidal",
        mlp="gelu_tanh",
        layer_norm_epsilon=1e-6,
    )
    model = build_model(cfg)
    assert isinstance(model, TransformerLM) and model.built
    assert model.mlp == "gelu_tanh" and all(block.mlp == "gelu_tanh" for block in model.blocks)
    norms = [model.final_norm] + [n for b in model.blocks for n in (b.attention_norm, b.mlp_norm)]
    assert [n.epsilon for n in norms] == [1e-6] * 7
    assert (
        model.vocab_size,
        model.seq_len,
        model.num_layers,
        model.num_heads,
        model.hidden_dim,
        model.mlp_dim,
        model.dropout,
        model.use_bias,
        model.position,
    ) == (7, 10, 3, 2, 8, 32, 0.2, True, "sinusoidal")


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_keras_file_round_trip_in_safe_mode(tmp_path, position):
    model = _tiny(position=position, use_bias=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is TransformerLM and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(_ids()), model(_ids()))
    # The cached call attends over all S cache slots, a different computation from the
    # full call over 3 tokens (tested against it with a tolerance elsewhere): the round
    # trip compares the same computation on both models.
    logits, _ = loaded.call_with_cache(_ids()[:, :3], loaded.init_cache(2), np.int32(0))
    expected, _ = model.call_with_cache(_ids()[:, :3], model.init_cache(2), np.int32(0))
    np.testing.assert_array_equal(logits, expected)


def test_trains_under_xla():
    vocab = len(VOCAB)
    losses = train_with_xla(_tiny(vocab_size=vocab, dropout=0.1))
    assert losses[-1] < losses[0] - 0.3, losses


def test_trains_under_mixed_bfloat16_with_float32_logits(mixed_bfloat16):
    vocab = len(VOCAB)
    model = _tiny(vocab_size=vocab)
    assert model.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)
    assert model(_ids(vocab=vocab)).dtype == "float32"
    assert model.init_cache(1)[0][0].dtype == "bfloat16"
    logits, _ = model.call_with_cache(_ids(vocab=vocab)[:, :2], model.init_cache(2), np.int32(0))
    assert logits.dtype == "float32"
    losses = train_with_xla(model)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.3, losses


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(hidden_dim=130, num_heads=4),
            "hidden_dim must be divisible by num_heads; received hidden_dim=130, num_heads=4",
        ),
        (dict(num_layers=0), "num_layers must be a positive int; received num_layers=0"),
        (dict(seq_len=2.5), "seq_len must be a positive int; received seq_len=2.5"),
        (
            dict(position="rotary"),
            "position must be one of learned, sinusoidal, rope; received position='rotary'",
        ),
        (dict(dropout=1.5), "dropout must be in [0, 1); received dropout=1.5"),
        (dict(norm="batchnorm"), "norm must be one of layernorm, rmsnorm; received norm='batchnorm'"),
        (dict(mlp="glu"), "mlp must be one of gelu, gelu_tanh, relu2, swiglu; received mlp='glu'"),
        (dict(logit_softcap=-1.0), "logit_softcap must be >= 0 (0 is off); received logit_softcap=-1.0"),
        (
            dict(position="rope", hidden_dim=6, num_heads=2),
            "position='rope' needs heads of even width (hidden_dim / num_heads); "
            "received hidden_dim=6, num_heads=2",
        ),
    ],
)
def test_rejects_bad_arguments_as_its_config_does(kwargs, message):
    # One rule, one message: the model's ValueError, and the same line after "--" from the
    # config's flags (lm_keras.model_settings.transformer_problem).
    with pytest.raises(ValueError) as model_error:
        _tiny(**kwargs)
    assert str(model_error.value) == message
    with pytest.raises(UserError) as config_error:
        ModelConfig(**{**TINY, **kwargs})
    assert str(config_error.value) == "--" + message


def test_needs_a_vocab_size_a_config_may_leave_to_the_tokenizer():
    with pytest.raises(ValueError, match="^vocab_size must be a positive int; received vocab_size=0$"):
        _tiny(vocab_size=0)
    assert ModelConfig(**{**TINY, "vocab_size": 0}).vocab_size == 0


def test_rejects_inputs_longer_than_the_context():
    with pytest.raises(ValueError, match="token_ids must be at most seq_len=12 long; received length 13"):
        _tiny()(_ids(length=13))


def test_tf_checkpoint_round_trip_restores_every_weight(tmp_path):
    # The trainer checkpoints with tf.train.Checkpoint, which sees only trackable attributes.
    model, restored = _tiny(use_bias=True), _tiny(use_bias=True)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(saved) == len(model.weights) == 2 * 12 + 4  # 12 per block with biases
    tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(restored(_ids()), model(_ids()))


# ------------------------------------------------------------------ modern options

EPS = float(np.finfo(np.float32).eps)
# Each option alone, and two recipes with all of them (the MLPs exclude each other).
OPTIONS = {
    "rope": dict(position="rope"),
    "rmsnorm": dict(norm="rmsnorm"),
    "use_qk_norm": dict(use_qk_norm=True),
    "gelu_tanh": dict(mlp="gelu_tanh"),
    "relu2": dict(mlp="relu2"),
    "swiglu": dict(mlp="swiglu"),
    "untied": dict(tie_embeddings=False),
    "zero_init": dict(zero_init_residual=True),
    "softcap": dict(logit_softcap=2.0),
}
RECIPES = {
    "modern_relu2": dict(
        position="rope",
        norm="rmsnorm",
        use_qk_norm=True,
        mlp="relu2",
        tie_embeddings=False,
        zero_init_residual=True,
        logit_softcap=2.0,
    ),
    "modern_swiglu": dict(
        position="rope",
        norm="rmsnorm",
        use_qk_norm=True,
        mlp="swiglu",
        tie_embeddings=False,
        zero_init_residual=True,
        logit_softcap=2.0,
        use_bias=True,
    ),
}


def _expected_parameters(V, d, m, N, S, H, options):  # noqa: N803 (the docstring's symbols)
    """The docstring's formula for TransformerLM's parameter count."""
    o = {"position": "learned", "norm": "layernorm", "mlp": "gelu", "use_bias": False, **options}
    embedding = V * d * (1 if o.get("tie_embeddings", True) else 2)
    positions = S * d if o["position"] == "learned" else 0
    mlp = (3 if o["mlp"] == "swiglu" else 2) * d * m
    per_block = 4 * d * d + mlp + 2 * d + (2 * (d // H) if o.get("use_qk_norm") else 0)
    total = embedding + positions + N * per_block + d
    if o["use_bias"]:
        shifts = 2 * d if o["norm"] == "layernorm" else 0
        total += N * (5 * d + shifts + m + (m if o["mlp"] == "swiglu" else 0))
        total += d if o["norm"] == "layernorm" else 0
    return total


@pytest.mark.parametrize("name", [*OPTIONS, *RECIPES])
def test_option_parameter_count_matches_the_formula(name):
    options = {**OPTIONS, **RECIPES}[name]
    config = ModelConfig(vocab_size=65, num_layers=4, num_heads=4, hidden_dim=128, seq_len=64, **options)
    model = build_model(config)
    m = config.resolved_mlp_dim
    assert m == (344 if options.get("mlp") == "swiglu" else 512)  # swiglu: 3 d m ~ 2 d (4 d)
    assert model.count_params() == _expected_parameters(65, 128, m, 4, 64, 4, options)
    # Each option alone stays within 1.5% of the article's GPT (804,096); untied adds V d.
    if name in OPTIONS and name != "untied":
        assert abs(model.count_params() / 804_096 - 1) < 0.015


def _randomised(model, seed=0):
    """The model with every weight random (zero-initialised ones too), so each one matters."""
    rng = np.random.RandomState(seed)
    for w in model.weights:
        w.assign(rng.normal(0.0, 0.3, w.shape).astype("float32") + (1.0 if len(w.shape) == 1 else 0.0))
    return model


@pytest.mark.parametrize("name", [*OPTIONS, *RECIPES])
def test_option_cached_decoding_equals_recompute(name):
    options = {**OPTIONS, **RECIPES}[name]
    model = _randomised(_tiny(**options))
    ids = _ids()
    full = np.asarray(model(ids))
    assert np.abs(full).max() > 0.5  # logits that could differ
    cache = model.init_cache(2)
    prefill, cache = model.call_with_cache(ids[:, :5], cache, np.int32(0))
    steps = [prefill]
    for t in range(5, 12):
        logits, cache = model.call_with_cache(ids[:, t : t + 1], cache, np.int32(t))
        steps.append(logits)
    # Different computations (the cache attends over all S slots): float32 rounding apart.
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e3 * EPS * np.abs(full).max())


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_config_round_trip_and_keras_file(tmp_path, name):
    model = _randomised(_tiny(**RECIPES[name]))
    config = model.get_config()
    assert {k: config[k] for k in RECIPES[name]} == RECIPES[name]
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.get_config() == config
    np.testing.assert_array_equal(loaded(_ids()), model(_ids()))


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_trains_under_xla_and_mixed_bfloat16(mixed_bfloat16, name):
    model = _tiny(vocab_size=len(VOCAB), **RECIPES[name])
    assert model.compute_dtype == "bfloat16" and all(w.dtype == "float32" for w in model.weights)
    logits, cache = model.call_with_cache(_ids(vocab=len(VOCAB))[:, :2], model.init_cache(2), np.int32(0))
    assert logits.dtype == "float32" and cache[0][0].dtype == "bfloat16"
    losses = train_with_xla(model)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.3, losses


def test_rope_has_no_position_table_and_sees_positions():
    model = _randomised(_tiny(position="rope"))
    assert model.position_embedding is None
    assert all(block.attention.use_rope for block in model.blocks)
    assert not any("position" in w.path for w in model.weights)
    # Without positions, attention at the last token would not change when two earlier
    # tokens swap places; the rotations make the order visible.
    ids = _ids(batch=1)
    swapped = ids.copy()
    swapped[0, [2, 5]] = ids[0, [5, 2]]
    assert ids[0, 2] != ids[0, 5]
    assert np.abs(np.asarray(model(ids))[0, -1] - np.asarray(model(swapped))[0, -1]).max() > 1e-3


def test_untied_head_starts_at_zero_and_is_its_own_matrix():
    model = _tiny(tie_embeddings=False)
    head = model.token_embedding.reverse_embeddings
    assert tuple(head.shape) == (16, 11)
    np.testing.assert_array_equal(head.numpy(), 0.0)
    np.testing.assert_array_equal(model(_ids()), 0.0)  # uniform first predictions
    head.assign(np.random.RandomState(0).randn(16, 11).astype("float32"))
    hidden = np.asarray(model.final_norm(_hidden_states(model, _ids())))
    np.testing.assert_allclose(model(_ids()), hidden @ head.numpy(), atol=1e3 * EPS)


def test_zero_init_residual_blocks_start_as_the_identity():
    model = _tiny(zero_init_residual=True)
    for block in model.blocks:
        np.testing.assert_array_equal(block.attention.output_kernel.numpy(), 0.0)
        np.testing.assert_array_equal(block.mlp_out.kernel.numpy(), 0.0)
    x = np.random.RandomState(0).randn(2, 12, 16).astype("float32")
    np.testing.assert_array_equal(model.blocks[0](x), x)


def test_logit_softcap_is_c_tanh_of_the_logits():
    capped = _randomised(_tiny(logit_softcap=1.0))
    plain = _tiny()
    plain.set_weights(capped.get_weights())
    raw = np.asarray(plain(_ids()))
    assert np.abs(raw).max() > 2.0  # the cap bites
    np.testing.assert_allclose(capped(_ids()), np.tanh(raw), atol=1e3 * EPS * np.abs(raw).max())


def test_rmsnorm_everywhere():
    model = _tiny(norm="rmsnorm", use_bias=True)
    norms = [model.final_norm] + [n for b in model.blocks for n in (b.attention_norm, b.mlp_norm)]
    assert all(isinstance(n, keras.layers.RMSNormalization) for n in norms)
    x = np.random.RandomState(0).randn(2, 3, 16).astype("float32") * 5
    expected = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(model.final_norm(x), expected, rtol=1e2 * EPS, atol=1e2 * EPS)


# The two recipes differ in the MLP's activation only; the swiglu one guards the default suite.
@pytest.mark.parametrize("name", [pytest.param("modern_relu2", marks=pytest.mark.slow), "modern_swiglu"])
def test_recipe_exports_with_stock_ops_and_generates_the_same_text(tmp_path, name):
    from lm_keras.generation import generate
    from lm_keras.serving.generation_module import GenerationModule
    from lm_keras.serving.saved_model_export import save_version
    from tests.generation.tiny_models import char_tokenizer
    from tests.test_export_cli import saved_model_proto

    tokenizer = char_tokenizer()
    keras.utils.set_random_seed(0)
    model = build_model(
        ModelConfig(
            vocab_size=tokenizer.vocab_size,
            num_layers=2,
            num_heads=2,
            hidden_dim=16,
            seq_len=16,
            **RECIPES[name],
        )
    )
    for w in model.weights:  # clear-cut greedy choices, and a head that is not zero
        w.assign(np.random.RandomState(1).normal(0.0, 0.5, w.shape).astype("float32") + (len(w.shape) == 1))
    prompts = ["ROMEO:", "First Citizen:\nBefore we proceed"]  # the second is longer than the context
    version = save_version(GenerationModule(model, tokenizer, temperature=0.0, max_new_tokens=8), tmp_path)
    graph = saved_model_proto(version)
    ops = {node.op for node in graph.graph_def.node}
    for function in graph.graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    assert not {op for op in ops if op.startswith("Xla") or "PyFunc" in op}, sorted(ops)
    loaded = tf.saved_model.load(str(version))
    out = loaded.signatures["serving_default"](prompt=tf.constant(prompts))
    texts = [t.decode("utf-8") for t in out["continuation"].numpy()]
    assert texts == generate(model, tokenizer, prompts, max_new_tokens=8, temperature=0.0)


@pytest.mark.parametrize("name", ["shakespeare_char_cpu_modern", "shakespeare_char_cpu_10min_modern"])
def test_modern_presets_keep_the_cpu_presets_shape_and_parameters(name):
    from lm_keras.config import preset

    modern, article = preset(name), preset(name.replace("_modern", ""))
    for field in ("num_layers", "num_heads", "hidden_dim", "seq_len"):
        assert getattr(modern.model, field) == getattr(article.model, field)
    assert modern.train.batch_size == article.train.batch_size == 12
    if name == "shakespeare_char_cpu_modern":
        assert modern.train.max_steps == article.train.max_steps == 2000
    count = build_model(dataclasses.replace(modern.model, vocab_size=65)).count_params()
    m = modern.model.resolved_mlp_dim  # 344 for swiglu
    assert count == _expected_parameters(65, 128, m, 4, 64, 4, vars(modern.model))
    assert abs(count / 804_096 - 1) < 0.10  # within 10% of shakespeare_char_cpu's


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_layer_contract(tmp_path, position):
    v, d, m, n, s = 11, 16, 32, 2, 12
    learned = position == "learned"
    run_layer_test(
        TransformerLM,
        init_kwargs=dict(
            vocab_size=v,
            num_layers=n,
            num_heads=2,
            hidden_dim=d,
            mlp_dim=m,
            seq_len=s,
            use_bias=True,
            position=position,
        ),
        input_data=_ids(),
        expected_output_shape=(2, s, v),
        expected_num_weights=1 + learned + n * 12 + 2,  # embedding, positions, blocks, final norm
        expected_num_params=v * d
        + learned * s * d
        + n * (4 * d * d + 2 * d * m + 2 * d)
        + d
        + n * (7 * d + m)
        + d,
        expected_mixed_dtypes="float32",  # the tied output projection computes in float32
        tmp_path=tmp_path,
    )


def test_layer_contract_with_the_modern_options(tmp_path):
    v, d, m, n, s, h = 11, 16, 32, 2, 12, 2
    options = dict(position="rope", norm="rmsnorm", use_qk_norm=True, mlp="swiglu", logit_softcap=30.0)
    run_layer_test(
        TransformerLM,
        init_kwargs=dict(
            vocab_size=v, num_layers=n, num_heads=h, hidden_dim=d, mlp_dim=m, seq_len=s, **options
        ),
        input_data=_ids(),
        expected_output_shape=(2, s, v),
        # embedding; per block: qkv and output kernels, two RMS scales, three SwiGLU kernels, two QK scales;
        # the final norm's scale
        expected_num_weights=1 + n * 9 + 1,
        expected_num_params=_expected_parameters(v, d, m, n, s, h, options),
        expected_mixed_dtypes="float32",
        tmp_path=tmp_path,
    )
