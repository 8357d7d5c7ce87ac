"""SentencePiece tokenizer (BPE or unigram), lossless for any Unicode text."""

import io
import itertools
import re

import numpy as np

from lm_keras.errors import UserError
from lm_keras.tokenizers import tokenizer as tokenizer_lib

MODEL_FILE = "sentencepiece.model"

# SentencePiece writes spaces as U+2581 ("▁") inside pieces and decodes every U+2581
# back to a space, so a literal U+2581 in the text would come back as a space. Both
# the Python and the in-graph paths split the text at U+2581, encode the parts, and
# join them with the byte-fallback ids of its UTF-8 bytes.
ESCAPED_SPACE = "\u2581"
NEWLINE = "\n"
# Both paths also encode the text line by line, and a line in chunks of at most this
# many characters. Newline is a user-defined piece, so no piece spans one and cutting
# there changes nothing; a chunk cut costs at most a token per MAX_CHUNK_CHARS
# characters of a long line. Without the chunks, tensorflow_text's SentencePiece kernel
# and the sentencepiece package gave different unigram ids for a 100k-character line:
# over long inputs their Viterbi searches break near-ties (score gaps ~0.004) differently.
MAX_CHUNK_CHARS = 1024

# Trainer settings that make encode/decode lossless for any Unicode text:
#   identity normalization, no extra-whitespace removal and no dummy prefix: the pieces
#     spell the text exactly as written (no NFKC, runs/leading/trailing spaces kept);
#   byte_fallback with character_coverage=1.0: every character of the corpus has a
#     piece, and any other character is spelled by its UTF-8 bytes (<0x00>..<0xFF>), so
#     the unknown id never appears;
#   split_by_whitespace + allow_whitespace_only_pieces: pieces do not cross word
#     boundaries, but a run of spaces can be one piece;
#   "\n" as a user-defined symbol: a newline is always its own token;
#   no BOS/EOS: encode adds nothing; unk_id=0, then "\n" = 1, then the 256 bytes;
#   num_threads fixed: unigram's EM result depends on the thread count, so a fixed
#     count gives the same model for the same text on any machine.
TRAINER_SETTINGS = dict(
    normalization_rule_name="identity",
    remove_extra_whitespaces=False,
    add_dummy_prefix=False,
    byte_fallback=True,
    character_coverage=1.0,
    split_by_whitespace=True,
    allow_whitespace_only_pieces=True,
    user_defined_symbols=["\n"],
    max_sentence_length=100_000,
    unk_id=0,
    bos_id=-1,
    eos_id=-1,
    pad_id=-1,
    num_threads=4,
    minloglevel=2,
)
KINDS = ("bpe", "unigram")


class SentencePieceTokenizer(tokenizer_lib.Tokenizer):
    """A SentencePiece BPE or unigram model, trained so that `decode(encode(s)) == s` for any s.

    Every Unicode string round-trips exactly, including newlines, tabs, runs of
    spaces, emoji and scripts absent from the training text (those are spelled
    by byte-fallback ids `<0x00>`..`<0xFF>`). Train one with `train`.

    The end-of-text id is one id after the model's pieces (eot_id = the number of
    pieces); SentencePiece itself never sees it: `encode` cannot give it and
    `decode` drops it.

    Args:
        model_proto: bytes, a serialized SentencePiece `ModelProto`.
        kind: "bpe" or "unigram", the model's type.
        end_of_text: whether the id after the pieces is the end-of-text id (`train`
            gives it; a tokenizer saved before lm_keras had one loads without it).

    Example:

    >>> tok = SentencePieceTokenizer.train("bpe", text, vocab_size=1024)
    >>> tok.decode(tok.encode("To be, or not to be 🙂")) == "To be, or not to be 🙂"
    True
    """

    def __init__(self, model_proto, kind, end_of_text=False):
        import sentencepiece

        if kind not in KINDS:
            raise UserError(f"kind must be one of {', '.join(KINDS)}; received kind={kind!r}")
        self.kind = kind
        self.model_proto = bytes(model_proto)
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)
        self._eot_id = self._processor.get_piece_size() if end_of_text else None
        if self._processor.get_piece_size() < 256 or not self._byte_ids_present():
            raise UserError(
                "model_proto must be a SentencePiece model trained with byte_fallback=True; "
                "train one with SentencePieceTokenizer.train"
            )
        self.escaped_space_ids = [
            self._processor.piece_to_id(f"<0x{b:02X}>") for b in ESCAPED_SPACE.encode("utf-8")
        ]
        self.newline_ids = [self._processor.piece_to_id(NEWLINE)]
        if self.newline_ids[0] == self._processor.unk_id():
            raise UserError(
                "model_proto must have a newline piece (user_defined_symbols=['\\n']); train "
                "one with SentencePieceTokenizer.train"
            )

    def _byte_ids_present(self):
        return all(self._processor.is_byte(self._processor.piece_to_id(f"<0x{b:02X}>")) for b in range(256))

    @classmethod
    def train(cls, kind, text, vocab_size):
        """Trains a SentencePiece model of `vocab_size` pieces on `text`.

        Args:
            kind: "bpe" or "unigram".
            text: str, the training split.
            vocab_size: int, the number of ids: the unknown id, the newline, the 256
                byte pieces, the learned pieces and the end-of-text id (so the model
                trains vocab_size - 1 pieces).

        Returns:
            A `SentencePieceTokenizer` with an end-of-text id.

        Raises:
            UserError: vocab_size is outside what the text supports; the message says
                the smallest or largest size that fits.
        """
        import sentencepiece

        if kind not in KINDS:
            raise UserError(f"kind must be one of {', '.join(KINDS)}; received kind={kind!r}")
        if not isinstance(text, str) or not text:
            raise UserError(
                f"text must be a non-empty str (the training split); received "
                f"{type(text).__name__} {text!r:.40}"
            )
        if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool) or vocab_size <= 0:
            raise UserError(
                f"vocab_size must be a positive int for a {kind} tokenizer; received "
                f"vocab_size={vocab_size!r} (try vocab_size=1024)"
            )
        tokenizer_lib.check_unicode(text)
        model = io.BytesIO()
        sentences = training_sentences(text, TRAINER_SETTINGS["max_sentence_length"])
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                model_type=kind,
                vocab_size=int(vocab_size) - 1,  # the pieces; the end-of-text id comes after them
                **TRAINER_SETTINGS,
            )
        except RuntimeError as e:
            raise _vocab_size_error(kind, int(vocab_size), str(e)) from None
        return cls(model.getvalue(), kind, end_of_text=True)

    @property
    def vocab_size(self):
        return self._processor.get_piece_size() + (self._eot_id is not None)

    @property
    def eot_id(self):
        return self._eot_id

    def with_end_of_text(self):
        """Returns this tokenizer with the end-of-text id after its pieces; itself if it has it."""
        if self._eot_id is not None:
            return self
        return SentencePieceTokenizer(self.model_proto, self.kind, end_of_text=True)

    def encode(self, text):
        """Returns the ids of `text` (any str without lone surrogates) as int32, shape (n,)."""
        self._check_text(text)
        tokenizer_lib.check_unicode(text)
        lines = text.split(NEWLINE)
        if ESCAPED_SPACE not in text and max(map(len, lines)) <= MAX_CHUNK_CHARS:
            # The common case, in C-speed steps: one part per line, newline ids between them.
            part_ids = self._processor.encode(lines)
            ids = np.fromiter(itertools.chain.from_iterable(part_ids), np.int32)
            ends = np.cumsum([len(p) for p in part_ids[:-1]], dtype=np.int64)
            return np.insert(ids, ends, self.newline_ids[0]).astype(np.int32)
        # The text as parts to encode, each after the ids that separate it from the last.
        parts, separators = [], []
        for i, line in enumerate(lines):
            separator = self.newline_ids if i else []
            for start in range(0, max(len(line), 1), MAX_CHUNK_CHARS):
                for j, part in enumerate(line[start : start + MAX_CHUNK_CHARS].split(ESCAPED_SPACE)):
                    parts.append(part)
                    separators.append(self.escaped_space_ids if j else separator)
                    separator = []
        part_ids = self._processor.encode(parts)
        ids = []
        for separator, part in zip(separators, part_ids):
            ids += separator
            ids += part
        return np.asarray(ids, np.int32)

    def decode(self, ids):
        """Returns the text of `ids`; byte ids that spell no valid UTF-8 give U+FFFD; eot_id gives ""."""
        return self._processor.decode(self._without_end_of_text(self._as_ids(ids)).tolist())

    def id_to_piece(self, token_id):
        """Returns the text of `token_id`, spaces shown as spaces.

        Byte-fallback pieces show as '<0xE2>', the unknown id as '<unk>', the
        end-of-text id as '<|endoftext|>'.
        """
        token_id = self._check_id(token_id)
        if token_id == self._eot_id:
            return tokenizer_lib.END_OF_TEXT
        piece = self._processor.id_to_piece(token_id)
        if self._processor.is_byte(token_id) or self._processor.is_unknown(token_id):
            return piece
        return piece.replace(ESCAPED_SPACE, " ")

    def in_graph(self):
        """Returns a `SentencePieceTokenizerGraph` (see `Tokenizer.in_graph`)."""
        from lm_keras.tokenizers.sentence_piece_tokenizer_graph import SentencePieceTokenizerGraph

        return SentencePieceTokenizerGraph(
            self.model_proto, self.escaped_space_ids, self.newline_ids, eot_id=self._eot_id
        )

    def save(self, directory):
        """Writes `sentencepiece.model` and `tokenizer.json` into `directory`."""
        import sentencepiece

        tokenizer_lib.make_dirs(directory)
        with tokenizer_lib.open_file(tokenizer_lib.join(directory, MODEL_FILE), "wb") as f:
            f.write(self.model_proto)
        tokenizer_lib.write_config(
            directory,
            {
                "kind": self.kind,
                "vocab_size": self.vocab_size,
                "model_file": MODEL_FILE,
                "sentencepiece_version": sentencepiece.__version__,
                **self._end_of_text_config(),
            },
        )

    @classmethod
    def from_config(cls, config, directory):
        """Returns the tokenizer that `save` wrote; `config` is its tokenizer.json.

        A tokenizer.json without "eot_id" (written before lm_keras had one) gives a
        tokenizer whose eot_id is None.
        """
        path = tokenizer_lib.join(directory, config.get("model_file", MODEL_FILE))
        if not tokenizer_lib.exists(path):
            raise UserError(
                f"{path} does not exist, but {directory}/tokenizer.json names it; save the tokenizer again"
            )
        with tokenizer_lib.open_file(path, "rb") as f:
            tok = cls(f.read(), config["kind"])
        if tokenizer_lib.eot_id_from_config(config, tok.vocab_size, directory) is not None:
            tok = tok.with_end_of_text()
        if tok.vocab_size != config["vocab_size"]:
            eot = " + the end-of-text id" if tok.eot_id is not None else ""
            raise UserError(
                f"{path} has {tok._processor.get_piece_size()} pieces{eot} but tokenizer.json says "
                f"vocab_size={config['vocab_size']}; the files are from different tokenizers, "
                "save the tokenizer again"
            )
        return tok


def training_sentences(text, max_bytes):
    """Cuts `text` into paragraphs (each ending in its blank line) of at most `max_bytes`.

    The SentencePiece trainer skips longer sentences; a longer paragraph is cut at
    newlines, and a longer line into pieces of max_bytes // 4 characters.
    """
    for paragraph in re.split(r"(?<=\n\n)", text):
        if len(paragraph.encode("utf-8")) <= max_bytes:
            if paragraph:
                yield paragraph
            continue
        for line in paragraph.splitlines(keepends=True):
            if len(line.encode("utf-8")) <= max_bytes:
                yield line
            else:
                step = max_bytes // 4  # A character is at most 4 UTF-8 bytes.
                for start in range(0, len(line), step):
                    yield line[start : start + step]


_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")
_TOO_LARGE = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def _vocab_size_error(kind, vocab_size, message):
    """The UserError for a failed training run, naming the size limit SentencePiece reported."""
    # SentencePiece counts pieces; vocab_size counts them and the end-of-text id.
    small = _TOO_SMALL.search(message)
    if small:
        return UserError(
            f"vocab_size={vocab_size} is too small for a {kind} tokenizer of this text: the "
            f"smallest size it supports is {int(small.group(2)) + 1} (the unknown id, newline, 256 byte "
            "pieces, one piece per distinct character and the end-of-text id); pass a larger vocab_size"
        )
    large = _TOO_LARGE.search(message)
    if large:
        return UserError(
            f"vocab_size={vocab_size} is too large for a {kind} tokenizer of this text: the "
            f"largest size it supports is {int(large.group(2)) + 1}; pass a smaller vocab_size or more text"
        )
    return UserError(
        f"SentencePiece could not train a {kind} tokenizer with "
        f"vocab_size={vocab_size}: {message.strip().splitlines()[-1]}"
    )
