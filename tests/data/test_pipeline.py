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


# ------------------------------------------------------------------ shards of a prepared dataset


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """Tiny Shakespeare prepared into shards of 5,000 ids (201 of them), and its text."""
    from lm_keras.data import load_corpus
    from lm_keras.data.prepare import prepare

    out = tmp_path_factory.mktemp("sharded") / "ds"
    dataset = prepare("tiny_shakespeare", out, tokens_per_shard=5000, log=lambda line: None)
    return dataset, load_corpus("tiny_shakespeare").text


def test_windows_from_shards_are_the_text_they_came_from(sharded):
    dataset, text = sharded
    train_text = text[: dataset.manifest["validation"]["first_character"]]
    tokenizer = dataset.tokenizer()
    batches = _batches(train_dataset(dataset.train, seq_len=64, batch_size=16, seed=3, num_steps=20), 20)
    starts = set()
    for x, y in batches:
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        for row_x, row_y in zip(x, y):
            window = tokenizer.decode(np.concatenate([row_x, row_y[-1:]]))
            start = train_text.find(window)
            assert start >= 0, window
            starts.add(start // 5000)
    assert len(starts) > 100  # windows from all over the split's 201 shards


def test_shards_resume_and_cut_the_global_batch_like_one_array(sharded):
    dataset, _ = sharded
    kwargs = dict(seq_len=32, batch_size=6, seed=11)
    whole = _batches(train_dataset(dataset.train, num_steps=5, **kwargs), 5)
    resumed = _batches(train_dataset(dataset.train, start_step=3, num_steps=2, **kwargs), 2)
    for a, b in zip(whole[3:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
    for step in range(5):
        slices = [
            _batches(
                train_dataset(
                    dataset.train, num_steps=5, input_context=tf.distribute.InputContext(2, i, 2), **kwargs
                ),
                5,
            )[step][0]
            for i in range(2)
        ]
        np.testing.assert_array_equal(np.concatenate(slices), whole[step][0])


@pytest.mark.parametrize(
    "view, max_targets", [("next_token", 0), ("next_token", 7777), ("many_to_one", 9000)]
)
def test_eval_over_shards_equals_eval_over_the_array(sharded, view, max_targets):
    dataset, _ = sharded
    split = dataset.val if max_targets == 0 else dataset.train  # 23 or 201 shards: windows cross them
    ids = split.read(0, 10**9) if max_targets == 0 else split.read(0, 30_000)
    kwargs = dict(seq_len=40, batch_size=8, view=view, vocab_size=66, max_targets=max_targets)
    from_shards = _batches(eval_dataset(split, **kwargs), 10**6)
    from_array = _batches(eval_dataset(ids, **kwargs), 10**6)
    assert len(from_shards) == len(from_array)
    for a, b in zip(from_shards, from_array):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    scored = sum(w.sum() for *_, w in from_shards)
    assert scored == (max_targets or len(ids) - first_eval_target(view, 40))


def test_a_missing_or_damaged_shard_is_named(sharded, tmp_path):
    import shutil

    from lm_keras.data import PreparedDataset
    from lm_keras.data.pipeline import shard_errors

    dataset, _ = sharded
    copy = tmp_path / "copy"
    shutil.copytree(dataset.path, copy)
    damaged = PreparedDataset(copy)
    path = copy / "shards" / "train-000100.bin"
    path.write_bytes(b"LMKT" + path.read_bytes()[4:-2])  # two bytes short
    for error in ("truncated or damaged", "missing"):
        with pytest.raises(UserError, match=rf"^shard {path} (is {error})"), shard_errors():
            for _ in train_dataset(damaged.train, seq_len=16, batch_size=16, seed=0, num_steps=200):
                pass
        path.unlink(missing_ok=True)
