"""GPT-2's byte-level BPE tokenizer (kind "gpt2_bpe"): vocab.json and merges.txt, lossless on any text."""

import json

import numpy as np

from lm_keras.errors import UserError
from lm_keras.tokenizers import tokenizer as tokenizer_lib

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
# The first line of GPT-2's merges.txt, which readers skip.
MERGES_HEADER = "#version: 0.2"
END_OF_TEXT = tokenizer_lib.END_OF_TEXT
INSTALL_HINT = "pip install 'lm_keras[gpt2]'"


def bytes_to_unicode():
    """GPT-2's map of the 256 byte values to printable characters (its encoder.py).

    Printable Latin-1 bytes stand for themselves; the others (control characters,
    space, ...) move to U+0100 and up, so every token is a string of visible
    characters ("Ġ" is a space).
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {b: chr(b) for b in printable}
    moved = [b for b in range(256) if b not in chars]
    chars.update({b: chr(256 + i) for i, b in enumerate(moved)})
    return chars


BYTE_CHARS = bytes_to_unicode()
_CHAR_BYTES = {c: b for b, c in BYTE_CHARS.items()}


class ByteLevelBPETokenizer(tokenizer_lib.Tokenizer):
    """GPT-2's tokenizer: byte-level BPE over the words of GPT-2's pre-tokenizer regex.

    Text is cut into words by GPT-2's regex, each word's UTF-8 bytes become the
    characters of `bytes_to_unicode`, and merges apply by rank. Every byte is a
    token, so `decode(encode(s)) == s` for any str s without lone surrogates.
    Encoding and decoding run Hugging Face `tokenizers` (the implementation that
    `transformers` uses for GPT-2); `in_graph()` gives the same ids with stock
    TensorFlow ops.

    The end-of-text id is the id of the token "<|endoftext|>" (GPT-2's 50256, and the
    last id of a trained one), whatever tokenizer.json says. The text "<|endoftext|>"
    is ordinary text here: it encodes to its characters (GPT-2's pre-tokenizer cuts
    it into "<|", "endoftext", "|>", so no merge can make the token), and the id
    decodes to "".

    Args:
        vocab: dict token -> id, ids 0 .. n - 1 (GPT-2's vocab.json).
        merges: list of (left, right) token pairs in rank order (GPT-2's merges.txt).

    Example:

    >>> tok = ByteLevelBPETokenizer.train(text, vocab_size=1024)
    >>> tok.decode(tok.encode("To be, or not to be 🙂")) == "To be, or not to be 🙂"
    True
    """

    kind = "gpt2_bpe"

    def __init__(self, vocab, merges):
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        ids = sorted(self.vocab.values())
        if ids != list(range(len(ids))):
            raise UserError(
                f"{VOCAB_FILE} must give the ids 0 .. {len(ids) - 1} once each; received "
                f"{len(ids)} tokens with ids from {ids[0] if ids else None} to {ids[-1] if ids else None}"
            )
        missing = sorted(b for b, c in BYTE_CHARS.items() if c not in self.vocab)
        if missing:
            raise UserError(
                f"{VOCAB_FILE} lacks the token of byte 0x{missing[0]:02X} ({BYTE_CHARS[missing[0]]!r}) and "
                f"{len(missing) - 1} more: it is not a byte-level BPE vocabulary like GPT-2's"
            )
        foreign = next((t for t in self.vocab if any(c not in _CHAR_BYTES for c in t)), None)
        if foreign is not None:
            raise UserError(
                f"{VOCAB_FILE} holds the token {foreign!r}, which is not spelled in GPT-2's byte "
                "alphabet: only byte-level BPE vocabularies like GPT-2's are supported"
            )
        for rank, (left, right) in enumerate(self.merges):
            for part in (left, right, left + right):
                if part not in self.vocab:
                    raise UserError(
                        f"{MERGES_FILE} line {rank + 1} merges {left!r} and {right!r}, but {part!r} is not "
                        f"in {VOCAB_FILE}: the two files are from different tokenizers"
                    )
        self.id_to_token = [None] * len(self.vocab)
        for token, token_id in self.vocab.items():
            self.id_to_token[token_id] = token
        self._tokenizer = _hf_tokenizer(self.vocab, self.merges)

    @property
    def vocab_size(self):
        return len(self.vocab)

    @property
    def eot_id(self):
        """The id of "<|endoftext|>", or None if the vocabulary has no such token."""
        return self.vocab.get(END_OF_TEXT)

    @property
    def end_of_text_id(self):
        """The same as `eot_id` (the conversion code's name for it)."""
        return self.eot_id

    def with_end_of_text(self):
        """Returns this tokenizer with "<|endoftext|>" as its last id; itself if its vocabulary has it."""
        if self.eot_id is not None:
            return self
        return ByteLevelBPETokenizer({**self.vocab, END_OF_TEXT: len(self.vocab)}, self.merges)

    @classmethod
    def train(cls, text, vocab_size):
        """Trains merges on `text` with Hugging Face `tokenizers`' BPE trainer.

        The vocabulary is GPT-2's layout: the 256 byte tokens, the merged tokens,
        and "<|endoftext|>" last.

        Args:
            text: str, the training split.
            vocab_size: int, the number of ids, bytes and "<|endoftext|>" included
                (at least 257).

        Returns:
            A `ByteLevelBPETokenizer`.
        """
        tokenizers = _import_tokenizers()
        if not isinstance(text, str) or not text:
            raise UserError(
                "text must be a non-empty str (the training split); received "
                f"{type(text).__name__} {text!r:.40}"
            )
        if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool) or vocab_size < 257:
            raise UserError(
                f"vocab_size must be an int >= 257 for a gpt2_bpe tokenizer (256 bytes and "
                f"{END_OF_TEXT}); received vocab_size={vocab_size!r} (try vocab_size=1024)"
            )
        tokenizer_lib.check_unicode(text)
        model = tokenizers.Tokenizer(tokenizers.models.BPE())
        model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = tokenizers.trainers.BpeTrainer(
            vocab_size=int(vocab_size) - 1,
            initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        model.train_from_iterator(_lines(text), trainer=trainer, length=None)
        state = json.loads(model.to_str())["model"]
        vocab = dict(state["vocab"])
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
        if len(vocab) + 1 < vocab_size:
            raise UserError(
                f"vocab_size={vocab_size} is too large for a gpt2_bpe tokenizer of this text: the largest "
                f"size it supports is {len(vocab) + 1}; pass a smaller vocab_size or more text"
            )
        vocab[END_OF_TEXT] = len(vocab)
        return cls(vocab, merges)

    @classmethod
    def from_files(cls, vocab_path, merges_path):
        """Reads GPT-2's `vocab.json` and `merges.txt` (local paths or gs:// URLs)."""
        for path in (vocab_path, merges_path):
            if not tokenizer_lib.exists(path):
                raise UserError(
                    f"{path} does not exist: a gpt2_bpe tokenizer needs {VOCAB_FILE} and {MERGES_FILE}"
                )
        with tokenizer_lib.open_file(vocab_path, "r") as f:
            try:
                vocab = json.loads(f.read())
            except json.JSONDecodeError as e:
                raise UserError(f"{vocab_path} is not valid JSON ({e}); copy the file again") from None
        if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
            raise UserError(f"{vocab_path} must hold one JSON object of token -> integer id")
        with tokenizer_lib.open_file(merges_path, "r") as f:
            lines = f.read().split("\n")
        merges = []
        for number, line in enumerate(lines, start=1):
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise UserError(
                    f"{merges_path} line {number} is {line!r}; each line must be two tokens separated "
                    "by one space"
                )
            merges.append(tuple(parts))
        return cls(vocab, merges)

    def encode(self, text):
        """Returns the ids of `text` (any str without lone surrogates) as int32, shape (n,)."""
        self._check_text(text)
        tokenizer_lib.check_unicode(text)
        return np.asarray(self._tokenizer.encode(text).ids, np.int32)

    def decode(self, ids):
        """Returns the text of `ids`; bytes that spell no valid UTF-8 give U+FFFD, the end-of-text id ""."""
        ids = self._without_end_of_text(self._as_ids(ids))
        return self._tokenizer.decode(ids.tolist(), skip_special_tokens=False)

    def token_bytes(self, token_id):
        """The bytes that token `token_id` stands for."""
        return bytes(_CHAR_BYTES[c] for c in self.id_to_token[self._check_id(token_id)])

    def id_to_piece(self, token_id):
        """Returns the text of `token_id`; a token that is not whole UTF-8 shows its bytes ('<0xE2>')."""
        if self._check_id(token_id) == self.eot_id:
            return END_OF_TEXT
        data = self.token_bytes(token_id)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<0x{b:02X}>" for b in data)

    def in_graph(self):
        """Returns a `ByteLevelBPETokenizerGraph` (see `Tokenizer.in_graph`)."""
        from lm_keras.tokenizers.byte_level_bpe_tokenizer_graph import ByteLevelBPETokenizerGraph

        return ByteLevelBPETokenizerGraph(self.vocab, self.merges, eot_id=self.eot_id)

    def save_files(self, directory):
        """Writes GPT-2's `vocab.json` and `merges.txt` into `directory`."""
        tokenizer_lib.make_dirs(directory)
        with tokenizer_lib.open_file(tokenizer_lib.join(directory, VOCAB_FILE), "w") as f:
            f.write(json.dumps(self.vocab, ensure_ascii=False) + "\n")
        with tokenizer_lib.open_file(tokenizer_lib.join(directory, MERGES_FILE), "w") as f:
            f.write("".join(f"{line}\n" for line in [MERGES_HEADER, *(f"{a} {b}" for a, b in self.merges)]))

    def save(self, directory):
        """Writes `vocab.json`, `merges.txt` and `tokenizer.json` into `directory`."""
        self.save_files(directory)
        tokenizer_lib.write_config(
            directory,
            {
                "kind": self.kind,
                "vocab_size": self.vocab_size,
                "vocab_file": VOCAB_FILE,
                "merges_file": MERGES_FILE,
                "tokenizers_version": _import_tokenizers().__version__,
                **self._end_of_text_config(),
            },
        )

    @classmethod
    def from_config(cls, config, directory):
        """Returns the tokenizer that `save` wrote; `config` is its tokenizer.json.

        Its eot_id is the id of "<|endoftext|>" in vocab.json, also for a
        tokenizer.json written before lm_keras recorded it.
        """
        tok = cls.from_files(
            tokenizer_lib.join(directory, config.get("vocab_file", VOCAB_FILE)),
            tokenizer_lib.join(directory, config.get("merges_file", MERGES_FILE)),
        )
        if "eot_id" in config:
            tokenizer_lib.eot_id_from_config(config, tok.eot_id, directory)
        if tok.vocab_size != config["vocab_size"]:
            raise UserError(
                f"{directory}/{VOCAB_FILE} has {tok.vocab_size} tokens but tokenizer.json says "
                f"vocab_size={config['vocab_size']}; the files are from different tokenizers, save it again"
            )
        return tok


def _import_tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise UserError(
            f"the gpt2_bpe tokenizer needs Hugging Face's tokenizers package: {INSTALL_HINT}"
        ) from None
    return tokenizers


def _hf_tokenizer(vocab, merges):
    """A `tokenizers.Tokenizer` that is GPT-2's (transformers' GPT2TokenizerFast, no special tokens)."""
    tokenizers = _import_tokenizers()
    model = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=merges))
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    model.decoder = tokenizers.decoders.ByteLevel()
    return model


def _lines(text, size=1 << 20):
    """`text` in pieces of about `size` characters cut after newlines, for the trainer."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end
