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

A corpus ending in .jsonl is a file of task examples (see `lm_keras.data.examples`),
prepared by the same run with records in place of blocks: the scan checks every record
(one line naming `file:line` for a bad one) and counts them; the encoding writes, beside
each id shard, its loss-mask shard, and at the end each split's example index (the first
token of each example). The validation split is `validation_data` (a second .jsonl file)
or the last `val_fraction` of the examples, whole. The manifest's "examples" section
records the format, the counts and the longest example with its `file:line`: nothing is
cut to a context here, and the trainer refuses an example that does not fit
(`examples.check_example_lengths`).

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
from lm_keras.data import examples as examples_lib
from lm_keras.data import shards as fmt
from lm_keras.data.byte_progress import ByteProgress
from lm_keras.data.corpus import CorpusSource, FilePart, resolve, validation_start
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
    validation_data: str = ""  # a .jsonl file of validation examples, or ""


def _settings_dict(settings):
    """The settings as the manifest and the resume state record them: `validation_data` only where
    given, so datasets prepared before it existed keep their bytes and still match."""
    d = dataclasses.asdict(settings)
    if not d["validation_data"]:
        del d["validation_data"]
    return d


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
    validation_data="",
    log=print,
):
    """Prepares `corpus` into `output_dir` (or finishes an interrupted run); returns the dataset.

    Args:
        corpus: a corpus spec (see `lm_keras.data.corpus`), or a .jsonl file of examples
            (see `lm_keras.data.examples`).
        output_dir: the dataset's folder; new, empty, or holding an unfinished run of the
            same settings (which resumes), or a finished one (checked and returned).
        tokenizer: the tokenizer kind to train ("char", "bpe", "unigram").
        vocab_size: its vocabulary size (required for the trained kinds).
        val_fraction: the share of the characters that validates.
        tokenizer_from: a tokenizer folder (or a model directory or dataset holding one)
            to encode with instead of training one.
        tokens_per_shard: ids per shard file.
        tfds_data_dir: where TFDS datasets live, for `tfds:` specs.
        validation_data: for a .jsonl corpus, a .jsonl file of the validation examples
            (of the same format); "" splits the corpus's examples by `val_fraction`.
        log: where progress lines go.

    Returns:
        The `PreparedDataset`.

    Raises:
        UserError: bad input (the corpus, the folder, the settings), a folder another
            prepare is writing, or a write that failed (a full disk): one line naming it and
            the fix. Nothing written earlier is lost.
    """
    jsonl = examples_lib.is_jsonl(corpus)
    if validation_data and not jsonl:
        raise UserError(
            f"--validation_data={validation_data} is for examples: give --corpus=FILE.jsonl "
            f"(received --corpus={corpus})"
        )
    given = tokenizers.load(tokenizer_from) if tokenizer_from else None
    if given is not None and jsonl:
        given = given.with_end_of_text()  # every example ends with it
    if given is not None:
        tokenizer, vocab_size = given.kind, given.vocab_size
    settings = Settings(
        corpus=corpus,
        tokenizer=tokenizer,
        vocab_size=int(vocab_size or 0),
        val_fraction=float(val_fraction),
        tokens_per_shard=int(tokens_per_shard),
        tokenizer_from=_tokenizer_hash(tokenizer_from) if given is not None else "",
        validation_data=str(validation_data or ""),
    )
    if tokens_per_shard < 2:
        raise UserError(f"--tokens_per_shard must be >= 2; received tokens_per_shard={tokens_per_shard}")
    source = _source(corpus, validation_data, tfds_data_dir)
    out = _check_output_dir(output_dir)
    if fmt.is_prepared(out):  # nothing writes a finished dataset: checking it needs no lock
        return _finished(out, settings, tfds_data_dir, log)
    # One writer at a time: a second prepare on the folder is refused in one line naming the
    # first (it would resume the same work and remove the first's temporary shards).
    with exclusive_lock(out, "prepare", "--output_dir"):
        try:
            if fmt.is_prepared(out):  # another prepare finished it since the check above
                return _finished(out, settings, tfds_data_dir, log)
            run = _ExamplesRun if jsonl else _Run
            return run(settings, source, out, given, log).run()
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
        validation_data = dataset.manifest["settings"].get("validation_data", "")
        source = _source(recorded["spec"], validation_data, tfds_data_dir)
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


def _source(corpus, validation_data, tfds_data_dir):
    """The corpus's `CorpusSource`; a .jsonl one is its file, then `validation_data`'s if given."""
    if not examples_lib.is_jsonl(corpus):
        return resolve(corpus, tfds_data_dir)
    parts = []
    for flag, path in (("--corpus", corpus), ("--validation_data", validation_data)):
        if not path:
            continue
        if not examples_lib.is_jsonl(path) or not pathlib.Path(path).is_file():
            raise UserError(f"{flag}={path} is not a .jsonl file: give the path of a JSON Lines file")
        parts.append(FilePart(path, pathlib.Path(path).name))
    return CorpusSource(corpus, pathlib.Path(corpus).name, tuple(parts))


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
    if then != _settings_dict(settings):
        differences = [
            f"{k}={then.get(k, '')!r} there, {v!r} now"
            for k, v in dataclasses.asdict(settings).items()
            if then.get(k, "") != v
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
    dataset.check_ends()
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
        if state.settings != _settings_dict(self.settings) or state.fingerprints != fingerprints:
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
            settings=_settings_dict(s),
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
        self._write_indexes(state)
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
            settings=_settings_dict(s),
            corpus=state.corpus,
            tokenizer=state.tokenizer,
            shard_tokens=shard_tokens,
            first_val_character=state.boundary,
            versions=_versions(self.source),
            examples=self._examples_section(state),
        )
        with disk_guard(self.out / fmt.MANIFEST):
            write_json_atomic(self.out / fmt.MANIFEST, manifest)
        fsync_dir(self.out)
        shutil.rmtree(self.work, ignore_errors=True)
        self.log(f"prepare | done: {_summary(manifest)} | {self.out}")
        return fmt.PreparedDataset(self.out)

    def _write_indexes(self, state):
        """Writes what goes beside the shards before they are flushed: nothing for text."""

    def _examples_section(self, state):
        """The manifest's "examples" section: none for text."""
        return None


class _ExamplesRun(_Run):
    """A prepare run of a .jsonl corpus: records in place of blocks, a mask beside the ids.

    Its `ResumeState.examples` holds: format and set_by (the line that set it); line (the
    line number at `next`); index (examples encoded); first_val (the first validation
    example, for a split by fraction); counts, characters, loss_tokens and longest
    ({tokens, at}) per split.
    """

    def _records(self, part_index, start=0, line=1, on_bytes=None):
        part = self.source.parts[part_index]
        return examples_lib.read_records(part.path, part.name, start, line, on_bytes)

    def _split_of(self, part_index, index, ex):
        if self.settings.validation_data:
            return "train" if part_index == 0 else "val"
        return "train" if index < ex["first_val"] else "val"

    # --------------------------------------------------------------------- scan

    def _scan(self):
        s, parts = self.settings, self.source.parts
        part_digests = [hashlib.sha256() for _ in parts]
        corpus_digest = hashlib.sha256()
        part_bytes, part_counts = [0] * len(parts), [0] * len(parts)
        texts, characters = [], set()
        fmt_name, set_by = None, None
        sample = TokenizerSample(self.total_bytes) if self.given is None and s.tokenizer != "char" else None
        chars, nbytes = 0, 0
        progress = ByteProgress(self.log, "prepare | scan  ", self.total_bytes)
        for i in range(len(parts)):

            def on_bytes(data, i=i):
                part_digests[i].update(data)
                corpus_digest.update(data)
                part_bytes[i] += len(data)

            for record in self._records(i, on_bytes=on_bytes):
                fmt_name = examples_lib.check_record(record, fmt_name, set_by)
                set_by = set_by or record.where
                text = examples_lib.record_text(record.value, fmt_name)
                if s.tokenizer == "char" or getattr(self.given, "kind", None) == "char":
                    characters |= set(text)
                elif sample is not None:
                    texts.append(text)  # bounded below: the sample takes them block by block
                    if len(texts) >= 1024:
                        block = "\n".join(texts) + "\n"
                        sample.add(block, chars)
                        chars += len(block)
                        texts = []
                part_counts[i] += 1
                nbytes += len(record.data)
                progress.update(nbytes)
            if not part_counts[i]:
                raise UserError(f"{parts[i].name} holds no examples: give a file of one JSON object per line")
        progress.done(nbytes)
        total = sum(part_counts)
        if s.validation_data:
            first_val = part_counts[0]
        else:
            first_val = int(total * (1.0 - s.val_fraction))
            if not 0 < first_val < total:
                raise UserError(
                    f"{parts[0].name}: too few examples ({total}) to split at --val_fraction="
                    f"{s.val_fraction}: give more examples, or --validation_data=FILE.jsonl"
                )
        if self.given is not None:
            tokenizer, trained_on = self.given, None
            if fmt_name == "messages":
                characters |= set(examples_lib.template_text())
            unknown = sorted(characters - set(getattr(tokenizer, "characters", characters)))
            if unknown:
                shown = "".join(unknown[:20]) + ("..." if len(unknown) > 20 else "")
                self.log(
                    f"prepare | warning: {len(unknown)} characters of the examples are not in the given "
                    f"char tokenizer's vocabulary ({shown!r}): they encode to its unknown id, so a model "
                    "of that tokenizer can neither read nor write them; train from scratch on such data"
                )
        elif s.tokenizer == "char":
            if fmt_name == "messages":
                characters |= set(examples_lib.template_text())
            tokenizer, trained_on = (
                tokenizers.train("char", "".join(sorted(characters)), s.vocab_size or None),
                None,
            )
            tokenizer = tokenizer.with_end_of_text()
        else:
            if texts:
                sample.add("\n".join(texts) + "\n", chars)
            text, trained_on = sample.text(self._train_characters(first_val, fmt_name))
            self.log(
                f"prepare | training a {s.tokenizer} tokenizer of {s.vocab_size:,} ids on the training "
                "examples"
            )
            tokenizer = tokenizers.train(s.tokenizer, text, vocab_size=s.vocab_size).with_end_of_text()
        with disk_guard(self.out / fmt.TOKENIZER):
            replace_dir_atomic(tokenizer.save, self.out / fmt.TOKENIZER)
        per_split = dict.fromkeys(fmt.SPLITS, 0)
        state = ResumeState(
            settings=_settings_dict(s),
            fingerprints=[p.fingerprint() for p in parts],
            corpus={
                "spec": s.corpus,
                "name": self.source.name,
                "parts": [
                    {"name": p.name, "bytes": n, "sha256": d.hexdigest()}
                    for p, n, d in zip(parts, part_bytes, part_digests)
                ],
                "sha256": corpus_digest.hexdigest(),
                "characters": 0,  # set at the end: the characters the examples encode
            },
            tokenizer={
                "kind": tokenizer.kind,
                "vocab_size": tokenizer.vocab_size,
                "sha256": fmt.tokenizer_sha256(self.out / fmt.TOKENIZER),
                "trained_on": trained_on,
            },
            boundary=0,
            examples={
                "format": fmt_name,
                "set_by": set_by,
                "eot_id": int(tokenizer.eot_id),
                "line": 1,
                "index": 0,
                "first_val": first_val,
                "counts": dict(per_split),
                "characters": dict(per_split),
                "loss_tokens": dict(per_split),
                "longest": {split: {"tokens": 0, "at": ""} for split in fmt.SPLITS},
            },
        )
        dtype = fmt.token_dtype(tokenizer.vocab_size)
        state.saver(self.work, np.zeros(0, dtype), np.zeros(0, np.uint8))()
        return state

    def _train_characters(self, first_val, fmt_name):
        """The characters of the training examples' texts as the sample joined them (a second read, to
        the boundary: trained tokenizers only)."""
        chars, index = 0, 0
        for i in range(len(self.source.parts)):
            for record in self._records(i):
                if index >= first_val:
                    return chars
                chars += len(examples_lib.record_text(record.value, fmt_name)) + 1
                index += 1
        return chars

    # ------------------------------------------------------------------- encode

    def _encode(self, state, tokenizer):
        ex = state.examples
        dtype = fmt.token_dtype(tokenizer.vocab_size)
        pieces = _Pieces(state.read_tail(self.work, dtype), state.read_mask_tail(self.work))
        size = self.settings.tokens_per_shard
        # The example index grows in the work folder; what a kill wrote after the last save goes.
        for split in fmt.SPLITS:
            with open(self._partial_index(split), "ab") as f:
                f.truncate(8 * ex["counts"][split])
        pending = {split: [] for split in fmt.SPLITS}
        progress = ByteProgress(self.log, "prepare | encode", self.total_bytes, done=state.bytes_done)
        saved = time.monotonic()
        with SerialWorker(depth=32) as writer:
            first_part, start = state.next
            for i in range(first_part, len(self.source.parts)):
                position = start if i == first_part else 0
                line = ex["line"] if i == first_part else 1
                for record in self._records(i, position, line):
                    split = self._split_of(i, ex["index"], ex)
                    if split != state.split:  # the training split ends: its last shard
                        self._write_example_shards(state, pieces, writer, last=True)
                        state.split = split
                    ids, loss_mask = examples_lib.encode_record(tokenizer, record.value, ex["format"])
                    pending[split].append(state.tokens[split] + pieces.size)
                    pieces.add(ids.astype(dtype), loss_mask)
                    if pieces.size >= size:
                        self._write_example_shards(state, pieces, writer)
                    ex["index"] += 1
                    ex["counts"][split] += 1
                    ex["characters"][split] += len(examples_lib.record_text(record.value, ex["format"]))
                    ex["loss_tokens"][split] += int(loss_mask.sum())
                    if len(ids) > ex["longest"][split]["tokens"]:
                        ex["longest"][split] = {"tokens": len(ids), "at": record.where}
                    state.bytes_done += record.next - position
                    position = record.next
                    state.next, ex["line"] = (i, record.next), record.line + 1
                    if time.monotonic() - saved >= SAVE_SECONDS:
                        self._save(state, pieces, pending, writer)
                        saved = time.monotonic()
                    progress.update(state.bytes_done, state.tokens_written)
                if i + 1 < len(self.source.parts):
                    state.next, ex["line"] = (i + 1, 0), 1
            if state.split != "done":
                self._write_example_shards(state, pieces, writer, last=True)
                state.split = "done"
                self._save(state, pieces, pending, writer)
        progress.done(state.bytes_done, state.tokens_written)

    def _partial_index(self, split):
        return self.work / f"{split}-examples.part"

    def _save(self, state, pieces, pending, writer):
        """Appends the example starts found since the last save, then saves the state naming them
        with the ids and mask not yet in a shard."""
        for split in fmt.SPLITS:
            if pending[split]:
                writer.submit(_append, self._partial_index(split), np.array(pending[split], "<u8").tobytes())
                pending[split] = []
        writer.submit(state.saver(self.work, *pieces.join()))

    def _write_example_shards(self, state, pieces, writer, last=False):
        """Writes the full shards of the `_Pieces` and their mask shards (with `last`, the rest too);
        what is left stays in `pieces`."""
        split, size = state.split, self.settings.tokens_per_shard
        ids, mask = pieces.join()
        while len(ids) >= size or (last and len(ids)):
            shard, ids = ids[:size], ids[size:]
            shard_mask, mask = mask[:size], mask[size:]
            index = state.shards[split]
            folder = self.out / fmt.SHARDS
            header = fmt.shard_header(len(shard), shard.itemsize)
            writer.submit(
                write_file,
                folder / fmt.mask_name(split, index),
                fmt.shard_header(len(shard), 1) + shard_mask.tobytes(),
            )
            writer.submit(write_file, folder / fmt.shard_name(split, index), header + shard.tobytes())
            state.shards[split] += 1
            state.tokens[split] += len(shard)
        pieces.reset(ids, mask)

    # ------------------------------------------------------------------- finish

    def _write_indexes(self, state):
        ex = state.examples
        for split in fmt.SPLITS:
            count = ex["counts"][split]
            data = self._partial_index(split).read_bytes()[: 8 * count]
            if len(data) != 8 * count:  # never: the state that says done names what was appended
                raise UserError(
                    f"{self.work}: the example index of {split} is short; delete {self.out} and rerun"
                )
            write_file(self.out / fmt.SHARDS / fmt.index_name(split), fmt.shard_header(count, 8) + data)
        state.corpus["characters"] = sum(ex["characters"].values())
        state.boundary = ex["characters"]["train"]

    def _examples_section(self, state):
        ex, s = state.examples, self.settings
        longest = max((ex["longest"][split] for split in fmt.SPLITS), key=lambda x: x["tokens"])
        if s.validation_data:
            validation = {"file": s.validation_data, "rule": "the examples of --validation_data"}
        else:
            validation = {
                "fraction": s.val_fraction,
                "first_example": ex["first_val"],
                "rule": "the last val_fraction of the examples, whole: from example int(n * (1 - fraction))",
            }
        return {
            "format": ex["format"],
            "eot_id": ex["eot_id"],
            "splits": {
                split: {
                    "examples": ex["counts"][split],
                    "characters": ex["characters"][split],
                    "loss_tokens": ex["loss_tokens"][split],
                    "longest": ex["longest"][split],
                }
                for split in fmt.SPLITS
            },
            "longest": longest,
            "validation": validation,
        }


class _Pieces:
    """The ids and loss mask not yet in a shard, as a list of pieces joined only when a shard fills
    or the state is saved: each example then costs its own length, not the tail's."""

    def __init__(self, ids, mask):
        self.reset(ids, mask)

    def reset(self, ids, mask):
        self.ids, self.mask, self.size = [ids], [mask], len(ids)

    def add(self, ids, mask):
        self.ids.append(ids)
        self.mask.append(mask)
        self.size += len(ids)

    def join(self):
        """(ids, mask), each one array."""
        if len(self.ids) > 1:
            self.ids, self.mask = [np.concatenate(self.ids)], [np.concatenate(self.mask)]
        return self.ids[0], self.mask[0]


def _append(path, data):
    with disk_guard(path), open(path, "ab") as f:
        f.write(data)


def _tokenizer_hash(path):
    path = pathlib.Path(path)
    folder = path if (path / "tokenizer.json").is_file() else path / fmt.TOKENIZER
    return fmt.tokenizer_sha256(folder)


def _versions(source):
    tfds = any(type(p).__name__ == "TfdsPart" for p in source.parts)
    return library_versions(PACKAGES + (("tensorflow-datasets",) if tfds else ()))


def _summary(manifest):
    splits, shards = manifest["splits"], manifest["shards"]
    examples = manifest.get("examples")
    counted = (
        f"{examples['splits']['train']['examples']:,} train / {examples['splits']['val']['examples']:,} val "
        f"{examples['format']} examples (longest {examples['longest']['tokens']:,} tokens, "
        f"{examples['longest']['at']}) | "
        if examples
        else ""
    )
    return counted + (
        f"{splits['train']['tokens']:,} train / {splits['val']['tokens']:,} val tokens in "
        f"{len(splits['train']['shard_tokens'])} + {len(splits['val']['shard_tokens'])} shards "
        f"({shards['dtype']}) | {manifest['tokenizer']['kind']} tokenizer, "
        f"{manifest['tokenizer']['vocab_size']:,} ids"
    )


def _short(names):
    return names[:3] + ["..."] if len(names) > 3 else names
