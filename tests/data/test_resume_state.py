"""ResumeState: saved and loaded back whole, tail included; a state of another layout is not loaded."""

import json

import numpy as np

from lm_keras.data.resume_state import STATE, ResumeState


def _state():
    return ResumeState(
        settings={"corpus": "c", "tokens_per_shard": 4},
        fingerprints=[["a.txt", 10, 1.5]],
        corpus={"characters": 10},
        tokenizer={"kind": "char", "vocab_size": 5},
        boundary=9,
    )


def test_saved_state_and_tail_load_back(tmp_path):
    state = _state()
    state.saver(tmp_path, np.zeros(0, "uint16"))()
    state.next, state.bytes_done, state.chars_done = (0, 7), 7, 7
    state.shards["train"], state.tokens["train"] = 1, 4
    save = state.saver(tmp_path, np.array([3, 1, 4], "uint16"))
    state.bytes_done = 99  # after the call was made: not in what it saves
    save()
    loaded = ResumeState.load(tmp_path)
    assert loaded.bytes_done == 7 and loaded.next == (0, 7) and loaded.saves == 2
    assert loaded.tokens == {"train": 4, "val": 0} and loaded.tokens_written == 4
    np.testing.assert_array_equal(loaded.read_tail(tmp_path, "uint16"), [3, 1, 4])
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE, "tail-2.bin"]  # the old tail is gone


def test_nothing_saved_or_another_layout_loads_as_none(tmp_path):
    assert ResumeState.load(tmp_path) is None
    _state().saver(tmp_path, np.zeros(0, "uint16"))()
    saved = json.loads((tmp_path / STATE).read_text())
    saved["blocks_done"] = 0  # a key of an older lm_keras's state
    (tmp_path / STATE).write_text(json.dumps(saved))
    assert ResumeState.load(tmp_path) is None
