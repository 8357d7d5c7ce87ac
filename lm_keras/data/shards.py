"""The prepared dataset on disk: what `python -m lm_keras.prepare` writes and training reads.

    DATA_DIR/
      manifest.json      corpus spec, its parts with sizes and sha256, the tokenizer's hash,
                         per-shard token counts, the train/validation boundary, library
                         versions; no timestamps (the same input gives the same bytes)
      tokenizer/         the tokenizer's own files
      shards/            train-000000.bin ..., val-000000.bin ...; for examples (a .jsonl
                         corpus) also train-000000.mask ... (the loss mask, uint8, one per
                         id) and train-examples.idx, val-examples.idx (each example's first
                         token in its split, uint64)

A shard is a 16-byte header (magic b"LMKT", format version uint16, bytes per token
uint16, token count uint64; little-endian), then its token ids: uint16 where the
vocabulary has at most 65,535 ids, uint32 otherwise. Every shard of a split but its last
holds exactly `tokens_per_shard` tokens, so where any token lies follows from arithmetic.
A mask shard and an example index have the same header (their own item size, 1 and 8).
A dataset of examples has manifest version 2 (an older lm_keras, which would ignore the
masks, refuses it) and an "examples" section (see `manifest`).

A dataset is complete when manifest.json exists: prepare writes it last (`manifest`
makes it; `PreparedDataset` reads it). Opening a dataset reads the manifest only, never
the shards. Readers ignore any other name in the folder (.lock, while prepare writes).
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import struct

import numpy as np

from lm_keras.errors import UserError

MANIFEST = "manifest.json"
TOKENIZER = "tokenizer"
SHARDS = "shards"
FORMAT = "lm_keras prepared dataset"
FORMAT_VERSION = 1  # of the shard header and of a text corpus's manifest
EXAMPLES_VERSION = 2  # the manifest of a dataset of examples; the newest this lm_keras reads
MAGIC = b"LMKT"
HEADER = struct.Struct("<4sHHQ")
HEADER_BYTES = HEADER.size
TOKENS_PER_SHARD = 1 << 17  # 256 KiB of uint16: a training window reads one whole shard
SPLITS = ("train", "val")
MAX_UINT16_VOCAB = 65_535


def token_dtype(vocab_size):
    """The shards' id type for a vocabulary: "uint16" up to 65,535 ids, else "uint32"."""
    return "uint16" if vocab_size <= MAX_UINT16_VOCAB else "uint32"


def shard_name(split, index):
    return f"{split}-{index:06d}.bin"


def mask_name(split, index):
    """The loss-mask shard beside `shard_name(split, index)`."""
    return f"{split}-{index:06d}.mask"


def index_name(split):
    """The example index of a split: the first token of each example."""
    return f"{split}-examples.idx"


def shard_header(count, itemsize):
    return HEADER.pack(MAGIC, FORMAT_VERSION, itemsize, count)


VALIDATION_RULE = "the first line that starts at or after (1 - fraction) of the characters"


def manifest(settings, corpus, tokenizer, shard_tokens, first_val_character, versions, examples=None):
    """The manifest.json of a dataset, as `PreparedDataset` reads it back.

    Args:
        settings: what prepare was asked for ({corpus, tokenizer, vocab_size, val_fraction,
            tokens_per_shard, tokenizer_from}); a rerun with others is another dataset.
        corpus: {spec, name, parts: [{name, bytes, sha256}], sha256, characters}.
        tokenizer: {kind, vocab_size, sha256 (see `tokenizer_sha256`), trained_on}.
        shard_tokens: {split: the token count of each of its shards}.
        first_val_character: the index of the first validation character (the boundary).
        versions: {library: version} of what wrote the dataset.
        examples: for a .jsonl corpus, the "examples" section: {format, eot_id, splits:
            {split: {examples, characters, loss_tokens, longest: {tokens, at}}}, longest:
            {tokens, at ("file:line")}, validation: how the split was cut}; its
            "validation" replaces the character rule, and each split's characters are
            those its examples encode.

    Returns:
        The manifest as a dict: no timestamps, so the same input gives the same bytes.
    """
    characters = {"train": first_val_character, "val": corpus["characters"] - first_val_character}
    validation = {
        "fraction": settings["val_fraction"],
        "first_character": first_val_character,
        "rule": VALIDATION_RULE,
    }
    if examples is not None:
        characters = {split: examples["splits"][split]["characters"] for split in SPLITS}
        validation = examples["validation"]
        examples = {k: v for k, v in examples.items() if k != "validation"}
    result = {
        "format": FORMAT,
        "version": FORMAT_VERSION if examples is None else EXAMPLES_VERSION,
        "settings": settings,
        "corpus": corpus,
        "tokenizer": tokenizer,
        "shards": {
            "dtype": token_dtype(tokenizer["vocab_size"]),
            "header_bytes": HEADER_BYTES,
            "tokens_per_shard": settings["tokens_per_shard"],
        },
        "splits": {
            split: {
                "characters": characters[split],
                "tokens": sum(shard_tokens[split]),
                "shard_tokens": list(shard_tokens[split]),
            }
            for split in SPLITS
        },
        "validation": validation,
        "versions": versions,
    }
    if examples is not None:
        result["examples"] = examples
    return result


def is_prepared(path):
    """Whether `path` is a complete prepared dataset (a folder holding manifest.json)."""
    return bool(path) and (pathlib.Path(path) / MANIFEST).is_file()


def tokenizer_sha256(directory):
    """The hash of a tokenizer's files (names and contents, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(directory).iterdir()):
        if path.is_file():
            digest.update(path.name.encode("utf-8") + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class TokenSplit:
    """The tokens of one split of a prepared dataset: where they are and how many.

    Attributes:
        name: "train" or "val".
        directory: the shards folder.
        dtype: "uint16" or "uint32".
        tokens_per_shard: the token count of every shard but the last.
        counts: the token count of each shard.
        characters: the characters the split's text holds.
        examples: the examples it holds (a .jsonl corpus), 0 for text: then mask shards
            and an example index lie beside the id shards.
        eot_id: the end-of-text id, which pads example windows (-1 for text).
    """

    name: str
    directory: str
    dtype: str
    tokens_per_shard: int
    counts: tuple
    characters: int
    examples: int = 0
    eot_id: int = -1

    @property
    def tokens(self):
        return sum(self.counts)

    @property
    def itemsize(self):
        return np.dtype(self.dtype).itemsize

    def path(self, index):
        return os.path.join(self.directory, shard_name(self.name, index))

    def mask_path(self, index):
        return os.path.join(self.directory, mask_name(self.name, index))

    def index_path(self):
        return os.path.join(self.directory, index_name(self.name))

    def read_mask(self, start, stop):
        """The loss mask [start, stop) of a split of examples, as a uint8 array (checked)."""
        stop = min(stop, self.tokens)
        parts, first = [], 0
        for index, count in enumerate(self.counts):
            lo, hi = max(start, first), min(stop, first + count)
            if lo < hi:
                path = self.mask_path(index)
                _check_file(path, count, 1)
                parts.append(np.fromfile(path, np.uint8, hi - lo, offset=HEADER_BYTES + lo - first))
            first += count
            if first >= stop:
                break
        return np.concatenate(parts) if parts else np.zeros((0,), np.uint8)

    def example_starts(self):
        """The first token of each example of the split, int64 (examples,) (checked)."""
        path = self.index_path()
        _check_file(path, self.examples, 8)
        return np.fromfile(path, "<u8", self.examples, offset=HEADER_BYTES).astype(np.int64)

    def check_shard(self, index):
        """Raises `UserError` naming the shard if it is missing, truncated or not a shard."""
        path = self.path(index)
        expected = HEADER_BYTES + self.counts[index] * self.itemsize
        try:
            with open(path, "rb") as f:
                head = f.read(HEADER_BYTES)
                size = f.seek(0, os.SEEK_END)
        except FileNotFoundError:
            raise UserError(f"shard {path} is missing: prepare the dataset again") from None
        if size != expected or head != shard_header(self.counts[index], self.itemsize):
            raise UserError(
                f"shard {path} is truncated or damaged ({size:,} bytes, expected {expected:,} with its "
                "header): prepare the dataset again"
            )
        if self.examples:
            _check_file(self.mask_path(index), self.counts[index], 1)

    def read(self, start, stop):
        """The ids [start, stop) of the split as an int32 array, read from the shards (checked)."""
        stop = min(stop, self.tokens)
        parts, first = [], 0
        for index, count in enumerate(self.counts):
            lo, hi = max(start, first), min(stop, first + count)
            if lo < hi:
                self.check_shard(index)
                offset = HEADER_BYTES + (lo - first) * self.itemsize
                parts.append(np.fromfile(self.path(index), self.dtype, hi - lo, offset=offset))
            first += count
            if first >= stop:
                break
        return np.concatenate(parts).astype(np.int32) if parts else np.zeros((0,), np.int32)


def _check_file(path, count, itemsize):
    """Raises `UserError` naming a mask shard or example index that is missing, truncated or damaged."""
    expected = HEADER_BYTES + count * itemsize
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            size = f.seek(0, os.SEEK_END)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: prepare the dataset again") from None
    if size != expected or head != shard_header(count, itemsize):
        raise UserError(
            f"{path} is truncated or damaged ({size:,} bytes, expected {expected:,} with its header): "
            "prepare the dataset again"
        )


class PreparedDataset:
    """A prepared dataset opened from its manifest (the shards are not read).

    Args:
        path: the dataset's folder.

    Attributes:
        path: `pathlib.Path` of the folder.
        manifest: the manifest as a dict.
        manifest_sha256: the hash of manifest.json, which names this dataset's content.
        train, val: the two `TokenSplit`s.

    Raises:
        UserError: the folder holds no manifest, or one this lm_keras cannot read.
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise UserError(
                f"{path} is not a prepared dataset (it holds no {MANIFEST}; an interrupted prepare "
                "leaves none): run python -m lm_keras.prepare --output_dir=... first, or rerun it"
            )
        raw = manifest_path.read_bytes()
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            manifest = json.loads(raw)
            if manifest["format"] != FORMAT:
                raise KeyError("format")
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{manifest_path} is not the manifest of a prepared dataset") from None
        if manifest.get("version", 0) > EXAMPLES_VERSION:
            raise UserError(
                f"{manifest_path} has format version {manifest['version']}, newer than this lm_keras "
                f"reads ({EXAMPLES_VERSION}); upgrade lm_keras"
            )
        self.manifest = manifest
        shards = manifest["shards"]
        examples = manifest.get("examples")
        for name in SPLITS:
            split = manifest["splits"][name]
            value = TokenSplit(
                name=name,
                directory=str(self.path / SHARDS),
                dtype=shards["dtype"],
                tokens_per_shard=shards["tokens_per_shard"],
                counts=tuple(split["shard_tokens"]),
                characters=split["characters"],
                examples=examples["splits"][name]["examples"] if examples else 0,
                eot_id=examples["eot_id"] if examples else -1,
            )
            setattr(self, name, value)

    @property
    def vocab_size(self):
        return self.manifest["tokenizer"]["vocab_size"]

    @property
    def tokenizer_dir(self):
        return self.path / TOKENIZER

    def tokenizer(self):
        from lm_keras import tokenizers

        return tokenizers.load(self.tokenizer_dir)

    @property
    def examples(self):
        """The manifest's "examples" section (a dataset of a .jsonl corpus), or None for text."""
        return self.manifest.get("examples")

    def check_ends(self):
        """Checks the first and last shard of each split (and any example index): a quick look."""
        for split in (self.train, self.val):
            for index in sorted({0, len(split.counts) - 1}):
                split.check_shard(index)
            if split.examples:
                _check_file(split.index_path(), split.examples, 8)

    def __repr__(self):
        return f"PreparedDataset({str(self.path)!r}, train={self.train.tokens:,}, val={self.val.tokens:,})"
