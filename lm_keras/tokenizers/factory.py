"""`train` and `load`: the two ways to get a tokenizer."""

from lm_keras.errors import UserError
from lm_keras.tokenizers import tokenizer as tokenizer_lib
from lm_keras.tokenizers.byte_level_bpe_tokenizer import ByteLevelBPETokenizer
from lm_keras.tokenizers.char_tokenizer import CharTokenizer
from lm_keras.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer

KINDS = ("char", "bpe", "unigram", "gpt2_bpe")


def train(kind, text, vocab_size=None):
    """Returns a tokenizer of `kind` trained on `text`.

    Args:
        kind: "char", "bpe" or "unigram" (SentencePiece), or "gpt2_bpe" (GPT-2's
            byte-level BPE, trained with Hugging Face `tokenizers`).
        text: str, the training split of the corpus.
        vocab_size: the number of ids, the end-of-text id included (the rows of a
            model's embedding). Required for all but "char"; for "char", None or 0
            means the distinct characters of `text` plus the unknown id and the
            end-of-text id.

    Returns:
        A `CharTokenizer`, `SentencePieceTokenizer` or `ByteLevelBPETokenizer`, with
        an end-of-text id (`eot_id`, the last id).

    Raises:
        UserError: an unknown kind, empty text, or a vocab_size the text cannot
            support (the message says the smallest or largest size that fits).

    Example:

    >>> tok = train("bpe", text, vocab_size=1024)
    >>> tok.decode(tok.encode("Hark! 🙂")) == "Hark! 🙂"
    True
    """
    if kind not in KINDS:
        raise UserError(f"kind must be one of {', '.join(KINDS)}; received kind={kind!r}")
    if kind == "char":
        return CharTokenizer.train(text, vocab_size)
    if not vocab_size:
        raise UserError(
            f"vocab_size is required for a {kind} tokenizer; received vocab_size={vocab_size!r} "
            "(try vocab_size=1024)"
        )
    if kind == "gpt2_bpe":
        return ByteLevelBPETokenizer.train(text, vocab_size)
    return SentencePieceTokenizer.train(kind, text, vocab_size)


def load(directory):
    """Returns the tokenizer that `tok.save(directory)` wrote.

    Args:
        directory: the folder holding `tokenizer.json` (MODEL_DIR/tokenizer); a model
            directory holding a `tokenizer/` folder works too.

    Returns:
        A `Tokenizer` that gives the same ids as the one saved.
    """
    directory = str(directory)
    if not tokenizer_lib.exists(tokenizer_lib.join(directory, tokenizer_lib.CONFIG_FILE)):
        nested = tokenizer_lib.join(directory, "tokenizer")
        if tokenizer_lib.exists(tokenizer_lib.join(nested, tokenizer_lib.CONFIG_FILE)):
            directory = nested
    config = tokenizer_lib.read_config(directory)
    kind = config.get("kind")
    if kind == "char":
        return CharTokenizer.from_config(config, directory)
    if kind in ("bpe", "unigram"):
        return SentencePieceTokenizer.from_config(config, directory)
    if kind == "gpt2_bpe":
        return ByteLevelBPETokenizer.from_config(config, directory)
    raise UserError(
        f"{tokenizer_lib.join(directory, tokenizer_lib.CONFIG_FILE)} has kind={kind!r}; expected "
        f"one of {', '.join(KINDS)} (the file is damaged or from another program)"
    )
