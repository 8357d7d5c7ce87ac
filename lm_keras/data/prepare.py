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

One prepare at a time writes a folder: it holds an OS lock on DATA_DIR/.lock (see
`lm_keras.files.exclusive_lock`) from before its first write to after its manifest, and
removes the file once the dataset is complete. A second prepare is refused in one line
naming the first's pid; a killed one's lock goes with its process, so a rerun resumes.
"""

import dataclasses
import hashlib
import os
import pathlib
import shutil
import time

import numpy as np

from lm_keras import tokenizers
from lm_keras.data import shards as fmt
from lm_keras.data.byte_progress import ByteProgress
from lm_keras.data.corpus import resolve, validation_start
from lm_keras.data.disk_guard import disk_guard, write_file
from lm_keras.data.resume_state import ResumeState
from lm_keras.data.serial_worker import SerialWorker
from lm_keras.data.tokenizer_sample import TokenizerSample
from lm_keras.errors import UserError
from lm_keras.files import LOCK_FILE, exclusive_lock, fsync_dir, replace_dir_atomic, write_json_atomic
from lm_keras.versions import library_versions

WORK = ".prepare"
SAVE_SECONDS = 1.0  # how often the work in progress is saved (a rerun redoes at most this much)
# What the manifest's "versions" records: what the shards' bytes depend on.
PACKAGES = ("lm_keras", "numpy", "sentencepiece")


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
        UserError: bad input (the corpus, the folder, the settings), a folder another
            prepare is writing, or a write that failed (a full disk): one line naming it and
            the fix. Nothing written earlier is lost.
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
    if fmt.is_prepared(out):  # nothing writes a finished dataset: checking it needs no lock
        return _finished(out, settings, tfds_data_dir, log)
    # One writer at a time: a second prepare on the folder is refused in one line naming the
    # first (it would resume the same work and remove the first's temporary shards).
    with exclusive_lock(out, "prepare", "--output_dir"):
        try:
            if fmt.is_prepared(out):  # another prepare finished it since the check above
                return _finished(out, settings, tfds_data_dir, log)
            return _Run(settings, source, out, given, log).run()
        finally:
            # A finished dataset holds its three entries and nothing else (the same bytes every
            # run); once its manifest is written nothing writes here again, so the lock can go.
            if fmt.is_prepared(out):
                (out / LOCK_FILE).unlink(missing_ok=True)


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
    # A lock file alone is what a prepare killed before its first save leaves.
    if out.is_dir() and not ours and any(p.name != LOCK_FILE for p in out.iterdir()):
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
                if not path.name.startswith(".") or path.name in (WORK, LOCK_FILE):
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()

    def _load_state(self):
        state = ResumeState.load(self.work)
        if state is None:
            return None
        fingerprints = [p.fingerprint() for p in self.source.parts]
        if state.settings != dataclasses.asdict(self.settings) or state.fingerprints != fingerprints:
            self.log(f"prepare | {self.out} holds an unfinished run of other settings or text: starting over")
            return None
        self.log(
            f"prepare | resuming {self.out} at {state.bytes_done / 1e6:,.1f} MB "
            f"({state.tokens_written:,} tokens written)"
        )
        return state

    def _clear(self):
        for name in (WORK, fmt.SHARDS, fmt.TOKENIZER):
            shutil.rmtree(self.out / name, ignore_errors=True)
        self.work.mkdir(parents=True)
        (self.out / fmt.SHARDS).mkdir()

    # --------------------------------------------------------------------- scan

    def _scan(self):
        s, source = self.settings, self.source
        sample = None
        if self.given is None and s.tokenizer != "char":
            sample = TokenizerSample(self.total_bytes)
        part_digests = [hashlib.sha256() for _ in source.parts]
        part_bytes = [0] * len(source.parts)
        corpus_digest = hashlib.sha256()
        seen_ascii, others = b"", set()
        chars, nbytes, has_text = 0, 0, False
        starts = []  # (block start position, its first character): to find the boundary again
        position = (0, 0)
        progress = ByteProgress(self.log, "prepare | scan  ", self.total_bytes)
        with SerialWorker(depth=4) as hashing:  # hashlib lets go of the GIL: the hashes run beside the rest
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
            text, trained_on = sample.text(boundary)
            self.log(
                f"prepare | training a {s.tokenizer} tokenizer of {s.vocab_size:,} ids on "
                + (
                    f"the whole training split ({len(text):,} characters)"
                    if trained_on["lines"] is None
                    else f"a sample of {trained_on['lines']:,} lines ({len(text):,} characters)"
                )
            )
            tokenizer = tokenizers.train(s.tokenizer, text, vocab_size=s.vocab_size)
        with disk_guard(self.out / fmt.TOKENIZER):
            replace_dir_atomic(tokenizer.save, self.out / fmt.TOKENIZER)
        state = ResumeState(
            settings=dataclasses.asdict(s),
            fingerprints=[p.fingerprint() for p in source.parts],
            corpus={
                "spec": s.corpus,
                "name": source.name,
                "parts": [
                    {"name": p.name, "bytes": n, "sha256": d.hexdigest()}
                    for p, n, d in zip(source.parts, part_bytes, part_digests)
                ],
                "sha256": corpus_digest.hexdigest(),
                "characters": chars,
            },
            tokenizer={
                "kind": tokenizer.kind,
                "vocab_size": tokenizer.vocab_size,
                "sha256": fmt.tokenizer_sha256(self.out / fmt.TOKENIZER),
                "trained_on": trained_on,
            },
            boundary=boundary,
        )
        state.saver(self.work, np.zeros(0, fmt.token_dtype(tokenizer.vocab_size)))()
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
        tail = state.read_tail(self.work, dtype)
        progress = ByteProgress(self.log, "prepare | encode", self.total_bytes, done=state.bytes_done)
        saved = time.monotonic()
        with SerialWorker(depth=32) as writer:  # the disk writes run beside the encoding of what follows
            for block in self.source.blocks(state.next):
                text = block.text
                cut = min(max(state.boundary - state.chars_done, 0), len(text))
                for split, piece in (("train", text[:cut]), ("val", text[cut:])):
                    if not piece:
                        continue
                    if split != state.split:  # the training split ends: its last shard
                        tail = self._write_shards(state, tail, writer, last=True)
                        state.split = split
                    ids = tokenizer.encode(piece)
                    tail = self._write_shards(state, np.concatenate([tail, ids.astype(dtype)]), writer)
                state.next = tuple(block.next)
                state.bytes_done += len(block.data)
                state.chars_done += len(text)
                if time.monotonic() - saved >= SAVE_SECONDS:
                    writer.submit(state.saver(self.work, tail))
                    saved = time.monotonic()
                progress.update(state.bytes_done, state.tokens_written)
            if state.split != "done":
                self._write_shards(state, tail, writer, last=True)
                state.split = "done"
                writer.submit(state.saver(self.work, np.zeros(0, dtype)))
        progress.done(state.bytes_done, state.tokens_written)

    def _write_shards(self, state, ids, writer, last=False):
        """Writes the full shards of `ids` (and with `last`, the rest too); returns what is left."""
        split, size = state.split, self.settings.tokens_per_shard
        while len(ids) >= size or (last and len(ids)):
            shard, ids = ids[:size], ids[size:]
            path = self.out / fmt.SHARDS / fmt.shard_name(split, state.shards[split])
            writer.submit(write_file, path, fmt.shard_header(len(shard), shard.itemsize) + shard.tobytes())
            state.shards[split] += 1
            state.tokens[split] += len(shard)
        return ids

    # ------------------------------------------------------------------- finish

    def _finish(self, state):
        s = self.settings
        size = s.tokens_per_shard
        shard_tokens = {}
        for split in fmt.SPLITS:
            tokens, count = state.tokens[split], state.shards[split]
            if not tokens:
                raise UserError(
                    f"corpus {s.corpus!r}: its {split} split encodes to no tokens; give more text"
                )
            shard_tokens[split] = [size] * (count - 1) + [tokens - size * (count - 1)]
        # Shards were written without waiting for the disk; they reach it before the manifest does.
        shard_dir = self.out / fmt.SHARDS
        for name in sorted(os.listdir(shard_dir)):
            fd = os.open(shard_dir / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(shard_dir)
        manifest = fmt.manifest(
            settings=dataclasses.asdict(s),
            corpus=state.corpus,
            tokenizer=state.tokenizer,
            shard_tokens=shard_tokens,
            first_val_character=state.boundary,
            versions=_versions(self.source),
        )
        with disk_guard(self.out / fmt.MANIFEST):
            write_json_atomic(self.out / fmt.MANIFEST, manifest)
        fsync_dir(self.out)
        shutil.rmtree(self.work, ignore_errors=True)
        self.log(f"prepare | done: {_summary(manifest)} | {self.out}")
        return fmt.PreparedDataset(self.out)


def _tokenizer_hash(path):
    path = pathlib.Path(path)
    folder = path if (path / "tokenizer.json").is_file() else path / fmt.TOKENIZER
    return fmt.tokenizer_sha256(folder)


def _versions(source):
    tfds = any(type(p).__name__ == "TfdsPart" for p in source.parts)
    return library_versions(PACKAGES + (("tensorflow-datasets",) if tfds else ()))


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
