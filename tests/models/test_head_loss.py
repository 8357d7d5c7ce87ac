"""The head fused with its loss gives autodiff's loss and gradients, chunked, without the logits."""

import numpy as np
import pytest
import tensorflow as tf

from lm_keras.models import TransformerLM
from lm_keras.models import head_loss as head_loss_module
from lm_keras.models.head_loss import head_loss


def _plain(hidden, matrix, labels, weights, vocab_axis, softcap):
    logits = tf.matmul(hidden, matrix, transpose_b=vocab_axis == 0)
    if softcap:
        logits = softcap * tf.tanh(logits / softcap)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_sum(weights * nll)


@pytest.mark.parametrize("vocab_axis", [0, 1])
@pytest.mark.parametrize("softcap", [0.0, 3.0])
@pytest.mark.parametrize("jit", [False, True])
def test_equals_autodiff_over_several_chunks_with_padding(monkeypatch, vocab_axis, softcap, jit):
    # 7 tokens a chunk: 30 tokens are 5 chunks, the last padded with 5 tokens of weight 0.
    monkeypatch.setattr(head_loss_module, "CHUNK_LOGITS", 7 * 50)
    rng = np.random.default_rng(0)
    hidden = tf.constant(rng.normal(size=(30, 16)), tf.float32)
    shape = (50, 16) if vocab_axis == 0 else (16, 50)
    matrix = tf.Variable(rng.normal(size=shape), dtype=tf.float32)
    labels = tf.constant(rng.integers(0, 50, 30), tf.int32)
    weights = tf.constant(rng.uniform(size=30) * (np.arange(30) % 4 != 0), tf.float32)  # some 0

    @tf.function(jit_compile=jit)
    def both(hidden):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(hidden)
            fused = 2.0 * head_loss(
                hidden, tf.convert_to_tensor(matrix), labels, weights, vocab_axis=vocab_axis, softcap=softcap
            )
            plain = 2.0 * _plain(hidden, matrix, labels, weights, vocab_axis, softcap)
        return fused, plain, tape.gradient(fused, [hidden, matrix]), tape.gradient(plain, [hidden, matrix])

    fused, plain, fused_grads, plain_grads = both(hidden)
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-5)
    for mine, theirs in zip(fused_grads, plain_grads, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6)


def test_a_frozen_head_gets_no_gradient_and_the_hidden_states_theirs():
    rng = np.random.default_rng(1)
    hidden = tf.constant(rng.normal(size=(6, 8)), tf.float32)
    matrix = tf.Variable(rng.normal(size=(20, 8)), dtype=tf.float32, trainable=False)
    labels, weights = tf.constant([1, 2, 3, 4, 5, 6]), tf.fill((6,), 1 / 6)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(hidden)
        fused = head_loss(hidden, tf.convert_to_tensor(matrix), labels, weights, matrix_gradient=False)
        plain = _plain(hidden, matrix, labels, weights, 0, 0.0)
    np.testing.assert_allclose(
        tape.gradient(fused, hidden), tape.gradient(plain, hidden), rtol=1e-5, atol=1e-7
    )


def test_training_loss_equals_the_cross_entropy_of_the_models_logits():
    model = TransformerLM(vocab_size=40, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, seq_len=12)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.integers(0, 40, (3, 12)), tf.int32)
    y = tf.constant(rng.integers(0, 40, (3, 12)), tf.int32)
    w = tf.constant(rng.uniform(size=(3, 12)), tf.float32)
    segments = tf.constant(np.repeat([[0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2]], 3, axis=0), tf.int32)
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        fused = model.training_loss(x, y, w, segment_ids=segments)
        logits = model(x, training=True, segment_ids=segments)
        plain = tf.reduce_sum(w * tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-5)
    for mine, theirs, variable in zip(
        tape.gradient(fused, variables), tape.gradient(plain, variables), variables
    ):
        np.testing.assert_allclose(
            tf.convert_to_tensor(mine).numpy(),
            tf.convert_to_tensor(theirs).numpy(),
            rtol=1e-4,
            atol=1e-6,
            err_msg=variable.path,
        )
