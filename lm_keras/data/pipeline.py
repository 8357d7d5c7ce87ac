"""tf.data pipelines over a split's tokens: random training windows, every validation target.

A split is a prepared dataset's `TokenSplit` (shard files on disk) or, for notebooks and
tests, an array of ids in memory (one shard). Shards are read with TensorFlow ops only
(`tf.io.read_file`, `tf.io.decode_raw`), never `py_function`, so the pipelines run under
every tf.distribute strategy, on TPU hosts and under tf.data service, and their memory
does not grow with the dataset.

Views of the ids:
- `next_token`: windows x = ids[o:o+T], y = ids[o+1:o+T+1], shapes (B, T) -> (B, T),
  for the sequence models (TransformerLM, LSTMLM).
- `many_to_one`: the documented form x = ids[o:o+T] -> y = one_hot(ids[o+T]), shapes
  (B, T) -> (B, V). The one-hot targets are made per batch, so categorical
  cross-entropy fits in memory for any corpus.

Task examples (a .jsonl corpus's split, with its loss mask and example index) have their
own pipelines, `example_train_dataset` and `example_eval_dataset`: each window starts at
an example's start, and the batches carry weights (x, y, w), w the loss mask of each
target; see their docstrings for packing, padding and the documented LSTM's form. A split
of examples of at most `IN_MEMORY_TOKENS` tokens is read into memory once and its windows
gathered (task data is small: 30 times faster per batch than a read per window); a
larger one is read from its shards as text is.

Training batches are drawn like nanoGPT's: window starts sampled uniformly, here with a
stateless generator keyed by (seed, step), among the positions where a whole window of
T + 1 tokens lies inside one shard (a shard of 131,072 tokens loses T of them as
starts, not as targets). Batch `step` is therefore a pure function of the seed and the
step number: a resumed run continues with exactly the batches it would have seen, and
every worker of a distributed run cuts its own slice of the same global batch. Each
window reads its shard whole (256 KiB), which is why shards are small.
"""

import contextlib
import re

import numpy as np
import tensorflow as tf

from lm_keras.config import LOSS_ON, PACKINGS
from lm_keras.data import shards as fmt
from lm_keras.errors import UserError

VIEWS = ("next_token", "many_to_one")
# A split of examples of at most this many tokens (task data, mostly) is read once into memory
# (5 bytes a token: ids and mask) and its windows gathered at once; a larger one is read from
# its shards, window by window, in memory that does not grow with it.
IN_MEMORY_TOKENS = 1 << 23
_DAMAGED = "is truncated or damaged"


def check_windows(tokens, seq_len, split, corpus_name):
    """Raises `UserError` unless the split holds a window of seq_len + 1 tokens (in one shard)."""
    count = tokens.tokens if isinstance(tokens, fmt.TokenSplit) else len(tokens)
    if count < seq_len + 1:
        raise UserError(
            f"corpus {corpus_name!r}: the {split} split has {count} tokens, fewer than one "
            f"training window of seq_len + 1 = {seq_len + 1}; use a larger corpus or a smaller --seq_len"
        )
    if isinstance(tokens, fmt.TokenSplit) and tokens.tokens_per_shard < seq_len + 1:
        raise UserError(
            f"corpus {corpus_name!r}: its shards hold {tokens.tokens_per_shard} tokens, fewer than one "
            f"window of seq_len + 1 = {seq_len + 1}; prepare it again with a larger --tokens_per_shard"
        )


def dataset_error(error):
    """The `UserError` naming the shard behind a `tf.errors.OpError` from a pipeline, or None."""
    message = str(error)
    shard = re.search(r"([^\s\[\]'\"]+\.(?:bin|mask))\b", message)
    if shard is None:
        return None
    path = shard.group(1)
    if isinstance(error, tf.errors.NotFoundError):
        return UserError(f"shard {path} is missing: prepare the dataset again")
    if _DAMAGED in message:
        return UserError(f"shard {path} {_DAMAGED} (its size or header is wrong): prepare the dataset again")
    return None


@contextlib.contextmanager
def shard_errors():
    """Turns a pipeline's error about a missing or damaged shard into a `UserError` naming it."""
    try:
        yield
    except tf.errors.OpError as e:
        error = dataset_error(e)
        if error is None:
            raise
        raise error from None


def train_dataset(
    tokens,
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
        tokens: the split: a `TokenSplit`, or an int array (N,) in memory.
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
    source = _Source(tokens)
    # Window starts per full shard, and in the last one: where T + 1 tokens fit.
    per_shard = source.shard_tokens - seq_len
    starts = (source.num_shards - 1) * per_shard + max(source.counts[-1] - seq_len, 0)
    if per_shard < 1 or starts < 1:
        raise UserError(
            f"training split has {source.tokens} tokens in shards of {source.shard_tokens}, no window of "
            f"seq_len + 1 = {seq_len + 1}"
        )
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
        draws = tf.random.stateless_uniform(
            [batch_size],
            seed=tf.stack([tf.cast(seed, tf.int64), step]),
            minval=0,
            maxval=starts,
            dtype=tf.int64,
        )[first : first + local_batch]  # (b,)
        shard = tf.minimum(draws // per_shard, source.num_shards - 1)
        windows = source.windows(shard, draws - shard * per_shard, seq_len + 1)  # (b, T+1)
        return _split_window(windows, view, vocab_size)

    stop = tf.int64.max if num_steps is None else start_step + num_steps
    return (
        tf.data.Dataset.range(start_step, stop)
        .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(tokens, *, seq_len, batch_size, view="next_token", vocab_size=None, max_targets=0):
    """The first `max_targets` targets of a split (0: all of them), each once, in batches of static shape.

    next_token: windows start at 0, T, 2T, ...; targets are ids[1:].
    many_to_one: one window per target position p = T, T+1, ... (targets ids[T:]).
    The last batch is padded with weight-0 rows (and weight-0 positions). Each shard is
    read once, with the first T tokens of the next, so memory does not grow with the split.

    Returns:
        A dataset of (x, y, w); w float32 (B, T) for next_token, (B,) for many_to_one.

    Keras's `model.fit(validation_data=...)` and `model.evaluate` divide each batch's
    weighted loss by the batch size, weight-0 rows included, so their figure for a
    padded last batch is too low; `lm_keras.training.evaluation.evaluate` divides by
    the sum of the weights and is exact.
    """
    _check_view(view, vocab_size)
    source = _Source(tokens)
    targets = eval_targets(source.tokens, view, seq_len, max_targets)
    if targets < 1:
        raise UserError(
            f"validation split has {source.tokens} tokens, fewer than seq_len + 1 = {seq_len + 1}"
        )
    if source.num_shards > 1 and source.shard_tokens < seq_len:
        raise UserError(f"shards of {source.shard_tokens} tokens are shorter than seq_len = {seq_len}")
    stride = seq_len if view == "next_token" else 1
    num_windows = -(-targets // seq_len) if view == "next_token" else targets
    size, shards_read = source.shard_tokens, ((num_windows - 1) * stride) // source.shard_tokens + 1

    def shard_windows(j):
        """The windows that start in shard j (it, then the first T tokens of the next)."""
        begin = j * size
        lo = (begin + stride - 1) // stride  # the first window starting in the shard
        hi = tf.minimum((begin + source.count(j) + stride - 1) // stride, num_windows)
        ids = source.read(j)
        nxt = tf.minimum(j + 1, source.num_shards - 1)
        after = tf.cond(j + 1 < source.num_shards, lambda: source.read(nxt, 0, seq_len), _empty)
        ids = tf.concat([ids, after, tf.zeros([seq_len + 1], tf.int32)], axis=0)  # the tail may be short
        window_starts = tf.range(lo, hi, dtype=tf.int64) * stride  # (m,)
        positions = window_starts[:, None] - begin + tf.range(seq_len + 1, dtype=tf.int64)  # (m, T+1)
        windows = tf.gather(ids, positions)
        if view == "next_token":  # (m, T): target index window_start + 1 + t, scored up to `targets`
            weights = tf.cast(
                window_starts[:, None] + 1 + tf.range(seq_len, dtype=tf.int64) <= targets, tf.float32
            )
        else:
            weights = tf.ones(tf.shape(window_starts), tf.float32)  # (m,)
        return windows, weights

    def pad_and_split(windows, weights):
        missing = batch_size - tf.shape(windows)[0]
        windows = tf.pad(windows, [[0, missing], [0, 0]])  # (B, T+1)
        weights = tf.pad(weights, [[0, missing]] + [[0, 0]] * (len(weights.shape) - 1))
        windows = tf.ensure_shape(windows, [batch_size, seq_len + 1])
        weights = tf.ensure_shape(weights, [batch_size, seq_len] if view == "next_token" else [batch_size])
        x, y = _split_window(windows, view, vocab_size)
        return x, y, weights

    return (
        tf.data.Dataset.range(shards_read)
        .map(shard_windows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .unbatch()
        .batch(batch_size)
        .map(pad_and_split, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_targets(num_tokens, view, seq_len, max_targets=0):
    """How many targets `eval_dataset` scores in a split of `num_tokens` tokens."""
    available = max(num_tokens - first_eval_target(view, seq_len), 0)
    return min(max_targets, available) if max_targets else available


def first_eval_target(view, seq_len):
    """Index of the first token `eval_dataset` predicts (the ones before it are context)."""
    return 1 if view == "next_token" else seq_len


def example_train_dataset(
    split,
    *,
    seq_len,
    batch_size,
    seed,
    packing="packed",
    loss_on="completion",
    view="next_token",
    vocab_size=None,
    start_step=0,
    num_steps=None,
    input_context=None,
    segments=False,
):
    """Training windows of a split of examples, each from an example's start, one global batch per step.

    next_token: each row is the seq_len + 1 tokens from the start of an example drawn
    uniformly (a stateless generator keyed by (seed, step): batch `step` is a pure function
    of both, so a resumed run sees exactly the batches it would have seen). A window that
    runs past the split's end is filled with end-of-text ids of weight 0.
    - packed: the examples after the first follow it (the last may be cut by the window's
      end); every target is weighted by its loss mask.
    - padded: only the first example is scored: after its end-of-text the window holds
      end-of-text ids, of weight 0.
    - loss_on="all": weight 1 on every target of real data (packed), or of the first
      example (padded), whatever the mask.

    many_to_one (the documented Sequential LSTM, which predicts one token after T): an
    example is drawn uniformly, then one of its tokens uniformly as the target; x is the
    T tokens before it (earlier examples' tokens, end-of-text ids before the split's
    start), y its one-hot, and the weight its loss mask (loss_on="all": 1). It cannot keep
    the context inside the example (the model has no segments: it sees the earlier
    examples, their end-of-text ids between), and learns one target per window where the
    sequence models learn T; `packing` does not apply to it.

    Args:
        split: a `TokenSplit` of examples (a .jsonl corpus's), or, in memory, a dict of
            "ids" (N,), "mask" (N,), "starts" (examples,) and "eot_id".
        seq_len: window length T; no example should be longer than T + 1 tokens (see
            `lm_keras.data.examples.check_example_lengths`): a longer one is cut here.
        batch_size: the global batch size B.
        seed: int.
        packing: "packed" or "padded".
        loss_on: "completion" (the loss mask) or "all".
        view: "next_token" or "many_to_one".
        vocab_size: needed for the one-hot targets of "many_to_one".
        start_step: the first step to produce.
        num_steps: how many batches; None for an endless stream.
        input_context: a `tf.distribute.InputContext`: each input pipeline yields its own
            contiguous slice of every global batch, as `train_dataset`'s.
        segments: next_token only: also yield each token's example in the window, counted
            from 0 (the examples' own boundaries, from the example index: a conversation's
            end-of-text ids between its messages do not split it).

    Returns:
        A dataset of (x, y, w): x int32 (b, T); next_token: y int32 (b, T), w float32
        (b, T); many_to_one: y float32 one-hot (b, V), w float32 (b,). With `segments`,
        (x, y, w, s): s int32 (b, T).
    """
    _check_view(view, vocab_size)
    _check_choices(packing, loss_on)
    source = _Examples(split, seq_len)
    local_batch, first = _local_batch(batch_size, input_context)
    starts, ends = source.starts_tensor, source.ends_tensor

    def make_batch(step):
        draws = tf.random.stateless_uniform(
            [batch_size, 2], seed=tf.stack([tf.cast(seed, tf.int64), step]), dtype=tf.float64
        )[first : first + local_batch]  # (b, 2)
        example = tf.minimum(
            tf.cast(draws[:, 0] * source.num_examples, tf.int64), source.num_examples - 1
        )  # (b,)
        start, end = tf.gather(starts, example), tf.gather(ends, example)  # (b,), (b,)
        if view == "many_to_one":
            target = start + tf.minimum(
                tf.cast(draws[:, 1] * tf.cast(end - start, tf.float64), tf.int64), end - start - 1
            )  # (b,)
            ids, mask, real = source.spans(target - seq_len, seq_len + 1, local_batch)  # (b, T+1) each
            weights = real[:, -1] * (mask[:, -1] if loss_on == "completion" else 1.0)  # (b,)
            return ids[:, :-1], tf.one_hot(ids[:, -1], vocab_size, dtype=tf.float32), weights
        ids, mask, real = source.spans(start, seq_len + 1, local_batch)  # (b, T+1) each
        if packing == "padded":
            inside = start[:, None] + tf.range(seq_len + 1, dtype=tf.int64) < end[:, None]  # (b, T+1)
            ids = tf.where(inside, ids, source.eot_id)
            real = real * tf.cast(inside, tf.float32)
        weights = real[:, 1:] * (mask[:, 1:] if loss_on == "completion" else 1.0)  # (b, T)
        if not segments:
            return ids[:, :-1], ids[:, 1:], weights
        # Token t's example: the example starts in (start, start + t], searched in the sorted index.
        positions = tf.reshape(start[:, None] + tf.range(seq_len, dtype=tf.int64), [1, -1])  # (1, b T)
        index = tf.cast(starts, tf.int64)[None, :]  # (1, examples)
        through = tf.reshape(tf.searchsorted(index, positions, side="right"), [-1, seq_len])  # (b, T)
        before = tf.searchsorted(index, start[None, :], side="right")[0]  # (b,)
        return ids[:, :-1], ids[:, 1:], weights, tf.cast(through - before[:, None], tf.int32)

    stop = tf.int64.max if num_steps is None else start_step + num_steps
    return (
        tf.data.Dataset.range(start_step, stop)
        .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def example_eval_dataset(
    split, *, seq_len, batch_size, loss_on="completion", view="next_token", vocab_size=None
):
    """Every example of a split once, in order, in batches of static shape.

    next_token: one row per example, its seq_len + 1 tokens from its start; the targets
    after its end-of-text are end-of-text ids of weight 0, the others weighted by their
    loss mask (loss_on="all": 1). many_to_one: one row per token of the split, x the T
    tokens before it (end-of-text ids before the split's start), weight its loss mask.
    The last batch is padded with weight-0 rows. A split in memory gives its rows batch by
    batch; one on disk is read shard by shard (each with the first T + 1 tokens of the
    next), so memory does not grow with the split.

    Args:
        split: as for `example_train_dataset`.
        seq_len: window length T; an example longer than T + 1 tokens is scored on its
            first T targets only (`check_example_lengths` refuses such data first).
        batch_size: rows per batch B.
        loss_on: "completion" or "all".
        view: "next_token" or "many_to_one".
        vocab_size: needed for the one-hot targets of "many_to_one".

    Returns:
        A dataset of (x, y, w) as `example_train_dataset`'s, with b = B.
    """
    _check_view(view, vocab_size)
    _check_choices("packed", loss_on)
    source = _Examples(split, seq_len)
    size, eot = source.shard_tokens, source.eot_id
    starts, ends = source.starts_tensor, source.ends_tensor
    # The examples starting in each shard: [first[j], first[j + 1]).
    first = np.searchsorted(source.starts, np.arange(source.num_shards + 1, dtype=np.int64) * size)
    first = tf.constant(first, tf.int64)

    def shard_rows(j):
        begin = j * size
        nxt = tf.minimum(j + 1, source.num_shards - 1)
        pieces = []
        for mask in (False, True):
            after = tf.cond(
                j + 1 < source.num_shards, lambda m=mask: source.read(nxt, 0, seq_len + 1, mask=m), _empty
            )
            pieces.append(tf.concat([source.read(j, mask=mask), after], axis=0))
        ids, mask = pieces
        real = tf.ones_like(ids, tf.float32)
        if view == "many_to_one":  # the T tokens before the shard, from the one before it
            prev = tf.maximum(j - 1, 0)
            before = tf.cond(
                j > 0, lambda: source.read(prev, size - seq_len, seq_len), lambda: tf.fill([seq_len], eot)
            )
            ids = tf.concat([before, ids], axis=0)
            mask = tf.concat([tf.zeros([seq_len], tf.int32), mask], axis=0)
            positions = tf.range(source.count(j))[:, None] + tf.range(seq_len + 1, dtype=tf.int64)  # (m, T+1)
            windows = tf.gather(ids, positions)
            target_mask = tf.cast(tf.gather(mask, positions[:, -1]), tf.float32)  # (m,)
            weights = target_mask if loss_on == "completion" else tf.ones_like(target_mask)
            return windows, weights
        ids = tf.concat([ids, tf.fill([seq_len + 1], eot)], axis=0)  # a window may run past the end
        mask = tf.concat([mask, tf.zeros([seq_len + 1], tf.int32)], axis=0)
        real = tf.concat([real, tf.zeros([seq_len + 1], tf.float32)], axis=0)
        start = tf.gather(starts, tf.range(first[j], first[j + 1]))  # (m,)
        end = tf.gather(ends, tf.range(first[j], first[j + 1]))  # (m,)
        positions = start[:, None] - begin + tf.range(seq_len + 1, dtype=tf.int64)  # (m, T+1)
        inside = tf.cast(start[:, None] + tf.range(seq_len + 1, dtype=tf.int64) < end[:, None], tf.float32)
        windows = tf.where(inside > 0, tf.gather(ids, positions), eot)  # (m, T+1)
        weights = (tf.gather(real, positions) * inside)[:, 1:]  # (m, T)
        if loss_on == "completion":
            weights *= tf.cast(tf.gather(mask, positions), tf.float32)[:, 1:]
        return windows, weights

    def rows_in_memory(index):
        """The rows of a batch of examples (next_token) or of target positions (many_to_one)."""
        if view == "many_to_one":
            ids, mask, _ = source.gather(index - seq_len, seq_len + 1)  # (b, T+1) each
            return ids, (mask[:, -1] if loss_on == "completion" else tf.ones_like(mask[:, -1]))  # (b,)
        start, end = tf.gather(starts, index), tf.gather(ends, index)  # (b,) each
        ids, mask, real = source.gather(start, seq_len + 1)  # (b, T+1) each
        inside = start[:, None] + tf.range(seq_len + 1, dtype=tf.int64) < end[:, None]  # (b, T+1)
        weights = (real * tf.cast(inside, tf.float32))[:, 1:]  # (b, T)
        if loss_on == "completion":
            weights *= mask[:, 1:]
        return tf.where(inside, ids, eot), weights

    def pad_and_split(windows, weights):
        missing = batch_size - tf.shape(windows)[0]
        windows = tf.pad(windows, [[0, missing], [0, 0]], constant_values=eot)  # (B, T+1)
        weights = tf.pad(weights, [[0, missing]] + [[0, 0]] * (len(weights.shape) - 1))
        windows = tf.ensure_shape(windows, [batch_size, seq_len + 1])
        weights = tf.ensure_shape(weights, [batch_size, seq_len] if view == "next_token" else [batch_size])
        x, y = _split_window(windows, view, vocab_size)
        return x, y, weights

    if source.split is None:
        rows = tf.data.Dataset.range(source.tokens if view == "many_to_one" else source.num_examples)
        rows = rows.batch(batch_size).map(
            rows_in_memory, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    else:
        rows = (
            tf.data.Dataset.range(source.num_shards)
            .map(shard_rows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .unbatch()
            .batch(batch_size)
        )
    return rows.map(pad_and_split, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE
    )


def _check_choices(packing, loss_on):
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}; received packing={packing!r}")
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {LOSS_ON}; received loss_on={loss_on!r}")


def _local_batch(batch_size, input_context):
    """(this pipeline's slice of the global batch: its size, its first row)."""
    if input_context is None or input_context.num_input_pipelines <= 1:
        return batch_size, 0
    if batch_size % input_context.num_input_pipelines:
        raise UserError(
            f"--batch_size={batch_size} must be divisible by the {input_context.num_input_pipelines} "
            "input pipelines of the distributed run"
        )
    local_batch = batch_size // input_context.num_input_pipelines
    return local_batch, input_context.input_pipeline_id * local_batch


class _Source:
    """A split's shards as TensorFlow reads them: files of a `TokenSplit`, or one array in memory."""

    def __init__(self, tokens):
        if isinstance(tokens, fmt.TokenSplit):
            self.split, self.counts = tokens, tokens.counts
            self.shard_tokens = tokens.tokens_per_shard
            self.prefix = f"{tokens.directory}/{tokens.name}-"
            # decode_raw has no uint32: uint32 ids read as int32 are the same numbers (< 2**31).
            self.dtype = tf.uint16 if tokens.dtype == "uint16" else tf.int32
        else:
            self.split, self.array = None, tf.constant(np.asarray(tokens, dtype=np.int32))
            self.counts = (int(self.array.shape[0]),)
            self.shard_tokens = max(self.counts[0], 1)
        self.num_shards = len(self.counts)
        self.tokens = sum(self.counts)

    def count(self, j):
        """Tokens in shard j (a tensor): every shard but the last is full."""
        return tf.where(j < self.num_shards - 1, tf.constant(self.shard_tokens, tf.int64), self.counts[-1])

    def read(self, j, start=0, length=None, mask=False):
        """Ids [start, start + length) of shard j (to its end when length is None), int32; with
        `mask`, their loss mask instead (a split of examples), int32 0 or 1."""
        if self.split is None:
            end = self.counts[0] if length is None else start + length
            return self.array[start:end]
        suffix, itemsize, dtype = (
            (".mask", 1, tf.uint8) if mask else (".bin", self.split.itemsize, self.dtype)
        )
        path = tf.strings.join([self.prefix, tf.strings.as_string(j, width=6, fill="0"), suffix])
        content = tf.io.read_file(path)
        count, start = self.count(j), tf.cast(start, tf.int64)
        intact = tf.logical_and(
            tf.equal(
                tf.cast(tf.strings.length(content, unit="BYTE"), tf.int64),
                fmt.HEADER_BYTES + count * itemsize,
            ),
            tf.equal(tf.strings.substr(content, 0, len(fmt.MAGIC)), fmt.MAGIC),
        )
        checks = [tf.debugging.Assert(intact, [f"shard {_DAMAGED}:", path])]
        length = count - start if length is None else tf.minimum(tf.cast(length, tf.int64), count - start)
        with tf.control_dependencies(checks):
            piece = tf.strings.substr(content, fmt.HEADER_BYTES + start * itemsize, length * itemsize)
        return tf.cast(tf.io.decode_raw(piece, dtype), tf.int32)

    def windows(self, shard, starts, length):
        """(b, length) windows: row i is ids starts[i] .. starts[i] + length - 1 of shard shard[i]."""
        if self.split is None:
            return tf.gather(self.array, starts[:, None] + tf.range(length, dtype=tf.int64))
        rows = [self.read(shard[i], starts[i], length) for i in range(shard.shape[0])]
        return tf.ensure_shape(tf.stack(rows), [shard.shape[0], length])


def _empty():
    return tf.zeros([0], tf.int32)


def _split_window(windows, view, vocab_size):
    if view == "next_token":
        return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)
    return windows[:, :-1], tf.one_hot(windows[:, -1], vocab_size, dtype=tf.float32)  # (B, T), (B, V)


def _check_view(view, vocab_size):
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}; received view={view!r}")
    if view == "many_to_one" and not vocab_size:
        raise ValueError("view='many_to_one' needs vocab_size for its one-hot targets")


class _Examples(_Source):
    """A split of examples as TensorFlow reads it: the ids and mask shards and the example index.

    Args:
        split: a `TokenSplit` with examples, or a dict of "ids", "mask", "starts", "eot_id".
        seq_len: T; a window of T + 1 tokens then spans at most two shards.
    """

    def __init__(self, split, seq_len):
        if isinstance(split, fmt.TokenSplit):
            if not split.examples:
                raise UserError(
                    f"the {split.name} split holds no examples (its corpus was text): prepare a .jsonl "
                    "corpus for example windows"
                )
            if split.tokens <= IN_MEMORY_TOKENS:
                split = {
                    "ids": split.read(0, split.tokens),
                    "mask": split.read_mask(0, split.tokens),
                    "starts": split.example_starts(),
                    "eot_id": split.eot_id,
                }
        if isinstance(split, fmt.TokenSplit):
            super().__init__(split)
            self.starts, self.eot_id = split.example_starts(), int(split.eot_id)
        else:
            ids, mask = np.asarray(split["ids"], np.int32), np.asarray(split["mask"], np.uint8)
            if mask.shape != ids.shape:
                raise ValueError(f"mask has {mask.shape[0]} entries for {ids.shape[0]} ids")
            self.starts, self.eot_id = np.asarray(split["starts"], np.int64), int(split["eot_id"])
            # Held with seq_len + 1 end-of-text ids (mask 0) on each side, so windows are gathered.
            self.split, self.counts, self.pad = None, (len(ids),), seq_len + 1
            self.shard_tokens, self.num_shards, self.tokens = max(len(ids), 1), 1, len(ids)
            self.padded_ids = tf.constant(np.pad(ids, self.pad, constant_values=self.eot_id))
            self.padded_mask = tf.constant(np.pad(mask, self.pad))
        self.num_examples = len(self.starts)
        if not self.num_examples:
            raise UserError("the split holds no examples")
        if self.num_shards > 1 and self.shard_tokens < seq_len + 1:
            raise UserError(
                f"shards of {self.shard_tokens} tokens are shorter than a window of seq_len + 1 = "
                f"{seq_len + 1}; prepare the dataset again with a larger --tokens_per_shard"
            )
        ends = np.concatenate([self.starts[1:], [self.tokens]])
        self.starts_tensor, self.ends_tensor = tf.constant(self.starts), tf.constant(ends)

    def gather(self, starts, length):
        """In memory: (ids, mask, real) of the `length` tokens from each of `starts` (b,), at once:
        int32, float32, float32 (b, length); end-of-text ids of mask and real 0 outside the split."""
        positions = tf.cast(starts, tf.int64)[:, None] + tf.range(length, dtype=tf.int64)  # (b, length)
        inside = tf.logical_and(positions >= 0, positions < self.tokens)
        at = tf.clip_by_value(positions + self.pad, 0, self.tokens + 2 * self.pad - 1)
        ids = tf.gather(self.padded_ids, at)
        mask = tf.cast(tf.gather(self.padded_mask, at), tf.float32)
        return ids, mask, tf.cast(inside, tf.float32)

    def read(self, j, start=0, length=None, mask=False):
        if self.split is not None:
            return super().read(j, start, length, mask)
        end = self.tokens if length is None else tf.minimum(start + length, self.tokens)
        array = self.padded_mask if mask else self.padded_ids
        return tf.cast(array[self.pad + start : self.pad + end], tf.int32)

    def span(self, g, length):
        """(ids, mask, real) of the `length` tokens from position g of the split (it may lie before
        the start): int32, float32, float32 (length,); end-of-text ids of mask and real 0 outside."""
        g = tf.cast(g, tf.int64)
        lead = tf.minimum(tf.maximum(-g, 0), length)
        g = tf.maximum(g, 0)
        j = tf.minimum(g // self.shard_tokens, self.num_shards - 1)
        offset, want = g - j * self.shard_tokens, length - lead
        nxt = tf.minimum(j + 1, self.num_shards - 1)
        parts = []
        for mask in (False, True):
            here = self.read(j, offset, want, mask=mask)
            rest = want - tf.shape(here, out_type=tf.int64)[0]
            more = tf.cond(
                tf.logical_and(rest > 0, j + 1 < self.num_shards),
                lambda m=mask, r=rest: self.read(nxt, 0, r, mask=m),
                _empty,
            )
            parts.append(tf.concat([here, more], axis=0))
        ids, mask = parts
        got = tf.shape(ids, out_type=tf.int64)[0]
        after = length - lead - got
        ids = tf.concat([tf.fill([lead], self.eot_id), ids, tf.fill([after], self.eot_id)], axis=0)
        mask = tf.pad(mask, [[lead, after]])
        real = tf.concat([tf.zeros([lead]), tf.ones([got]), tf.zeros([after])], axis=0)
        ids, mask, real = (tf.ensure_shape(t, [length]) for t in (ids, mask, real))
        return ids, tf.cast(mask, tf.float32), real

    def spans(self, starts, length, rows):
        """`span` of each of `rows` starts: three (rows, length) tensors (one traced span, mapped)."""
        if self.split is None:  # in memory: gathered at once
            return tuple(tf.ensure_shape(t, [rows, length]) for t in self.gather(starts, length))
        spec = (tf.TensorSpec([length], tf.int32), tf.TensorSpec([length], tf.float32))
        ids, mask, real = tf.map_fn(
            lambda g: self.span(g, length), starts, fn_output_signature=(*spec, spec[1])
        )  # (rows, length) each
        return tuple(tf.ensure_shape(t, [rows, length]) for t in (ids, mask, real))
