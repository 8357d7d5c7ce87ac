"""ResumeState: how far a prepare run got, saved in DATA_DIR/.prepare/ so that a rerun resumes there."""

import dataclasses
import json
import pathlib

import numpy as np

from lm_keras.data.disk_guard import write_file
from lm_keras.data.shards import SPLITS

STATE = "state.json"


def _per_split():
    return dict.fromkeys(SPLITS, 0)


@dataclasses.dataclass
class ResumeState:
    """What the scan found, and how far the encoding got: a rerun goes on from it.

    Saved as state.json beside a tail file (the ids encoded but not yet in a shard; for
    examples, a mask tail beside it). Every save names a new tail file and writes it before
    the state that names it, so a kill between the two leaves the previous state and its
    tail whole.

    Attributes:
        settings: the run's settings (`dataclasses.asdict` of prepare's `Settings`).
        fingerprints: each corpus part's fingerprint when the scan read it.
        corpus: the manifest's "corpus": spec, name, parts, sha256, characters.
        tokenizer: the manifest's "tokenizer": kind, vocab_size, sha256, trained_on.
        boundary: the first validation character.
        next: the position (part, offset) of the first block not yet encoded.
        bytes_done: the bytes of the blocks encoded.
        chars_done: their characters.
        split: the split being written ("train", "val"), "done" once the last shard is.
        shards: {split: shards written}.
        tokens: {split: tokens in those shards}.
        saves: how many times this run saved (numbers the tail files).
        tail: the tail file's name in the work folder, "" before the first save.
        examples: for a .jsonl corpus, how far the examples got (format, line, counts,
            longest, ...; see `lm_keras.data.prepare`); None for text.

    Example:
        state = ResumeState.load(work) or ResumeState(settings, fingerprints, corpus, tokenizer, boundary)
        tail = state.read_tail(work, "uint16")
        worker.submit(state.saver(work, tail))
    """

    settings: dict
    fingerprints: list
    corpus: dict
    tokenizer: dict
    boundary: int
    next: tuple = (0, 0)
    bytes_done: int = 0
    chars_done: int = 0
    split: str = "train"
    shards: dict = dataclasses.field(default_factory=_per_split)
    tokens: dict = dataclasses.field(default_factory=_per_split)
    saves: int = 0
    tail: str = ""
    examples: dict = None

    @property
    def tokens_written(self):
        return sum(self.tokens.values())

    @classmethod
    def load(cls, work):
        """The state saved in the folder `work`; None where none is, or one of another lm_keras."""
        path = pathlib.Path(work) / STATE
        if not path.is_file():
            return None
        saved = json.loads(path.read_text(encoding="utf-8"))
        if set(saved) != {field.name for field in dataclasses.fields(cls)}:
            return None
        return cls(**{**saved, "next": tuple(saved["next"])})

    def read_tail(self, work, dtype):
        """The ids the last save left out of the shards."""
        return np.fromfile(pathlib.Path(work) / self.tail, dtype) if self.tail else np.zeros(0, dtype)

    def read_mask_tail(self, work):
        """The loss mask of the ids the last save left out of the shards (examples only)."""
        return (
            np.fromfile(pathlib.Path(work) / _mask(self.tail), np.uint8)
            if self.tail
            else np.zeros(0, np.uint8)
        )

    def saver(self, work, tail, mask=None):
        """A call that saves the state as it is now, with `tail` (the ids not yet in a shard)
        and, for examples, `mask` (their loss mask).

        The state is copied now and written when the call runs, so it can wait its turn
        behind the shard writes before it.
        """
        work = pathlib.Path(work)
        previous = self.tail
        self.saves += 1
        self.tail = name = f"tail-{self.saves}.bin"
        snapshot = (json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n").encode("utf-8")
        data = tail.tobytes()
        mask_data = None if mask is None else mask.tobytes()

        def save():
            write_file(work / name, data)
            if mask_data is not None:
                write_file(work / _mask(name), mask_data)
            write_file(work / STATE, snapshot)
            if previous:
                (work / previous).unlink(missing_ok=True)
                (work / _mask(previous)).unlink(missing_ok=True)

        return save


def _mask(tail_name):
    """The mask tail's file beside the tail file `tail_name`."""
    return tail_name[: -len(".bin")] + ".mask"
