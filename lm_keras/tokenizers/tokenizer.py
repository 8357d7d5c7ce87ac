"""The interface every tokenizer implements, and the files they share."""

import json
import os

import numpy as np

from lm_keras import chat_template
from lm_keras.errors import UserError

# The format of `tokenizer.json`; `load` refuses files written by a newer format.
FORMAT_VERSION = 1
CONFIG_FILE = "tokenizer.json"
# The name shown for the end-of-text id (GPT-2's token). Text never encodes to that id,
# this string included: it is ordinary text to every tokenizer.
END_OF_TEXT = "<|endoftext|>"


class Tokenizer:
    """Turns text into int32 token ids and back, in Python and inside the TF graph.

    Subclasses: `CharTokenizer` (kind "char"), `SentencePieceTokenizer`
    (kinds "bpe" and "unigram") and `ByteLevelBPETokenizer` (kind "gpt2_bpe").
    Build one with `lm_keras.tokenizers.train` and reload a saved one with
    `lm_keras.tokenizers.load`.

    Attributes:
        kind: "char", "bpe", "unigram" or "gpt2_bpe".
        vocab_size: the number of ids; every id is in `[0, vocab_size)`, the
            end-of-text id included: it is the number of rows a model's embedding needs.
        eot_id: the end-of-text id (an int), or None for a tokenizer saved before
            lm_keras had one (`with_end_of_text()` adds it). `encode` never gives it,
            not even for the text "<|endoftext|>"; `decode` drops it. It ends each
            document and chat message, so a model learns to emit it where text ends.

    Example:

    >>> tok = lm_keras.tokenizers.train("char", "hello world")
    >>> tok.decode(tok.encode("hello")) == "hello"
    True
    """

    kind = None

    @property
    def vocab_size(self):
        raise NotImplementedError

    @property
    def eot_id(self):
        raise NotImplementedError

    @property
    def chat_template(self):
        """The chat template's record (`lm_keras.chat_template.record()`), or None without an eot_id."""
        return None if self.eot_id is None else chat_template.record()

    def with_end_of_text(self):
        """Returns this tokenizer with an end-of-text id; itself if it has one.

        For "char", "bpe" and "unigram" the id is appended after the tokenizer's own
        ids (eot_id = the old vocab_size), so every other id keeps its meaning and a
        model trained without it needs one more embedding row. `save` records it.
        """
        raise NotImplementedError

    def encode(self, text):
        """Returns the ids of `text` (a str) as an int32 array of shape (n,)."""
        raise NotImplementedError

    def decode(self, ids):
        """Returns the text of `ids` (a list, NumPy array or eager tensor of ints, shape (n,))."""
        raise NotImplementedError

    def id_to_piece(self, token_id):
        """Returns the text of one token, for labels on plots."""
        raise NotImplementedError

    def in_graph(self):
        """Returns a `tf.Module` with `tokenize` and `detokenize` tf.functions.

        `tokenize(strings)` maps tf.string (B,) to a tf.RaggedTensor of int32 ids
        (B, None), the same ids as `encode`; invalid UTF-8 raises
        `tf.errors.InvalidArgumentError`. `detokenize(ids)` maps a RaggedTensor
        or dense int32/int64 tensor (B, N) to tf.string (B,), the same text as
        `decode`. The module saves with `tf.saved_model.save` and needs only
        stock TensorFlow ops (plus tensorflow_text's for SentencePiece).
        """
        raise NotImplementedError

    def save(self, directory):
        """Writes this tokenizer's files, `tokenizer.json` among them, into `directory`."""
        raise NotImplementedError

    def __repr__(self):
        name = type(self).__name__
        return f"{name}(kind={self.kind!r}, vocab_size={self.vocab_size}, eot_id={self.eot_id})"

    # Helpers shared by the subclasses.

    def _end_of_text_config(self):
        """The tokenizer.json entries of the end-of-text id and the chat template (none without it)."""
        if self.eot_id is None:
            return {}
        return {"eot_id": self.eot_id, "chat_template": self.chat_template}

    def _without_end_of_text(self, ids):
        """`ids` (int64 (n,), checked by `_as_ids`) without the end-of-text id."""
        return ids if self.eot_id is None else ids[ids != self.eot_id]

    def _check_text(self, text):
        if not isinstance(text, str):
            raise TypeError(
                f"{type(self).__name__}.encode takes a str; received {type(text).__name__} "
                "(decode bytes first, e.g. data.decode('utf-8'))"
            )

    def _as_ids(self, ids):
        """`ids` as an int64 NumPy array of shape (n,), every id checked against the vocabulary."""
        array = np.asarray(ids)
        if array.size == 0:
            return np.zeros((0,), np.int64)
        if array.ndim != 1:
            raise UserError(
                f"{type(self).__name__}.decode takes one sequence of ids, shape (n,); received "
                f"shape {array.shape} (decode each row separately)"
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise UserError(f"{type(self).__name__}.decode takes integer ids; received dtype {array.dtype}")
        array = array.astype(np.int64)
        bad = np.flatnonzero((array < 0) | (array >= self.vocab_size))
        if bad.size:
            raise UserError(
                f"ids must be in [0, {self.vocab_size}) for this {self.kind} tokenizer; received "
                f"id {array[bad[0]]} at position {bad[0]} (was the model trained with another "
                "tokenizer?)"
            )
        return array

    def _check_id(self, token_id):
        if not 0 <= int(token_id) < self.vocab_size:
            raise UserError(
                f"token_id must be in [0, {self.vocab_size}) for this {self.kind} tokenizer; "
                f"received token_id={token_id}"
            )
        return int(token_id)


def check_unicode(text):
    """Raises UserError if `text` (a str) has a lone surrogate, which UTF-8 cannot hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(
            f"text is not valid Unicode: {e.reason} {text[e.start]!r} at position {e.start}; "
            "remove lone surrogates (e.g. text.encode('utf-8', 'replace').decode('utf-8'))"
        ) from None


def write_config(directory, config):
    """Writes `config` (a dict with kind and vocab_size) as `directory/tokenizer.json`."""
    make_dirs(directory)
    config = {"kind": config["kind"], "vocab_size": config["vocab_size"], "version": FORMAT_VERSION, **config}
    with open_file(join(directory, CONFIG_FILE), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_config(directory):
    """Reads `directory/tokenizer.json`, checking that this library can read its format and chat template."""
    path = join(directory, CONFIG_FILE)
    if not exists(path):
        raise UserError(
            f"no tokenizer in {directory}: {path} does not exist (pass the folder that "
            "tok.save() wrote, e.g. MODEL_DIR/tokenizer)"
        )
    with open_file(path, "r") as f:
        try:
            config = json.loads(f.read())
        except json.JSONDecodeError as e:
            raise UserError(f"{path} is not valid JSON ({e}); save the tokenizer again") from None
    version = config.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{path} has format version {version!r}, which this lm_keras cannot read (it reads "
            f"versions up to {FORMAT_VERSION}); upgrade lm_keras"
        )
    if "chat_template" in config:
        chat_template.check_record(config["chat_template"], path)
    return config


def eot_id_from_config(config, expected, directory):
    """The eot_id that `config` (a tokenizer.json) records: None if it has none, else `expected`.

    Raises:
        UserError: the file records an id other than `expected`, the id the
            tokenizer's own files give it.
    """
    recorded = config.get("eot_id")
    if recorded is None:
        return None
    if recorded != expected:
        raise UserError(
            f"{join(directory, CONFIG_FILE)} says eot_id={recorded!r}, but this {config.get('kind')} "
            f"tokenizer's end-of-text id is {expected}; the file is damaged, save the tokenizer again"
        )
    return expected


# File access: local paths with the standard library; URLs such as gs://bucket/dir with
# tf.io.gfile, so that model directories on cloud storage work without TensorFlow
# loading for local ones.


def _is_url(path):
    return "://" in str(path)


def join(directory, name):
    if _is_url(directory):
        return f"{str(directory).rstrip('/')}/{name}"
    return os.path.join(directory, name)


def exists(path):
    if _is_url(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def make_dirs(directory):
    if _is_url(directory):
        import tensorflow as tf

        tf.io.gfile.makedirs(directory)
    else:
        os.makedirs(directory, exist_ok=True)


def open_file(path, mode):
    if _is_url(path):
        import tensorflow as tf

        return tf.io.gfile.GFile(path, mode)
    if "b" in mode:
        return open(path, mode)
    return open(path, mode, encoding="utf-8", newline="")
