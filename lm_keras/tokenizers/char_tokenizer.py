"""Character tokenizer: one id per Unicode character of the training text."""

import numpy as np

from lm_keras.errors import UserError
from lm_keras.tokenizers import tokenizer as tokenizer_lib

REPLACEMENT_CHARACTER = "\ufffd"
# Lone surrogates (U+D800..U+DFFF) are not characters: UTF-8 cannot hold them, so the
# vocabulary never does and they encode as the unknown id.
_SURROGATES = range(0xD800, 0xE000)


class CharTokenizer(tokenizer_lib.Tokenizer):
    """One id per character of the training text, id 0 for every other character, and an end-of-text id.

    Ids 1..n are the n distinct characters of the training text in code point
    order; id 0 is the unknown id, which every character not in the vocabulary
    encodes to and which decodes to U+FFFD; id n + 1 is the end-of-text id, which
    no text encodes to and which decodes to "". Text made only of vocabulary
    characters round-trips exactly: `decode(encode(s)) == s`.

    Args:
        characters: str, the vocabulary in id order (ids 1..n), each character once.
        end_of_text: whether id n + 1 is the end-of-text id (`train` gives it; a
            tokenizer saved before lm_keras had one loads without it).

    Example:

    >>> tok = CharTokenizer.train("hello world")
    >>> tok.vocab_size  # 8 distinct characters + the unknown id + the end-of-text id
    10
    >>> tok.encode("hold!").tolist()  # "!" was never seen
    [4, 6, 5, 2, 0]
    >>> tok.decode([4, 6, 5, 2, 0, tok.eot_id]) == "hold\N{REPLACEMENT CHARACTER}"
    True
    """

    kind = "char"
    UNKNOWN_ID = 0

    def __init__(self, characters, end_of_text=False):
        if not isinstance(characters, str) or not characters:
            raise UserError(
                "characters must be a non-empty str (the vocabulary in id order); received "
                f"{characters!r:.80}"
            )
        if len(set(characters)) != len(characters):
            raise UserError("characters must hold each character once; received duplicates")
        bad = [c for c in characters if ord(c) in _SURROGATES]
        if bad:
            raise UserError(
                f"characters must be Unicode scalar values; received the lone surrogate {bad[0]!r}"
            )
        self.characters = characters
        self._eot_id = len(characters) + 1 if end_of_text else None
        codepoints = np.array([ord(c) for c in characters], np.int64)
        # id -> code point, id 0 being U+FFFD.
        self._id_to_codepoint = np.concatenate([[ord(REPLACEMENT_CHARACTER)], codepoints]).astype(np.uint32)
        # code point -> id, for every code point up to the largest in the vocabulary; larger
        # ones are unknown.
        self._codepoint_to_id = np.zeros((int(codepoints.max()) + 1,), np.int32)
        self._codepoint_to_id[codepoints] = np.arange(1, len(characters) + 1, dtype=np.int32)
        # ASCII text maps byte to id with bytes.translate: ASCII characters come first in code
        # point order, so their ids (at most 128) fit in a byte.
        self._ascii_to_id = bytes(
            int(self._codepoint_to_id[c]) if c < len(self._codepoint_to_id) else 0 for c in range(128)
        ) + bytes(128)

    @classmethod
    def train(cls, text, vocab_size=None):
        """Returns the tokenizer of the distinct characters of `text`, with an end-of-text id.

        Args:
            text: str, the training split.
            vocab_size: None or 0 for what the text gives: its distinct characters
                + the unknown id + the end-of-text id (so 67 for tiny Shakespeare's 65
                characters); any other value must equal that number.

        Returns:
            A `CharTokenizer`.
        """
        if not isinstance(text, str) or not text:
            raise UserError(
                "text must be a non-empty str (the training split); received "
                f"{type(text).__name__} of length {len(text) if hasattr(text, '__len__') else '?'}"
            )
        characters = "".join(sorted(c for c in set(text) if ord(c) not in _SURROGATES))
        if not characters:
            raise UserError("text holds no characters other than lone surrogates; pass real text")
        size = len(characters) + 2
        if vocab_size and vocab_size != size:
            limit = "largest" if vocab_size > size else "smallest"
            raise UserError(
                f"vocab_size={vocab_size} does not fit a char tokenizer of this text: the {limit} "
                f"size it supports is {size} ({len(characters)} distinct characters + the unknown "
                "id + the end-of-text id); pass vocab_size=None (or 0) to use it"
            )
        return cls(characters, end_of_text=True)

    @property
    def vocab_size(self):
        return len(self.characters) + 1 + (self._eot_id is not None)

    @property
    def eot_id(self):
        return self._eot_id

    def with_end_of_text(self):
        """Returns this tokenizer with the end-of-text id len(characters) + 1; itself if it has it."""
        return self if self._eot_id is not None else CharTokenizer(self.characters, end_of_text=True)

    @property
    def unknown_id(self):
        return self.UNKNOWN_ID

    def encode(self, text):
        """Returns the ids of `text` as an int32 array of shape (len(text),).

        Characters outside the vocabulary encode to the unknown id 0.
        """
        self._check_text(text)
        if text.isascii():
            ids = text.encode("ascii").translate(self._ascii_to_id)
            return np.frombuffer(ids, np.uint8).astype(np.int32)
        # "surrogatepass" lets a lone surrogate through as its code point; it is not in the
        # vocabulary, so it becomes the unknown id like any unseen character.
        codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.dtype("<u4"))
        table = self._codepoint_to_id
        known = codepoints < len(table)
        return np.where(known, table[np.where(known, codepoints, 0)], self.UNKNOWN_ID).astype(np.int32)

    def decode(self, ids):
        """Returns the text of `ids`; the unknown id 0 decodes to U+FFFD, the end-of-text id to ""."""
        ids = self._without_end_of_text(self._as_ids(ids))
        return self._id_to_codepoint[ids].astype("<u4").tobytes().decode("utf-32-le")

    def id_to_piece(self, token_id):
        """Returns the character of `token_id` (U+FFFD for the unknown id 0, "<|endoftext|>" for eot_id)."""
        token_id = self._check_id(token_id)
        if token_id == self._eot_id:
            return tokenizer_lib.END_OF_TEXT
        return chr(self._id_to_codepoint[token_id])

    def in_graph(self):
        """Returns a `CharTokenizerGraph` (see `Tokenizer.in_graph`)."""
        from lm_keras.tokenizers.char_tokenizer_graph import CharTokenizerGraph

        return CharTokenizerGraph(self.characters, eot_id=self._eot_id)

    def save(self, directory):
        """Writes `tokenizer.json` (kind, vocab_size, version, the characters, eot_id) into `directory`."""
        tokenizer_lib.write_config(
            directory,
            {
                "kind": self.kind,
                "vocab_size": self.vocab_size,
                "unknown_id": self.UNKNOWN_ID,
                "characters": self.characters,
                **self._end_of_text_config(),
            },
        )

    @classmethod
    def from_config(cls, config, directory):
        """Returns the tokenizer that `save` wrote; `config` is its tokenizer.json.

        A tokenizer.json without "eot_id" (written before lm_keras had one) gives a
        tokenizer whose eot_id is None.
        """
        characters = config["characters"]
        eot_id = tokenizer_lib.eot_id_from_config(config, len(characters) + 1, directory)
        tok = cls(characters, end_of_text=eot_id is not None)
        if tok.vocab_size != config["vocab_size"]:
            eot = " +1 end-of-text id" if eot_id is not None else ""
            raise UserError(
                f"{directory}/tokenizer.json says vocab_size={config['vocab_size']} but holds "
                f"{len(tok.characters)} characters (+1 unknown id{eot}); the file is damaged, save the "
                "tokenizer again"
            )
        return tok
