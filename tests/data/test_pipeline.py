import numpy as np
import pytest
import tensorflow as tf

from lm_keras.data import check_windows, eval_dataset, first_eval_target, train_dataset
from lm_keras.errors import UserError

IDS = np.arange(1000, dtype=np.int32) % 97  # a sequence whose windows are easy to locate


def _batches(ds, n):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(n)]


def test_next_token_view_shapes_and_shift():
    ds = train_dataset(IDS, seq_len=16, batch_size=4, seed=1, num_steps=3)
    assert ds.element_spec[0].shape == (4, 16) and ds.element_spec[1].shape == (4, 16)
    assert ds.element_spec[0].dtype == tf.int32
    batches = _batches(ds, 10)
    assert len(batches) == 3
    for x, y in batches:
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        for row_x, row_y in zip(x, y):  # each row is a real window of IDS
            o = int(np.flatnonzero(np.arange(1000) % 97 == row_x[0])[0])
            np.testing.assert_array_equal(np.concatenate([row_x, row_y[-1:]]), (np.arange(o, o + 17)) % 97)


def test_many_to_one_view_one_hot_targets():
    ds = train_dataset(IDS, seq_len=8, batch_size=5, seed=2, view="many_to_one", vocab_size=97, num_steps=2)
    assert ds.element_spec[1].shape == (5, 97) and ds.element_spec[1].dtype == tf.float32
    for x, y in _batches(ds, 2):
        np.testing.assert_array_equal(y.sum(axis=1), np.ones(5))
        np.testing.assert_array_equal(y.argmax(axis=1), (x[:, -1] + 1) % 97)


def test_deterministic_and_resumable():
    full = _batches(train_dataset(IDS, seq_len=16, batch_size=4, seed=7, num_steps=6), 6)
    again = _batches(train_dataset(IDS, seq_len=16, batch_size=4, seed=7, num_steps=6), 6)
    resumed = _batches(train_dataset(IDS, seq_len=16, batch_size=4, seed=7, start_step=4, num_steps=2), 2)
    other = _batches(train_dataset(IDS, seq_len=16, batch_size=4, seed=8, num_steps=6), 6)
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a[0], b[0])
    for a, b in zip(full[4:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
    assert any((a[0] != b[0]).any() for a, b in zip(full, other))
    assert len({a[0].tobytes() for a in full}) == 6  # no batch repeats


def test_sharded_pipelines_cut_the_same_global_batch():
    whole = _batches(train_dataset(IDS, seq_len=16, batch_size=6, seed=3, num_steps=2), 2)
    shards = [
        _batches(
            train_dataset(
                IDS,
                seq_len=16,
                batch_size=6,
                seed=3,
                num_steps=2,
                input_context=tf.distribute.InputContext(3, i, 3),
            ),
            2,
        )
        for i in range(3)
    ]
    for step in range(2):
        np.testing.assert_array_equal(np.concatenate([s[step][0] for s in shards]), whole[step][0])
    with pytest.raises(UserError, match="must be divisible by the 4 input pipelines"):
        train_dataset(
            IDS, seq_len=16, batch_size=6, seed=3, input_context=tf.distribute.InputContext(4, 0, 4)
        )


@pytest.mark.parametrize("n", [50, 64, 65, 203])
def test_eval_next_token_covers_every_target_once(n):
    ids = np.arange(n, dtype=np.int32)
    batches = _batches(eval_dataset(ids, seq_len=16, batch_size=3), 1000)
    targets = np.concatenate([y[w > 0] for _, y, w in batches])
    np.testing.assert_array_equal(targets, ids[first_eval_target("next_token", 16) :])
    for x, y, w in batches:
        assert x.shape == (3, 16) and w.shape == (3, 16)
        np.testing.assert_array_equal((y - x)[w > 0], 1)  # the target follows its input


def test_eval_many_to_one_covers_every_target_once():
    ids = np.arange(40, dtype=np.int32)
    batches = _batches(eval_dataset(ids, seq_len=8, batch_size=5, view="many_to_one", vocab_size=40), 1000)
    targets = np.concatenate([y.argmax(1)[w > 0] for _, y, w in batches])
    np.testing.assert_array_equal(targets, ids[first_eval_target("many_to_one", 8) :])
    assert sum(w.sum() for *_, w in batches) == 32


def test_too_small_for_one_window():
    with pytest.raises(
        UserError,
        match=r"the validation split has 10 tokens, fewer than one training window "
        r"of seq_len \+ 1 = 65; use a larger corpus or a smaller --seq_len",
    ):
        check_windows(np.arange(10), 64, "validation", "tiny")
