"""Corpora: a spec in, checked UTF-8 text out, in blocks of bounded size or whole.

A spec is `tiny_shakespeare`, `python_docs`, a UTF-8 text file, a directory (every
`*.txt` below it, sorted), a glob, or `tfds:NAME[/CONFIG][:SPLIT]` (the text feature of
a TFDS dataset). A corpus is a sequence of parts (files, a TFDS split, a module's
text); its text is the parts in order, with a newline after each part but the last
that does not end in one.

`CorpusSource.blocks()` streams the text in blocks of about `BLOCK_BYTES` that end at a
line break (or, inside a longer line, at a character boundary), so a corpus of any size
is read in constant memory; each block says where to resume after it. `load_corpus`
reads a small corpus whole.

The validation split is the text from the first line that starts at or after
(1 - val_fraction) of the characters (`validation_start`): whole lines, at a place fixed
by the text alone.
"""

import dataclasses
import glob
import hashlib
import os
import pathlib
import socket

from lm_keras.errors import UserError

TINY_SHAKESPEARE_FILE = "tinyshakespeare.txt"
TINY_SHAKESPEARE_URL_HOST = "raw.githubusercontent.com"  # where TFDS downloads it from
REPO_DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "data"  # a source checkout's data/
BLOCK_BYTES = 1 << 20  # larger blocks gain no speed, and their temporaries cost memory
TFDS_PREFIX = "tfds:"
_BINARY_SNIFF_BYTES = 8192


def cache_dir():
    """Where downloaded corpora are kept: `$LM_KERAS_DATA_DIR` if set, else the user's cache folder.

    The user's cache folder is `$XDG_CACHE_HOME/lm_keras`, by default `~/.cache/lm_keras`.
    """
    if os.environ.get("LM_KERAS_DATA_DIR"):
        return pathlib.Path(os.environ["LM_KERAS_DATA_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "lm_keras"


@dataclasses.dataclass(frozen=True)
class Block:
    """A piece of a corpus's text.

    Attributes:
        text: the text, ending at a line break unless its line goes on in the next block.
        data: its UTF-8 bytes.
        part: the index of the part it comes from (or, for an inserted newline, follows).
        next: (part index, position in that part) where reading resumes after it.
        inserted: True for the newline added between two parts, which no part holds.
    """

    text: str
    data: bytes
    part: int
    next: tuple
    inserted: bool = False


class FilePart:
    """A UTF-8 text file; positions are byte offsets."""

    def __init__(self, path, name=None):
        self.path = pathlib.Path(path)
        self.name = name or str(path)

    def size(self):
        return self.path.stat().st_size

    def fingerprint(self):
        """What changes when the file does, cheaply: (size, modification time)."""
        stat = self.path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    def last_is_newline(self):
        with open(self.path, "rb") as f:
            if not f.seek(0, os.SEEK_END):
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def read(self, position):
        """Yields (text, its UTF-8 bytes, next position) from byte `position` on."""
        with open(self.path, "rb") as f:
            if position == 0 and b"\x00" in f.read(_BINARY_SNIFF_BYTES):
                raise UserError(
                    f"corpus file {self.name} looks binary (it has NUL bytes): give a UTF-8 text file"
                )
            f.seek(position)
            carry = b""
            while True:
                # The buffer always covers [position, position + BLOCK_BYTES), so a reader that
                # resumes at a block's end cuts the same blocks as one that never stopped.
                data = f.read(BLOCK_BYTES - len(carry))
                buffer = carry + data
                if not buffer:
                    return
                if len(buffer) < BLOCK_BYTES:  # the end of the file
                    cut = len(buffer)
                else:
                    cut = buffer.rfind(b"\n") + 1 or _character_end(buffer)
                chunk, carry = buffer[:cut], buffer[cut:]
                yield _decode(chunk, self.name, position), chunk, position + cut
                position += cut


class TextPart:
    """Text held in memory (a module's documentation); positions are character offsets."""

    def __init__(self, name, text):
        self.name, self.text = name, text

    def size(self):
        return len(self.text.encode("utf-8"))

    def fingerprint(self):
        return [hashlib.sha256(self.text.encode("utf-8")).hexdigest()]

    def last_is_newline(self):
        return self.text.endswith("\n")

    def read(self, position):
        while position < len(self.text):
            end = self.text.rfind("\n", position, position + BLOCK_BYTES) + 1 or min(
                position + BLOCK_BYTES, len(self.text)
            )
            chunk = self.text[position:end]
            yield chunk, chunk.encode("utf-8"), end
            position = end


class TfdsPart:
    """The text feature of a TFDS split; positions are example indices.

    Each example is a document: a newline is added after one that does not end in one.
    """

    def __init__(self, spec, name, config, split, data_dir):
        self.spec, self.dataset, self.config, self.split = spec, name, config, split
        self.data_dir = data_dir or None
        self.name = spec
        self._builder = None

    def builder(self):
        if self._builder is None:
            import tensorflow_datasets as tfds

            full = f"{self.dataset}/{self.config}" if self.config else self.dataset
            try:
                builder = tfds.builder(full, data_dir=self.data_dir)
            except Exception as e:  # DatasetNotFoundError and its kin
                where = self.data_dir or "TFDS's data dir"
                raise UserError(
                    f"corpus {self.spec}: no TFDS dataset {full!r} ({type(e).__name__}: "
                    f"{str(e).splitlines()[0]}); build it into {where} or pass --tfds_data_dir"
                ) from None
            if not builder.is_prepared():
                try:
                    builder.download_and_prepare()
                except Exception as e:
                    raise UserError(
                        f"corpus {self.spec}: TFDS could not download and prepare {full!r} "
                        f"({type(e).__name__}: {str(e).splitlines()[0]}); prepare it where the "
                        "network allows and pass --tfds_data_dir"
                    ) from None
            if self.split not in builder.info.splits:
                raise UserError(
                    f"corpus {self.spec}: TFDS dataset {full!r} has no split {self.split!r}; it has "
                    f"{', '.join(sorted(builder.info.splits))}"
                )
            self._builder = builder
        return self._builder

    def feature(self):
        """The name of the text feature: `text`, or the dataset's only string feature."""
        import tensorflow as tf

        features = self.builder().info.features
        strings = [k for k, f in features.items() if getattr(f, "dtype", None) == tf.string and not f.shape]
        if "text" in strings:
            return "text"
        if len(strings) == 1:
            return strings[0]
        raise UserError(
            f"corpus {self.spec}: cannot tell which feature holds the text (string features: "
            f"{strings or 'none'}; all: {sorted(features)}); name one `text`"
        )

    def size(self):
        return self.builder().info.splits[self.split].num_bytes or None

    def fingerprint(self):
        info = self.builder().info
        return [str(info.version), info.splits[self.split].num_examples, info.splits[self.split].num_bytes]

    def last_is_newline(self):
        return True  # every example ends in a newline

    def read(self, position):
        import tensorflow_datasets as tfds

        feature = self.feature()
        split = f"{self.split}[{position}:]" if position else self.split
        dataset = self.builder().as_dataset(split=split, shuffle_files=False)
        texts, size = [], 0
        for example in tfds.as_numpy(dataset):
            data = example[feature]
            text = _decode(data, f"{self.spec} example {position}", 0)
            position += 1
            texts.append(text if text.endswith("\n") else text + "\n")
            size += len(data)
            if size >= BLOCK_BYTES:
                text = "".join(texts)
                yield text, text.encode("utf-8"), position
                texts, size = [], 0
        if texts:
            text = "".join(texts)
            yield text, text.encode("utf-8"), position


@dataclasses.dataclass(frozen=True)
class CorpusSource:
    """A resolved corpus spec: its name and its parts, read in blocks.

    Attributes:
        spec: the spec as given.
        name: short name (`tiny_shakespeare`, `python_docs`, the file or folder name).
        parts: `FilePart`, `TextPart` or `TfdsPart` objects, in order.
    """

    spec: str
    name: str
    parts: tuple

    def blocks(self, start=(0, 0)):
        """Yields the text as `Block`s from `start` = (part index, position in it) on."""
        first, position = start
        for i in range(first, len(self.parts)):
            part = self.parts[i]
            last = None
            for text, data, after in part.read(position if i == first else 0):
                last = text[-1:] or last
                yield Block(text, data, i, (i, after))
            if i + 1 < len(self.parts):
                ends_with_newline = last == "\n" if last is not None else part.last_is_newline()
                if not ends_with_newline:
                    yield Block("\n", b"\n", i, (i + 1, 0), inserted=True)

    def size(self):
        """Bytes of input, or None where a part cannot say before it is read."""
        sizes = [p.size() for p in self.parts]
        return None if None in sizes else sum(sizes)


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A checked text corpus held in memory (for corpora that fit; training streams instead).

    Attributes:
        name: short name (`tiny_shakespeare`, `python_docs`, or the file name).
        origin: where the text came from (a path, a spec, a module).
        text: the whole text.
        sha256: hex digest of the UTF-8 bytes of `text`.
    """

    name: str
    origin: str
    text: str
    sha256: str

    def split(self, val_fraction=0.1):
        """(training text, validation text), cut where `validation_start` says."""
        n = validation_start([self.text], len(self.text), val_fraction)
        return self.text[:n], self.text[n:]


def validation_start(texts, total_chars, val_fraction, seen=0):
    """The index of the first validation character of a text given as consecutive pieces.

    It is the start of the first line at or after character int(total_chars * (1 -
    val_fraction)), or that character itself when no line starts between it and the end.

    Args:
        texts: the text's pieces in order (strings), from character `seen` on; they must
            start at or before the character just before the cut.
        total_chars: the text's length in characters.
        val_fraction: the share of the characters that validates.
        seen: the index of the first character of `texts`.
    """
    target = int(total_chars * (1.0 - val_fraction))
    if target == 0:
        return 0
    for text in texts:
        if seen + len(text) >= target:  # holds character target - 1 or a later one
            newline = text.find("\n", max(target - 1 - seen, 0))
            if newline >= 0:
                start = seen + newline + 1
                return start if start < total_chars else target
        seen += len(text)
    return target


def resolve(spec, tfds_data_dir=""):
    """Returns the `CorpusSource` of a spec, without reading its text.

    Raises `UserError` with one line naming the input and the fix for a missing path, an
    empty folder, a glob that matches nothing or a TFDS dataset that is not there.
    """
    if spec == "tiny_shakespeare":
        return CorpusSource(spec, spec, (FilePart(_tiny_shakespeare_file(), TINY_SHAKESPEARE_FILE),))
    if spec == "python_docs":
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[key] for key in sorted(topics))
        return CorpusSource(spec, spec, (TextPart("pydoc_data.topics", text),))
    if spec.startswith(TFDS_PREFIX):
        rest = spec[len(TFDS_PREFIX) :]
        dataset, _, split = rest.partition(":")
        name, _, config = dataset.partition("/")
        if not name:
            raise UserError(f"corpus {spec!r}: give tfds:NAME[/CONFIG][:SPLIT], e.g. tfds:tiny_shakespeare")
        part = TfdsPart(spec, name, config, split or "train", tfds_data_dir)
        part.builder()  # fails now, in one line, if the dataset is not there
        return CorpusSource(spec, name, (part,))
    path = pathlib.Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise UserError(f"corpus directory {spec} holds no .txt files: put UTF-8 text files in it")
    elif path.is_file():
        files = [path]
    elif glob.has_magic(spec):
        files = sorted(pathlib.Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        if not files:
            raise UserError(f"corpus glob {spec!r} matches no files: check the pattern")
    else:
        raise UserError(
            f"corpus {spec!r} is not a known name (tiny_shakespeare, python_docs) nor an existing "
            f"file, directory or glob (nor {TFDS_PREFIX}NAME): check the path"
        )
    name = path.name if len(files) == 1 else (path.name or spec)
    return CorpusSource(spec, name, tuple(FilePart(f) for f in files))


def load_corpus(spec, tfds_data_dir=""):
    """Returns the whole `Corpus` of a spec (see `resolve`), read into memory.

    Raises `UserError` with one line naming the input and the fix for the cases of
    `resolve`, an empty corpus, a binary file or a file that is not UTF-8.
    """
    source = resolve(spec, tfds_data_dir)
    text = "".join(block.text for block in source.blocks())
    if not text.strip():
        raise UserError(f"corpus {source.name!r} ({spec}) is empty: give a text file with some text in it")
    parts = source.parts
    origin = str(parts[0].path) if len(parts) == 1 and isinstance(parts[0], FilePart) else parts[0].name
    if len(parts) > 1:
        origin = spec
    return Corpus(source.name, origin, text, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _tiny_shakespeare_file():
    """The path of tinyshakespeare.txt: found locally, or downloaded through TFDS into `cache_dir()`."""
    places = list(dict.fromkeys([cache_dir(), REPO_DATA_DIR]))
    for folder in places:
        path = folder / TINY_SHAKESPEARE_FILE
        if path.is_file():
            return path
    text = _tiny_shakespeare_from_tfds()
    if text is None:
        raise UserError(
            "corpus 'tiny_shakespeare' not found in "
            + ", ".join(str(p) for p in places)
            + " and TFDS cannot download it (no network): put tinyshakespeare.txt in one of these "
            "folders (or set LM_KERAS_DATA_DIR to the folder that holds it), or use --corpus=python_docs"
        )
    from lm_keras.files import write_text_atomic

    cached = cache_dir() / TINY_SHAKESPEARE_FILE
    write_text_atomic(cached, text)
    return cached


def _tiny_shakespeare_from_tfds():
    """The text through TFDS, or None within seconds when the network is not there."""
    try:
        socket.create_connection((TINY_SHAKESPEARE_URL_HOST, 443), timeout=3).close()
    except OSError:
        return None
    import tensorflow_datasets as tfds

    parts = []
    for split in ("train", "validation", "test"):
        for example in tfds.as_numpy(tfds.load("tiny_shakespeare", split=split)):
            parts.append(example["text"].decode("utf-8"))
    return "".join(parts)


def _character_end(data):
    """The length of the longest prefix of `data` that ends at a UTF-8 character boundary."""
    lead = len(data) - 1
    while lead > 0 and len(data) - lead < 4 and data[lead] & 0xC0 == 0x80:
        lead -= 1
    first = data[lead]
    length = 1 if first < 0x80 else 2 if first >> 5 == 0b110 else 3 if first >> 4 == 0b1110 else 4
    return len(data) if lead + length <= len(data) else lead or len(data)


def _decode(data, name, offset):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"corpus file {name} is not UTF-8: invalid byte 0x{data[e.start]:02x} at byte offset "
            f"{offset + e.start}; convert it, e.g. iconv -f LATIN1 -t UTF-8"
        ) from None
