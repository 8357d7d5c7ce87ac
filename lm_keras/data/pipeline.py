"""tf.data pipelines: one tokenized corpus, two views, static shapes.

Views of a token array `ids`:
- `next_token`: windows x = ids[o:o+T], y = ids[o+1:o+T+1], shapes (B, T) -> (B, T),
  for the sequence models (TransformerLM, LSTMLM).
- `many_to_one`: the documented form x = ids[o:o+T] -> y = one_hot(ids[o+T]), shapes
  (B, T) -> (B, V). The one-hot targets are made per batch, so categorical
  cross-entropy fits in memory for any corpus.

Training batches are drawn like nanoGPT's: window offsets sampled uniformly, here
with a stateless generator keyed by (seed, step). Batch `step` is therefore a pure
function of the seed and the step number: a resumed run continues with exactly the
batches it would have seen, and every worker of a distributed run can cut its own
slice of the same global batch.
"""

import numpy as np
import tensorflow as tf

from lm_keras.errors import UserError

VIEWS = ("next_token", "many_to_one")


def check_windows(ids, seq_len, split, corpus_name):
    """Raises `UserError` unless `ids` holds at least one window of seq_len + 1 tokens."""
    if len(ids) < seq_len + 1:
        raise UserError(
            f"corpus {corpus_name!r}: the {split} split has {len(ids)} tokens, fewer than one "
            f"training window of seq_len + 1 = {seq_len + 1}; use a larger corpus or a smaller --seq_len"
        )


def train_dataset(
    ids,
    *,
    seq_len,
    batch_size,
    seed,
    view="next_token",
    vocab_size=None,
    start_step=0,
    num_steps=None,
    input_context=None,
):
    """Random training windows, one global batch per step.

    Args:
        ids: int array (N,), the tokenized training split.
        seq_len: window length T.
        batch_size: the global batch size B.
        seed: int; batch `step` depends only on (seed, step).
        view: "next_token" or "many_to_one".
        vocab_size: needed for the one-hot targets of "many_to_one".
        start_step: the first step to produce (a resumed run starts where it stopped).
        num_steps: how many batches; None for an endless stream.
        input_context: a `tf.distribute.InputContext`; each input pipeline then yields
            its own contiguous slice of every global batch, of size B / num_pipelines.

    Returns:
        A dataset of (x, y): x int32 (b, T); y int32 (b, T) or float32 one-hot (b, V).
    """
    _check_view(view, vocab_size)
    ids = tf.constant(np.asarray(ids, dtype=np.int32))
    num_offsets = int(ids.shape[0]) - seq_len  # offsets 0 .. N-T-1 leave room for the target
    if num_offsets < 1:
        raise UserError(f"training split has {ids.shape[0]} tokens, fewer than seq_len + 1 = {seq_len + 1}")
    local_batch, first = batch_size, 0
    if input_context is not None and input_context.num_input_pipelines > 1:
        if batch_size % input_context.num_input_pipelines:
            raise UserError(
                f"--batch_size={batch_size} must be divisible by the {input_context.num_input_pipelines} "
                "input pipelines of the distributed run"
            )
        local_batch = batch_size // input_context.num_input_pipelines
        first = input_context.input_pipeline_id * local_batch

    def make_batch(step):
        offsets = tf.random.stateless_uniform(
            [batch_size],
            seed=tf.stack([tf.cast(seed, tf.int64), step]),
            minval=0,
            maxval=num_offsets,
            dtype=tf.int64,
        )  # (B,)
        windows = tf.gather(
            ids, offsets[first : first + local_batch, None] + tf.range(seq_len + 1, dtype=tf.int64)
        )  # (b, T+1)
        return _split_window(windows, view, vocab_size)

    stop = tf.int64.max if num_steps is None else start_step + num_steps
    return (
        tf.data.Dataset.range(start_step, stop)
        .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(ids, *, seq_len, batch_size, view="next_token", vocab_size=None):
    """Every target of a split exactly once, as (x, y, weight) batches of static shape.

    next_token: windows start at 0, T, 2T, ...; targets are ids[1:].
    many_to_one: one window per target position p in T .. N-1 (targets ids[T:]).
    The last batch is padded with weight-0 rows (and weight-0 positions).

    Returns:
        A dataset of (x, y, w); w float32 (B, T) for next_token, (B,) for many_to_one.

    Keras's `model.fit(validation_data=...)` and `model.evaluate` divide each batch's
    weighted loss by the batch size, weight-0 rows included, so their figure for a
    padded last batch is too low; `lm_keras.training.trainer.evaluate` divides by
    the sum of the weights and is exact.
    """
    _check_view(view, vocab_size)
    n = len(ids)
    ids = tf.constant(np.asarray(ids, dtype=np.int32))
    if view == "next_token":
        num_windows = -(-(n - 1) // seq_len)
        starts_step = seq_len
    else:
        num_windows = n - seq_len
        starts_step = 1
    if num_windows < 1:
        raise UserError(f"validation split has {n} tokens, fewer than seq_len + 1 = {seq_len + 1}")
    padded = -(-num_windows // batch_size) * batch_size

    def make_batch(k):
        starts = k * starts_step  # (B,)
        positions = starts[:, None] + tf.range(seq_len + 1, dtype=tf.int64)  # (B, T+1)
        windows = tf.gather(ids, tf.minimum(positions, n - 1))  # (B, T+1)
        x, y = _split_window(windows, view, vocab_size)
        valid = tf.cast(k < num_windows, tf.float32)[:, None]  # (B, 1)
        # (B, T) for next_token, (B,) for many_to_one.
        w = tf.cast(positions[:, 1:] < n, tf.float32) * valid if view == "next_token" else valid[:, 0]
        return x, y, w

    return (
        tf.data.Dataset.range(padded)
        .batch(batch_size, drop_remainder=True)
        .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def first_eval_target(view, seq_len):
    """Index of the first token `eval_dataset` predicts (the ones before it are context)."""
    return 1 if view == "next_token" else seq_len


def _split_window(windows, view, vocab_size):
    if view == "next_token":
        return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)
    return windows[:, :-1], tf.one_hot(windows[:, -1], vocab_size, dtype=tf.float32)  # (B, T), (B, V)


def _check_view(view, vocab_size):
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}; received view={view!r}")
    if view == "many_to_one" and not vocab_size:
        raise ValueError("view='many_to_one' needs vocab_size for its one-hot targets")
