"""make_optimizer: which optimiser updates which variable, Muon's matrix views, the schedules."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_keras.config import ModelConfig, TrainConfig
from lm_keras.models import build_model
from lm_keras.training.optimizers import ADAM_EPSILON, Muon, make_optimizer, make_schedule, matrix_view
from lm_keras.training.warmup_cosine import WarmupCosine
from lm_keras.training.warmup_stable_decay import WarmupStableDecay

MODERN = dict(position="rope", norm="rmsnorm", use_qk_norm=True, mlp="swiglu", tie_embeddings=False)


def _model(**options):
    return build_model(
        ModelConfig(vocab_size=13, num_layers=2, num_heads=2, hidden_dim=16, seq_len=8, **options)
    )


def _train_config(**fields):
    return TrainConfig(**{"max_steps": 100, "warmup_steps": 10, **fields})


def _suffix(variable):
    return variable.path.split("/", 1)[1]


def test_muon_takes_every_hidden_matrix_and_adamw_the_rest():
    model = _model(**MODERN)
    optimizer = make_optimizer(_train_config(optimizer="muon"), model.trainable_variables)
    assert isinstance(optimizer, Muon)
    by_muon = {_suffix(v) for v in model.trainable_variables if not optimizer._should_use_adamw(v)}
    by_adamw = {_suffix(v) for v in model.trainable_variables if optimizer._should_use_adamw(v)}
    per_block = [
        "attention/qkv_kernel",  # (d, 3, H, D): 4-D, which Keras's Muon would give to AdamW
        "attention/output_kernel",  # (H, D, d): 3-D, likewise
        "mlp_in/kernel",
        "mlp_gate/kernel",
        "mlp_out/kernel",
    ]
    assert by_muon == {f"block_{i}/{name}" for i in range(2) for name in per_block}
    assert by_adamw == {
        "token_embedding/embeddings",
        "token_embedding/reverse_embeddings",  # the untied head
        "final_norm/scale",
        *(
            f"block_{i}/{name}"
            for i in range(2)
            for name in (
                "attention_norm/scale",
                "mlp_norm/scale",
                "attention/query_norm/scale",
                "attention/key_norm/scale",
            )
        ),
    }
    # Only the AdamW variables carry a second moment.
    velocities = {_suffix(v) for v in optimizer.adam_velocities if v is not None}
    assert len(velocities) == len(by_adamw)


def test_matrix_views_of_the_fused_attention_kernels():
    model = _model(**MODERN)
    views = {_suffix(v): matrix_view(v) for v in model.trainable_variables}
    assert views["block_0/attention/qkv_kernel"] == (3, 16, 16)  # W^Q, W^K, W^V: (d, H D) each
    assert views["block_0/attention/output_kernel"] == (16, 16)  # W^O: (H D, d)
    assert views["block_0/mlp_in/kernel"] == (16, 48)
    assert views["token_embedding/embeddings"] is None and views["final_norm/scale"] is None


def _newton_schulz(x, steps=5, a=3.4445, b=-4.7750, c=2.0315):
    """Muon's quintic Newton-Schulz iteration for one matrix, in NumPy (float64)."""
    transposed = x.shape[0] > x.shape[1]
    x = x.T if transposed else x
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if transposed else x


def test_one_muon_step_orthogonalises_q_k_v_and_w_o_each_and_adam_steps_the_rest():
    model = _model(**MODERN)
    lr = 0.01
    config = _train_config(
        optimizer="muon", schedule="constant", learning_rate=lr, weight_decay=0.0, grad_clip=0.0
    )
    optimizer = make_optimizer(config, model.trainable_variables)
    rng = np.random.RandomState(0)
    grads = [rng.randn(*v.shape).astype("float32") for v in model.trainable_variables]
    before = [v.numpy() for v in model.trainable_variables]
    optimizer.apply(grads, model.trainable_variables)
    for v, g, old in zip(model.trainable_variables, grads, before):
        step = old - v.numpy()
        name = _suffix(v)
        if name.endswith("qkv_kernel"):
            # First step, Nesterov: the orthogonalised direction of g + 0.95 g, per W^Q, W^K, W^V.
            for i in range(3):
                expected = _newton_schulz(1.95 * g[:, i].reshape(16, 16)) * np.sqrt(16) * 0.2 * lr
                np.testing.assert_allclose(step[:, i].reshape(16, 16), expected, rtol=1e-3, atol=1e-6)
                singular = np.linalg.svd(
                    step[:, i].reshape(16, 16) / (np.sqrt(16) * 0.2 * lr), compute_uv=False
                )
                assert singular.min() > 0.5 and singular.max() < 1.3  # near-orthogonal, whatever g was
        elif name.endswith("output_kernel"):
            expected = _newton_schulz(1.95 * g.reshape(16, 16)) * np.sqrt(16) * 0.2 * lr
            np.testing.assert_allclose(step.reshape(16, 16), expected, rtol=1e-3, atol=1e-6)
        elif not optimizer._should_use_adamw(v):
            expected = _newton_schulz(1.95 * g) * np.sqrt(max(g.shape)) * 0.2 * lr
            np.testing.assert_allclose(step, expected, rtol=1e-3, atol=1e-6)
        else:  # Adam's first step is lr * g / (|g| + eps): lr times the sign
            np.testing.assert_allclose(step, lr * np.sign(g), rtol=1e-4)


def test_adam_keeps_adamw_epsilon_and_constant_means_constant():
    variables = _model().trainable_variables
    adam = make_optimizer(_train_config(optimizer="adam", schedule="constant", learning_rate=3e-4), variables)
    adamw = make_optimizer(_train_config(optimizer="adamw"), variables)
    assert type(adam) is keras.optimizers.Adam and adam.epsilon == adamw.epsilon == ADAM_EPSILON == 1e-8
    # No warm-up: the first step already trains at --learning_rate.
    assert float(adam.learning_rate) == pytest.approx(3e-4)
    assert make_schedule(_train_config(schedule="constant", learning_rate=3e-4)) == 3e-4


def test_adamw_decays_matrices_and_embeddings_not_gains():
    model = _model(norm="rmsnorm")
    optimizer = make_optimizer(_train_config(optimizer="adamw"), model.trainable_variables)
    decayed = {_suffix(v) for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {_suffix(v) for v in model.trainable_variables if len(v.shape) >= 2}


def test_schedules_of_the_config():
    cosine = make_schedule(_train_config(schedule="cosine"))
    assert isinstance(cosine, WarmupCosine) and cosine.decay_steps == 100
    wsd = make_schedule(
        _train_config(schedule="wsd", learning_rate=1e-2, min_learning_rate=1e-3, decay_fraction=0.3)
    )
    assert isinstance(wsd, WarmupStableDecay)
    assert wsd.get_config() == dict(peak=1e-2, minimum=1e-3, warmup_steps=10, decay_steps=30, total_steps=100)


@pytest.mark.parametrize(
    "it, expected",
    [
        (0, 1e-2 * 1 / 11),  # nanoGPT's warm-up
        (9, 1e-2 * 10 / 11),
        (10, 1e-2),
        (69, 1e-2),  # stable until the last 30 steps
        (70, 1e-2),
        (85, 1e-2 + (1e-3 - 1e-2) * 0.5),  # halfway down the linear decay
        (100, 1e-3),
        (150, 1e-3),
    ],
)
def test_warmup_stable_decay_values(it, expected):
    schedule = WarmupStableDecay(1e-2, 1e-3, warmup_steps=10, decay_steps=30, total_steps=100)
    assert float(schedule(it)) == pytest.approx(expected, rel=1e-5)
    assert WarmupStableDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_muon_trains_under_xla_with_a_loss_scale():
    model = _model(**MODERN)
    config = _train_config(optimizer="muon", mixed_precision="float16", learning_rate=3e-3)
    optimizer = make_optimizer(config, model.trainable_variables)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    x = tf.constant(np.random.RandomState(0).randint(0, 13, (4, 8)), tf.int32)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(x[:, 1:], model(x)[:, :-1]))
            scaled = optimizer.scale_loss(loss)
        optimizer.apply(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
        return loss

    losses = [float(step()) for _ in range(30)]
    assert losses[-1] < losses[0] - 0.5, losses
