"""The pipelines of task examples: windows from example starts with the loss mask's weights (packed,
padded, all), the documented LSTM's one-target form, every example once in evaluation, determinism."""

import json

import numpy as np
import pytest
import tensorflow as tf

from lm_keras.data import example_eval_dataset, example_train_dataset
from lm_keras.data import pipeline as pipeline_module
from lm_keras.data.prepare import prepare
from lm_keras.errors import UserError

EOT = 9
T = 6


def _examples(seed=0, count=12):
    """A split in memory: `count` examples of ids 1..8, a prompt (mask 0) then a completion and the
    end of text (mask 1), 2 to 7 tokens long."""
    rng = np.random.default_rng(seed)
    ids, mask, starts = [], [], []
    for _ in range(count):
        prompt, completion = rng.integers(1, 4), rng.integers(0, 3)
        starts.append(len(ids))
        ids += list(rng.integers(1, 9, prompt + completion)) + [EOT]
        mask += [0] * prompt + [1] * (completion + 1)
    return {"ids": np.array(ids), "mask": np.array(mask), "starts": np.array(starts), "eot_id": EOT}


SPLIT = _examples()


def _batches(ds, n=100):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(n)]


def _expected(split, start, length):
    """ids, mask and 'real data' of the split's tokens [start, start + length), end-of-text padded."""
    n = len(split["ids"])
    positions = np.arange(start, start + length)
    inside = (positions >= 0) & (positions < n)
    clipped = np.clip(positions, 0, n - 1)
    return (
        np.where(inside, split["ids"][clipped], EOT),
        np.where(inside, split["mask"][clipped], 0),
        inside.astype(np.float32),
    )


def _end_of(split, start):
    later = split["starts"][split["starts"] > start]
    return int(later[0]) if len(later) else len(split["ids"])


@pytest.mark.parametrize("packing", ["packed", "padded"])
@pytest.mark.parametrize("loss_on", ["completion", "all"])
def test_windows_start_at_examples_and_weigh_their_targets(packing, loss_on):
    ds = example_train_dataset(
        SPLIT, seq_len=T, batch_size=8, seed=3, packing=packing, loss_on=loss_on, num_steps=6
    )
    assert ds.element_spec[0].shape == (8, T) and ds.element_spec[0].dtype == tf.int32
    assert ds.element_spec[2].shape == (8, T) and ds.element_spec[2].dtype == tf.float32
    drawn = set()
    for x, y, w in _batches(ds):
        for row_x, row_y, row_w in zip(x, y, w):
            window = np.concatenate([row_x, row_y[-1:]])
            np.testing.assert_array_equal(row_x[1:], row_y[:-1])
            # The window is the T + 1 tokens from some example's start (a start is not unique
            # in ids, so find the one whose tokens it holds).
            candidates = [
                s
                for s in SPLIT["starts"]
                if packing == "padded" or np.array_equal(window, _expected(SPLIT, s, T + 1)[0])
            ]
            matched = False
            for s in candidates:
                ids, mask, real = _expected(SPLIT, s, T + 1)
                if packing == "padded":
                    inside = np.arange(s, s + T + 1) < _end_of(SPLIT, s)
                    ids, real = np.where(inside, ids, EOT), real * inside
                if not np.array_equal(window, ids):
                    continue
                weights = real[1:] * (mask[1:] if loss_on == "completion" else 1)
                if np.array_equal(row_w, weights):
                    matched = True
                    drawn.add(int(s))
                    break
            assert matched, (window, row_w)
    assert len(drawn) >= 8  # uniform over the 12 examples: 48 draws reach most of them


def test_packed_windows_hold_the_next_examples_and_padded_ones_do_not():
    split = {
        "ids": np.array([1, 2, 9, 3, 4, 5, 9]),
        "mask": np.array([0, 1, 1, 0, 1, 1, 1]),
        "starts": [0, 3],
    }
    split["eot_id"] = EOT
    packed = _batches(example_train_dataset(split, seq_len=5, batch_size=16, seed=0, num_steps=1))[0]
    padded = _batches(
        example_train_dataset(split, seq_len=5, batch_size=16, seed=0, packing="padded", num_steps=1)
    )[0]
    first = [i for i in range(16) if packed[0][i][0] == 1]
    second = [i for i in range(16) if packed[0][i][0] == 3]
    assert first and second
    i, j = first[0], second[0]
    np.testing.assert_array_equal(packed[0][i], [1, 2, 9, 3, 4])
    np.testing.assert_array_equal(packed[1][i], [2, 9, 3, 4, 5])
    np.testing.assert_array_equal(packed[2][i], [1, 1, 0, 1, 1])  # the second example's targets count
    np.testing.assert_array_equal(padded[0][i], [1, 2, 9, 9, 9])
    np.testing.assert_array_equal(padded[2][i], [1, 1, 0, 0, 0])  # only the first example's
    # The last example runs off the split's end: end-of-text ids of weight 0.
    np.testing.assert_array_equal(packed[0][j], [3, 4, 5, 9, 9])
    np.testing.assert_array_equal(packed[1][j], [4, 5, 9, 9, 9])
    np.testing.assert_array_equal(packed[2][j], [1, 1, 1, 0, 0])
    all_on = _batches(
        example_train_dataset(split, seq_len=5, batch_size=16, seed=0, loss_on="all", num_steps=1)
    )[0]
    np.testing.assert_array_equal(all_on[2][i], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(all_on[2][j], [1, 1, 1, 0, 0])


def test_a_pure_function_of_seed_and_step():
    def run(seed, start_step=0, num_steps=5, **kwargs):
        return _batches(
            example_train_dataset(
                SPLIT,
                seq_len=T,
                batch_size=4,
                seed=seed,
                start_step=start_step,
                num_steps=num_steps,
                **kwargs,
            )
        )

    full = run(7)
    again, resumed, other = run(7), run(7, start_step=3, num_steps=2), run(8)
    for a, b in zip(full, again):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    for a, b in zip(full[3:], resumed):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(full, other))

    # Two input pipelines each yield their slice of the same global batch.
    class Context:
        num_input_pipelines = 2

        def __init__(self, i):
            self.input_pipeline_id = i

    halves = [run(7, input_context=Context(i)) for i in range(2)]
    for step, batch in enumerate(full):
        for k in range(3):
            np.testing.assert_array_equal(np.concatenate([halves[0][step][k], halves[1][step][k]]), batch[k])


def test_evaluation_covers_every_example_once():
    for batch_size in (5, 12):
        batches = _batches(example_eval_dataset(SPLIT, seq_len=T, batch_size=batch_size))
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        w = np.concatenate([b[2] for b in batches])
        assert all(b[0].shape == (batch_size, T) for b in batches)
        count = len(SPLIT["starts"])
        assert len(x) == -(-count // batch_size) * batch_size
        for row, s in enumerate(SPLIT["starts"]):
            ids, mask, real = _expected(SPLIT, s, T + 1)
            inside = np.arange(s, s + T + 1) < _end_of(SPLIT, s)
            ids = np.where(inside, ids, EOT)
            np.testing.assert_array_equal(x[row], ids[:-1])
            np.testing.assert_array_equal(y[row], ids[1:])
            np.testing.assert_array_equal(w[row], (mask * real * inside)[1:])
        assert not w[count:].any()  # the padding rows
    # Every example fits T + 1 tokens here and starts with a prompt token (never a target): every
    # token of mask 1 is scored exactly once.
    assert all(SPLIT["mask"][s] == 0 for s in SPLIT["starts"])
    assert w.sum() == SPLIT["mask"].sum()


def test_the_documented_lstm_form_weighs_each_target_by_its_mask():
    ds = example_train_dataset(
        SPLIT, seq_len=T, batch_size=8, seed=1, view="many_to_one", vocab_size=10, num_steps=5
    )
    assert ds.element_spec[1].shape == (8, 10) and ds.element_spec[2].shape == (8,)
    ids = SPLIT["ids"]
    for x, y, w in _batches(ds):
        targets = y.argmax(axis=1)
        for row_x, target, weight in zip(x, targets, w):
            # x is the T tokens before a target position p (end-of-text before the split's start).
            found = [
                p
                for p in range(len(ids))
                if ids[p] == target and np.array_equal(row_x, _expected(SPLIT, p - T, T)[0])
            ]
            assert found and weight in {float(SPLIT["mask"][p]) for p in found}
    # Evaluation: every token of the split is one target, weighted by its mask.
    batches = _batches(
        example_eval_dataset(SPLIT, seq_len=T, batch_size=16, view="many_to_one", vocab_size=10)
    )
    y = np.concatenate([b[1] for b in batches]).argmax(axis=1)
    w = np.concatenate([b[2] for b in batches])
    x = np.concatenate([b[0] for b in batches])
    n = len(ids)
    np.testing.assert_array_equal(y[:n], ids)
    np.testing.assert_array_equal(w[:n], SPLIT["mask"])
    assert not w[n:].any()
    for p in (0, 3, n - 1):
        np.testing.assert_array_equal(x[p], _expected(SPLIT, p - T, T)[0])


def test_prepared_shards_give_the_batches_of_the_same_split_in_memory(tmp_path, monkeypatch):
    # Shards of 7 tokens: windows of T + 1 = 7 cross from one shard into the next. A split this
    # small is read into memory whole; with IN_MEMORY_TOKENS = 0 the pipelines read the shards.
    records = [{"prompt": "ab" * (i % 3 + 1), "completion": "c" * (i % 4) + "a"} for i in range(20)]
    corpus = tmp_path / "t.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    dataset = prepare(str(corpus), tmp_path / "ds", tokens_per_shard=7, log=lambda line: None)
    split = dataset.train
    assert len(split.counts) > 5
    memory = {
        "ids": split.read(0, 10**6),
        "mask": split.read_mask(0, 10**6),
        "starts": split.example_starts(),
        "eot_id": split.eot_id,
    }
    cases = [
        (example_train_dataset, dict(seed=5, packing="packed", num_steps=4)),
        (example_train_dataset, dict(seed=5, packing="padded", num_steps=4)),
        (example_train_dataset, dict(seed=2, view="many_to_one", num_steps=3)),
        (example_eval_dataset, dict()),
        (example_eval_dataset, dict(view="many_to_one")),
    ]
    for pipeline, args in cases:
        args = dict(seq_len=T, batch_size=6, vocab_size=dataset.vocab_size, **args)
        in_memory = _batches(pipeline(memory, **args))
        read_whole = _batches(pipeline(split, **args))
        with monkeypatch.context() as patch:
            patch.setattr(pipeline_module, "IN_MEMORY_TOKENS", 0)
            on_disk = _batches(pipeline(split, **args))
        assert len(on_disk) == len(in_memory) == len(read_whole) > 0
        for a, b, c in zip(on_disk, in_memory, read_whole):
            for u, v, w in zip(a, b, c):
                np.testing.assert_array_equal(u, v)
                np.testing.assert_array_equal(u, w)
    monkeypatch.setattr(pipeline_module, "IN_MEMORY_TOKENS", 0)
    with pytest.raises(UserError, match=r"shards of 7 tokens are shorter than a window of seq_len \+ 1 = 8"):
        example_train_dataset(split, seq_len=7, batch_size=2, seed=0)
