"""Preparing a dataset: a corpus streamed into a tokenizer and token shards (see `shards`).

Two passes over the text, in blocks, so memory does not grow with the corpus:

1. scan: the sha256 of every part, the UTF-8 check, the character count, and the
   characters (for a char tokenizer: no training character is ever unknown) or a
   bounded, deterministic sample of the training split's lines (for a trained one);
   then the train/validation boundary and the tokenizer.
2. encode: the blocks again, encoded (SentencePiece's threaded batch encode, numpy for
   characters) and cut into shards of `tokens_per_shard` ids.

Atomic and resumable: the work in progress lives in DATA_DIR/.prepare/ (state.json and
the ids not yet in a shard), saved every second after a block; shards are written under
a temporary name and renamed. Rerunning the same command resumes after the last saved
block and writes the same bytes as a run that never stopped. manifest.json is written
last, so a dataset without it is unfinished.
"""

import collections
import concurrent.futures
import dataclasses
import errno
import hashlib
import json
import os
import pathlib
import platform
import shutil
import time

import numpy as np

import lm_keras
from lm_keras import tokenizers
from lm_keras.data import shards as fmt
from lm_keras.data.corpus import resolve, validation_start
from lm_keras.errors import UserError
from lm_keras.files import fsync_dir, replace_dir_atomic, write_bytes_atomic, write_json_atomic

WORK = ".prepare"
STATE = "state.json"
# A trained tokenizer sees at most about this much of the training split: all of it when
# the corpus is smaller, else lines drawn by a hash of their index (the same for every run).
TOKENIZER_SAMPLE_BYTES = 32 << 20
# Sampled lines are cut to this many characters: under SentencePiece's max_sentence_length
# (100,000 bytes) whatever the script.
SAMPLE_LINE_CHARS = 4096
PROGRESS_SECONDS = 2.0
SAVE_SECONDS = 1.0  # how often the work in progress is saved (a rerun redoes at most this much)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a prepared dataset is made of: a rerun with other settings is another dataset."""

    corpus: str
    tokenizer: str = "char"
    vocab_size: int = 0
    val_fraction: float = 0.1
    tokens_per_shard: int = fmt.TOKENS_PER_SHARD
    tokenizer_from: str = ""  # the sha256 of a given tokenizer's files, or ""


def prepare(
    corpus,
    output_dir,
    *,
    tokenizer="char",
    vocab_size=0,
    val_fraction=0.1,
    tokenizer_from="",
    tokens_per_shard=fmt.TOKENS_PER_SHARD,
    tfds_data_dir="",
    log=print,
):
    """Prepares `corpus` into `output_dir` (or finishes an interrupted run); returns the dataset.

    Args:
        corpus: a corpus spec (see `lm_keras.data.corpus`).
        output_dir: the dataset's folder; new, empty, or holding an unfinished run of the
            same settings (which resumes), or a finished one (checked and returned).
        tokenizer: the tokenizer kind to train ("char", "bpe", "unigram").
        vocab_size: its vocabulary size (required for the trained kinds).
        val_fraction: the share of the characters that validates.
        tokenizer_from: a tokenizer folder (or a model directory or dataset holding one)
            to encode with instead of training one.
        tokens_per_shard: ids per shard file.
        tfds_data_dir: where TFDS datasets live, for `tfds:` specs.
        log: where progress lines go.

    Returns:
        The `PreparedDataset`.

    Raises:
        UserError: bad input (the corpus, the folder, the settings) or a write that failed
            (a full disk): one line naming it and the fix. Nothing written earlier is lost.
    """
    given = tokenizers.load(tokenizer_from) if tokenizer_from else None
    if given is not None:
        tokenizer, vocab_size = given.kind, given.vocab_size
    settings = Settings(
        corpus=corpus,
        tokenizer=tokenizer,
        vocab_size=int(vocab_size or 0),
        val_fraction=float(val_fraction),
        tokens_per_shard=int(tokens_per_shard),
        tokenizer_from=_tokenizer_hash(tokenizer_from) if given is not None else "",
    )
    if tokens_per_shard < 2:
        raise UserError(f"--tokens_per_shard must be >= 2; received tokens_per_shard={tokens_per_shard}")
    source = resolve(corpus, tfds_data_dir)
    out = _check_output_dir(output_dir)
    if fmt.is_prepared(out):
        return _finished(out, settings, tfds_data_dir, log)
    return _Run(settings, source, out, given, log).run()


def corpus_changes(dataset, tfds_data_dir=""):
    """How the corpus of a prepared dataset differs from the text now there, or None.

    Reads every part again for its sha256: a pass over the corpus.
    """
    recorded = dataset.manifest["corpus"]
    try:
        source = resolve(recorded["spec"], tfds_data_dir)
    except UserError as e:
        return str(e)
    then = [p["name"] for p in recorded["parts"]]
    now = [p.name for p in source.parts]
    if now != then:
        return f"its parts are now {_short(now)}, were {_short(then)}"
    digests = [hashlib.sha256() for _ in source.parts]
    try:
        for block in source.blocks():
            if not block.inserted:
                digests[block.part].update(block.data)
    except UserError as e:
        return str(e)
    for name, digest, part in zip(now, digests, recorded["parts"]):
        if digest.hexdigest() != part["sha256"]:
            return f"{name}: sha256 {part['sha256'][:12]}... then, {digest.hexdigest()[:12]}... now"
    return None


# ---------------------------------------------------------------------------- internals


def _check_output_dir(output_dir):
    out = pathlib.Path(output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--output_dir={output_dir} is a file: give a folder for the dataset")
    ours = fmt.is_prepared(out) or (out / WORK).is_dir()
    if out.is_dir() and not ours and any(out.iterdir()):
        raise UserError(
            f"--output_dir={output_dir} is not empty and holds no dataset: give a new or empty folder"
        )
    return out


def _finished(out, settings, tfds_data_dir, log):
    """A finished dataset of these settings, checked against the corpus now there."""
    dataset = fmt.PreparedDataset(out)
    then = dataset.manifest.get("settings", {})
    if then != dataclasses.asdict(settings):
        differences = [
            f"{k}={then.get(k)!r} there, {v!r} now"
            for k, v in dataclasses.asdict(settings).items()
            if then.get(k) != v
        ]
        raise UserError(
            f"{out} already holds a dataset prepared with other settings ({'; '.join(differences)}): "
            "give another --output_dir, or delete that one"
        )
    changes = corpus_changes(dataset, tfds_data_dir)
    if changes:
        raise UserError(
            f"the corpus {settings.corpus!r} changed since {out} was prepared from it ({changes}): "
            "give another --output_dir, or delete that one"
        )
    for split in (dataset.train, dataset.val):
        for index in range(len(split.counts)):
            split.check_shard(index)
    log(f"prepare | {out} is already prepared: {_summary(dataset.manifest)}")
    return dataset


class _Run:
    """One prepare run: scan (or its saved result), tokenizer, encode from the saved position."""

    def __init__(self, settings, source, out, given, log):
        self.settings, self.source, self.out, self.given, self.log = settings, source, out, given, log
        self.work = out / WORK
        self.total_bytes = source.size()

    def run(self):
        state = self._load_state()
        if state is None:
            self._clear()
            state = self._scan()
        self._remove_temporaries()
        tokenizer = tokenizers.load(self.out / fmt.TOKENIZER)
        self._encode(state, tokenizer)
        return self._finish(state)

    def _remove_temporaries(self):
        """The temporary files (".name.xxxx") a killed run left before renaming them into place."""
        for folder in (self.out, self.out / fmt.SHARDS):
            for path in folder.iterdir():
                if path.name.startswith(".") and path.name != WORK and path.is_dir():
                    shutil.rmtree(path)
                elif path.name.startswith(".") and path.name != WORK:
                    path.unlink()

    # -------------------------------------------------------------------- state

    def _load_state(self):
        path = self.work / STATE
        if not path.is_file():
            return None
        state = json.loads(path.read_text(encoding="utf-8"))
        fingerprints = [p.fingerprint() for p in self.source.parts]
        if state["settings"] != dataclasses.asdict(self.settings) or state["fingerprints"] != fingerprints:
            self.log(f"prepare | {self.out} holds an unfinished run of other settings or text: starting over")
            return None
        self.log(
            f"prepare | resuming {self.out} at {state['bytes_done'] / 1e6:,.1f} MB "
            f"({state['tokens']['train'] + state['tokens']['val']:,} tokens written)"
        )
        return state

    def _save_state(self, state, tail, writer=None):
        """The ids not yet in a shard go to a file of their own first, then the state that names it.

        With a `writer`, the writes wait their turn behind the shards before them. Every save
        names a new tail file, so a kill between the two writes leaves the last state's tail whole.
        """
        state["saves"] = state.get("saves", 0) + 1
        name = f"tail-{state['saves']}.bin"
        previous = state.get("tail")
        state["tail"] = name
        snapshot = (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8")
        tail = tail.tobytes()

        def save():
            _write(self.work / name, tail)
            _write(self.work / STATE, snapshot)
            if previous and previous != name:
                (self.work / previous).unlink(missing_ok=True)

        (writer.submit if writer else _call)(save)

    def _clear(self):
        for name in (WORK, fmt.SHARDS, fmt.TOKENIZER):
            shutil.rmtree(self.out / name, ignore_errors=True)
        (self.work).mkdir(parents=True)
        (self.out / fmt.SHARDS).mkdir()

    # --------------------------------------------------------------------- scan

    def _scan(self):
        s, source = self.settings, self.source
        sample = None
        if self.given is None and s.tokenizer != "char":
            sample = _Sample(self.total_bytes)
        part_digests = [hashlib.sha256() for _ in source.parts]
        part_bytes = [0] * len(source.parts)
        corpus_digest = hashlib.sha256()
        seen_ascii, others = b"", set()
        chars, nbytes, has_text = 0, 0, False
        starts = []  # (block start position, its first character): to find the boundary again
        position = (0, 0)
        progress = _Progress(self.log, "scan  ", self.total_bytes)
        with _InOrder(depth=4) as hashing:  # hashlib lets go of the GIL: the hashes run beside the rest
            for block in source.blocks():
                starts.append((position, chars))
                if not block.inserted:
                    hashing.submit(part_digests[block.part].update, block.data)
                    part_bytes[block.part] += len(block.data)
                hashing.submit(corpus_digest.update, block.data)
                has_text = has_text or not block.text.isspace()
                if self.given is None and s.tokenizer == "char":
                    rest = block.data.translate(None, seen_ascii)  # what is not a character seen before
                    if rest:
                        new = set(rest.decode("utf-8"))
                        seen_ascii += bytes(sorted(ord(c) for c in new if c < "\x80"))
                        others |= {c for c in new if c >= "\x80"}
                if sample is not None:
                    sample.add(block.text, chars)
                chars += len(block.text)
                nbytes += len(block.data)
                position = block.next
                progress.update(nbytes)
        progress.done(nbytes)
        if not has_text:
            raise UserError(
                f"corpus {source.name!r} ({s.corpus}) is empty: give a text file with some text in it"
            )
        boundary = self._boundary(starts, chars)
        if not 0 < boundary < chars:
            raise UserError(
                f"corpus {source.name!r} ({chars} characters) is too small to split at "
                f"--val_fraction={s.val_fraction}: give more text"
            )
        if self.given is not None:
            tokenizer, trained_on = self.given, None
        elif s.tokenizer == "char":
            characters = "".join(sorted({chr(b) for b in seen_ascii} | others))
            tokenizer, trained_on = tokenizers.train("char", characters, s.vocab_size or None), None
        else:
            text, trained_on = sample.text(source, boundary)
            self.log(
                f"prepare | training a {s.tokenizer} tokenizer of {s.vocab_size:,} ids on "
                + (
                    f"the whole training split ({len(text):,} characters)"
                    if trained_on["lines"] is None
                    else f"a sample of {trained_on['lines']:,} lines ({len(text):,} characters)"
                )
            )
            tokenizer = tokenizers.train(s.tokenizer, text, vocab_size=s.vocab_size)
        _guard_disk(self.out / fmt.TOKENIZER, replace_dir_atomic, tokenizer.save, self.out / fmt.TOKENIZER)
        state = {
            "settings": dataclasses.asdict(s),
            "fingerprints": [p.fingerprint() for p in source.parts],
            "corpus": {
                "spec": s.corpus,
                "name": source.name,
                "parts": [
                    {"name": p.name, "bytes": n, "sha256": d.hexdigest()}
                    for p, n, d in zip(source.parts, part_bytes, part_digests)
                ],
                "sha256": corpus_digest.hexdigest(),
                "characters": chars,
            },
            "boundary": boundary,
            "tokenizer": {
                "kind": tokenizer.kind,
                "vocab_size": tokenizer.vocab_size,
                "sha256": fmt.tokenizer_sha256(self.out / fmt.TOKENIZER),
                "trained_on": trained_on,
            },
            "next": [0, 0],
            "blocks_done": 0,
            "bytes_done": 0,
            "chars_done": 0,
            "split": "train",
            "shards": {"train": 0, "val": 0},
            "tokens": {"train": 0, "val": 0},
        }
        self._save_state(state, np.zeros((0,), fmt.token_dtype(tokenizer.vocab_size)))
        return state

    def _boundary(self, starts, chars):
        """The first validation character (see `validation_start`), read from the block holding the cut."""
        target = int(chars * (1.0 - self.settings.val_fraction))
        i = max(j for j, (_, first) in enumerate(starts) if first <= max(target - 1, 0))
        position, first = starts[i]
        texts = (block.text for block in self.source.blocks(tuple(position)))
        return validation_start(texts, chars, self.settings.val_fraction, seen=first)

    # ------------------------------------------------------------------- encode

    def _encode(self, state, tokenizer):
        dtype = fmt.token_dtype(tokenizer.vocab_size)
        tail = np.fromfile(self.work / state["tail"], dtype) if state.get("tail") else np.zeros(0, dtype)
        boundary, chars_done = state["boundary"], state["chars_done"]
        progress = _Progress(self.log, "encode", self.total_bytes, done=state["bytes_done"])
        saved = time.monotonic()
        with _InOrder(depth=32) as writer:  # the disk writes run beside the encoding of what follows
            for block in self.source.blocks(tuple(state["next"])):
                text = block.text
                cut = min(max(boundary - chars_done, 0), len(text))
                for split, piece in (("train", text[:cut]), ("val", text[cut:])):
                    if not piece:
                        continue
                    if split != state["split"]:  # the training split ends: its last shard
                        tail = self._write_shards(state, tail, writer, last=True)
                        state["split"] = split
                    ids = tokenizer.encode(piece)
                    tail = self._write_shards(state, np.concatenate([tail, ids.astype(dtype)]), writer)
                chars_done += len(text)
                state.update(
                    next=list(block.next),
                    blocks_done=state["blocks_done"] + 1,
                    bytes_done=state["bytes_done"] + len(block.data),
                    chars_done=chars_done,
                )
                if time.monotonic() - saved >= SAVE_SECONDS:
                    self._save_state(state, tail, writer)
                    saved = time.monotonic()
                progress.update(state["bytes_done"], state["tokens"]["train"] + state["tokens"]["val"])
            if state["split"] != "done":
                self._write_shards(state, tail, writer, last=True)
                state["split"] = "done"
                self._save_state(state, np.zeros(0, dtype), writer)
        progress.done(state["bytes_done"], state["tokens"]["train"] + state["tokens"]["val"])

    def _write_shards(self, state, ids, writer, last=False):
        """Writes the full shards of `ids` (and with `last`, the rest too); returns what is left."""
        split, size = state["split"], self.settings.tokens_per_shard
        while len(ids) >= size or (last and len(ids)):
            shard, ids = ids[:size], ids[size:]
            path = self.out / fmt.SHARDS / fmt.shard_name(split, state["shards"][split])
            header = fmt.shard_header(len(shard), shard.itemsize)
            writer.submit(
                lambda path=path, shard=shard, header=header: _write(path, header + shard.tobytes())
            )
            state["shards"][split] += 1
            state["tokens"][split] += len(shard)
        return ids

    # ------------------------------------------------------------------- finish

    def _finish(self, state):
        s = self.settings
        size, dtype = s.tokens_per_shard, fmt.token_dtype(state["tokenizer"]["vocab_size"])
        splits = {}
        for split in fmt.SPLITS:
            tokens, count = state["tokens"][split], state["shards"][split]
            if not tokens:
                raise UserError(
                    f"corpus {s.corpus!r}: its {split} split encodes to no tokens; give more text"
                )
            counts = [size] * (count - 1) + [tokens - size * (count - 1)]
            characters = (
                state["boundary"] if split == "train" else state["corpus"]["characters"] - state["boundary"]
            )
            splits[split] = {"characters": characters, "tokens": tokens, "shard_tokens": counts}
        # Shards were written without waiting for the disk; they reach it before the manifest does.
        shard_dir = self.out / fmt.SHARDS
        for name in sorted(os.listdir(shard_dir)):
            fd = os.open(shard_dir / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(shard_dir)
        manifest = {
            "format": fmt.FORMAT,
            "version": fmt.FORMAT_VERSION,
            "settings": dataclasses.asdict(s),
            "corpus": state["corpus"],
            "tokenizer": state["tokenizer"],
            "shards": {"dtype": dtype, "header_bytes": fmt.HEADER_BYTES, "tokens_per_shard": size},
            "splits": splits,
            "validation": {
                "fraction": s.val_fraction,
                "first_character": state["boundary"],
                "rule": "the first line that starts at or after (1 - fraction) of the characters",
            },
            "versions": _versions(self.source),
        }
        _guard_disk(self.out / fmt.MANIFEST, write_json_atomic, self.out / fmt.MANIFEST, manifest)
        fsync_dir(self.out)
        shutil.rmtree(self.work, ignore_errors=True)
        self.log(f"prepare | done: {_summary(manifest)} | {self.out}")
        return fmt.PreparedDataset(self.out)


class _Sample:
    """The text a trained tokenizer learns from: bounded and the same on every run.

    A corpus of at most `TOKENIZER_SAMPLE_BYTES` gives its whole training split. A larger
    one gives the lines whose index hashes below a threshold set for that many bytes,
    each cut to `SAMPLE_LINE_CHARS` characters; lines of the validation split are dropped
    once the boundary is known.
    """

    def __init__(self, total_bytes):
        self.whole = total_bytes is not None and total_bytes <= TOKENIZER_SAMPLE_BYTES
        rate = 1.0 if not total_bytes else min(1.0, TOKENIZER_SAMPLE_BYTES / total_bytes)
        self.threshold = np.uint64(min(int(rate * 2**64), 2**64 - 1))
        self.texts, self.lines, self.line_index, self.carry, self.size = [], [], 0, "", 0

    def add(self, text, first_char):
        if self.whole:
            self.texts.append(text)
            return
        if self.size > 2 * TOKENIZER_SAMPLE_BYTES:
            return  # a corpus whose size could not be told ahead: keep the sample bounded
        lines = text.split("\n")
        lines[0] = self.carry + lines[0]
        starts = first_char - len(self.carry) + np.concatenate([[0], np.cumsum([len(x) + 1 for x in lines])])
        keys = _hash(np.arange(self.line_index, self.line_index + len(lines) - 1, dtype=np.uint64))
        for i in np.flatnonzero(keys < self.threshold):
            line = lines[i][:SAMPLE_LINE_CHARS] + "\n"
            self.lines.append((int(starts[i]), line))
            self.size += len(line)
        self.line_index += len(lines) - 1
        self.carry = lines[-1][:SAMPLE_LINE_CHARS]

    def text(self, source, boundary):
        """(the sample's text, what it is) once the boundary is known."""
        if self.whole:
            return "".join(self.texts)[:boundary], {"characters": boundary, "lines": None}
        kept = [line for start, line in self.lines if start < boundary]
        text = "".join(kept)
        return text, {"characters": len(text), "lines": len(kept)}


class _InOrder:
    """Runs calls one after another on a thread of its own while the caller goes on.

    At most `depth` calls wait. After a call fails, the later ones do not run (a state
    saved after a shard that failed to be written would claim it), and the error is
    raised by a later `submit` or by `close`, which waits for them all.
    """

    def __init__(self, depth):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending, self._depth, self._error = collections.deque(), depth, None

    def _run(self, fn, args):
        if self._error is not None:
            raise self._error
        try:
            return fn(*args)
        except BaseException as e:
            self._error = e
            raise

    def submit(self, fn, *args):
        try:
            while self._pending and (self._pending[0].done() or len(self._pending) >= self._depth):
                self._pending.popleft().result()
        except BaseException:
            self._pool.shutdown(cancel_futures=True)
            raise
        self._pending.append(self._pool.submit(self._run, fn, args))

    def close(self):
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self.close()
        else:  # the caller failed: what has not started is dropped
            self._pool.shutdown(cancel_futures=True)


def _call(fn):
    return fn()


def _hash(x):
    """splitmix64 of each uint64: a fixed pseudo-random key per line index."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class _Progress:
    """Progress lines every few seconds: MB read, MB/s, tokens written, time left."""

    def __init__(self, log, stage, total, done=0):
        self.log, self.stage, self.total = log, stage, total
        self.start, self.start_done = time.monotonic(), done
        self.last = self.start

    def line(self, done, tokens, finished=False):
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = (done - self.start_done) / elapsed
        text = f"prepare | {self.stage} {done / 1e6:>10,.1f}"
        text += f" / {self.total / 1e6:,.1f} MB" if self.total else " MB"
        text += f" | {rate / 1e6:,.1f} MB/s"
        if tokens is not None:
            text += f" | {tokens:,} tokens"
        if finished:
            text += f" | took {_duration(elapsed)}"
        elif self.total and rate > 0:
            text += f" | eta {_duration(max(self.total - done, 0) / rate)}"
        return text

    def update(self, done, tokens=None):
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            self.log(self.line(done, tokens))

    def done(self, done, tokens=None):
        self.log(self.line(done, tokens, finished=True))


def _write(path, data, fsync=False):
    _guard_disk(path, write_bytes_atomic, path, data, fsync=fsync)


def _guard_disk(path, write, *args, **kwargs):
    """Runs `write(*args)`; a full disk (or a file-size limit) becomes one line naming `path`."""
    try:
        return write(*args, **kwargs)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise UserError(
                f"cannot write {path}: {os.strerror(e.errno)} (the disk is full or a file-size limit "
                "was hit): free some space and rerun the same command; it resumes where it stopped"
            ) from None
        raise


def _tokenizer_hash(path):
    path = pathlib.Path(path)
    folder = path if (path / "tokenizer.json").is_file() else path / fmt.TOKENIZER
    return fmt.tokenizer_sha256(folder)


def _versions(source):
    import sentencepiece

    versions = {
        "lm_keras": lm_keras.__version__,
        "numpy": np.__version__,
        "sentencepiece": sentencepiece.__version__,
        "python": platform.python_version(),
    }
    if any(type(p).__name__ == "TfdsPart" for p in source.parts):
        import tensorflow_datasets as tfds

        versions["tensorflow_datasets"] = tfds.__version__
    return versions


def _summary(manifest):
    splits, shards = manifest["splits"], manifest["shards"]
    return (
        f"{splits['train']['tokens']:,} train / {splits['val']['tokens']:,} val tokens in "
        f"{len(splits['train']['shard_tokens'])} + {len(splits['val']['shard_tokens'])} shards "
        f"({shards['dtype']}) | {manifest['tokenizer']['kind']} tokenizer, "
        f"{manifest['tokenizer']['vocab_size']:,} ids"
    )


def _short(names):
    return names[:3] + ["..."] if len(names) > 3 else names


def _duration(seconds):
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
