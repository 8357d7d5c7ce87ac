"""A small corpus and an XLA-compiled train step for the model tests."""

import keras
import numpy as np
import tensorflow as tf

CORPUS = (
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
    "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles "
    "and by opposing end them. To die, to sleep, no more; and by a sleep to say we end "
    "the heart-ache and the thousand natural shocks that flesh is heir to. "
) * 4
VOCAB = sorted(set(CORPUS))


def corpus_ids():
    """The characters of CORPUS as int32 ids over its sorted alphabet."""
    return np.array([VOCAB.index(c) for c in CORPUS], dtype="int32")


def next_token_batches(length=12, batch_size=16):
    """(x, y) int32 arrays (N, batch_size, length): windows and their next-token targets."""
    ids = corpus_ids()
    n = (len(ids) - 1) // (batch_size * length) * (batch_size * length)
    return ids[:n].reshape(-1, batch_size, length), ids[1 : n + 1].reshape(-1, batch_size, length)


def train_with_xla(model, epochs=4, learning_rate=3e-3):
    """Trains a next-token model with a `tf.function(jit_compile=True)` step, as the
    trainer does; returns the mean loss of each epoch."""
    x, y = next_token_batches()
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, logits.dtype == tf.float32

    losses = []
    for _ in range(epochs):
        epoch = []
        for i in range(len(x)):
            loss, float32_logits = step(x[i], y[i])
            assert bool(float32_logits)
            epoch.append(float(loss))
        losses.append(float(np.mean(epoch)))
    return losses
