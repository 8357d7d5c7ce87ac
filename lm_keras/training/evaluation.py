"""Evaluation: a model's loss on a split, in nats/token, perplexity and bits per character.

The trainer uses it for its periodic estimates and its final evaluation, and
`python -m lm_keras.evaluate` for a trained run. A split is a prepared dataset's
`TokenSplit` or an array of ids in memory (see `lm_keras.data.pipeline`).
"""

import math

import keras
import tensorflow as tf

from lm_keras.data import shards
from lm_keras.data.pipeline import eval_dataset, eval_targets, first_eval_target, train_dataset

EVAL_SEED = 2024  # the periodic estimate uses the same windows at every eval
LN2 = math.log(2.0)
_DECODE_CHUNK = 1 << 20  # ids decoded at once when counting the characters of scored targets


def per_example_loss(view, y, outputs):
    """Negative log-likelihood in nats: (B, T) for next_token, (B,) for many_to_one.

    next_token models return logits; the documented model returns softmax
    probabilities and is scored with categorical cross-entropy, as documented.
    """
    outputs = tf.cast(outputs, tf.float32)
    if view == "next_token":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=outputs)
    return keras.losses.categorical_crossentropy(y, outputs)


def make_eval_step(model, view, jit):
    """A compiled function (x, y, w) -> (sum of w * nll, sum of w)."""

    @tf.function(jit_compile=jit)
    def eval_step(x, y, w):
        nll = per_example_loss(view, y, model(x, training=False))
        return tf.reduce_sum(nll * w), tf.reduce_sum(w)

    return eval_step


def evaluate(eval_step, dataset):
    """(total nats, number of targets) over a dataset of (x, y, w) batches."""
    total, count = 0.0, 0.0
    for x, y, w in dataset:
        s, n = eval_step(x, y, w)
        total += float(s)
        count += float(n)
    return total, count


def with_unit_weights(dataset, view):
    """(x, y) batches -> (x, y, w) with w = 1 for every target."""
    if view == "next_token":
        return dataset.map(lambda x, y: (x, y, tf.ones(tf.shape(y), tf.float32)))
    return dataset.map(lambda x, y: (x, y, tf.ones(tf.shape(y)[:1], tf.float32)))


def estimate(eval_step, tokens, *, view, seq_len, batch_size, vocab_size, batches):
    """Mean loss over `batches` batches of random windows of a split, the same ones every time."""
    ds = train_dataset(
        tokens,
        seq_len=seq_len,
        batch_size=batch_size,
        seed=EVAL_SEED,
        view=view,
        vocab_size=vocab_size,
        num_steps=batches,
    )
    total, count = evaluate(eval_step, with_unit_weights(ds, view))
    return total / count


def full_evaluation(eval_step, tokens, tokenizer, *, view, seq_len, batch_size, vocab_size, max_targets=0):
    """Loss over the first `max_targets` targets of a split (0: every one): nats/token, perplexity, bits/char.

    Bits per character are the total bits over the characters the scored tokens decode
    to, so character and SentencePiece models compare on one scale.

    Returns:
        A dict: val_loss, val_perplexity, val_bits_per_char, val_tokens (the targets
        scored), val_chars (their characters), val_split_targets (the targets the split
        holds) and eval_tokens (the cap asked for; 0 for none).
    """
    ds = eval_dataset(
        tokens,
        seq_len=seq_len,
        batch_size=batch_size,
        view=view,
        vocab_size=vocab_size,
        max_targets=max_targets,
    )
    total, count = evaluate(eval_step, ds)
    first = first_eval_target(view, seq_len)
    chars = characters(tokenizer, tokens, first, first + int(count))
    return {
        "val_loss": total / count,
        "val_perplexity": math.exp(total / count),
        "val_bits_per_char": total / LN2 / chars,
        "val_tokens": int(count),
        "val_chars": chars,
        "val_split_targets": eval_targets(_num_tokens(tokens), view, seq_len),
        "eval_tokens": int(max_targets),
    }


def characters(tokenizer, tokens, start, stop):
    """The number of characters ids [start, stop) of a split decode to.

    The whole split after its first `start` ids is exact from the manifest's count;
    a part of one is decoded in chunks of about a million ids.
    """
    if isinstance(tokens, shards.TokenSplit) and stop >= tokens.tokens:
        return tokens.characters - len(tokenizer.decode(_read(tokens, 0, start)))
    return sum(
        len(tokenizer.decode(_read(tokens, a, min(a + _DECODE_CHUNK, stop))))
        for a in range(start, stop, _DECODE_CHUNK)
    )


def _read(tokens, start, stop):
    return tokens.read(start, stop) if isinstance(tokens, shards.TokenSplit) else tokens[start:stop]


def _num_tokens(tokens):
    return tokens.tokens if isinstance(tokens, shards.TokenSplit) else len(tokens)
