"""Corpus resolution and validation: a name or a path in, checked text out."""

import dataclasses
import glob
import hashlib
import os
import pathlib
import socket

from lm_keras.errors import UserError

TINY_SHAKESPEARE_FILE = "tinyshakespeare.txt"
TINY_SHAKESPEARE_URL_HOST = "raw.githubusercontent.com"  # where TFDS downloads it from
REPO_DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "data"
_BINARY_SNIFF_BYTES = 8192


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A checked text corpus.

    Attributes:
        name: short name (`tiny_shakespeare`, `python_docs`, or the file name).
        origin: where the text came from (a path, `tfds:tiny_shakespeare`, a module).
        text: the whole text.
        sha256: hex digest of the UTF-8 bytes of `text`.
    """

    name: str
    origin: str
    text: str
    sha256: str

    def split(self, val_fraction=0.1):
        """First (1 - val_fraction) of the characters train, the rest validate."""
        n = int(len(self.text) * (1.0 - val_fraction))
        return self.text[:n], self.text[n:]


def load_corpus(spec):
    """Returns the `Corpus` for a name (`tiny_shakespeare`, `python_docs`) or a path.

    A path may be a UTF-8 text file, a directory (every `*.txt` below it, sorted) or a
    glob. Raises `UserError` with one line naming the input and the fix for a missing
    path, an empty corpus, a binary file or a file that is not UTF-8.
    """
    if spec == "tiny_shakespeare":
        return _tiny_shakespeare()
    if spec == "python_docs":
        return _python_docs()
    return _from_path(spec)


def _make(name, origin, text):
    if not text.strip():
        raise UserError(f"corpus {name!r} ({origin}) is empty: give a text file with some text in it")
    return Corpus(name, origin, text, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _tiny_shakespeare():
    places = []
    if os.environ.get("LM_KERAS_DATA_DIR"):
        places.append(pathlib.Path(os.environ["LM_KERAS_DATA_DIR"]))
    places.append(REPO_DATA_DIR)
    for folder in places:
        path = folder / TINY_SHAKESPEARE_FILE
        if path.is_file():
            return _make("tiny_shakespeare", str(path), _read_text(path))
    text = _tiny_shakespeare_from_tfds()
    if text is None:
        raise UserError(
            "corpus 'tiny_shakespeare' not found in "
            + ", ".join(str(p) for p in places)
            + " and TFDS cannot download it (no network): put tinyshakespeare.txt in data/ "
            "or set LM_KERAS_DATA_DIR to its folder, or use --corpus=python_docs"
        )
    REPO_DATA_DIR.mkdir(exist_ok=True)
    cached = REPO_DATA_DIR / TINY_SHAKESPEARE_FILE
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, cached)
    return _make("tiny_shakespeare", "tfds:tiny_shakespeare", text)


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


def _python_docs():
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    return _make("python_docs", "pydoc_data.topics", text)


def _from_path(spec):
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
            f"corpus {spec!r} is not a known name (tiny_shakespeare, python_docs) "
            "nor an existing file, directory or glob: check the path"
        )
    texts = [_read_text(f) for f in files]
    text = "".join(t if t.endswith("\n") or i == len(texts) - 1 else t + "\n" for i, t in enumerate(texts))
    name = path.name if len(files) == 1 else (path.name or spec)
    return _make(name, spec, text)


def _read_text(path):
    data = pathlib.Path(path).read_bytes()
    if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        raise UserError(f"corpus file {path} looks binary (it has NUL bytes): give a UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"corpus file {path} is not UTF-8: invalid byte 0x{data[e.start]:02x} at byte offset "
            f"{e.start}; convert it, e.g. iconv -f LATIN1 -t UTF-8"
        ) from None
