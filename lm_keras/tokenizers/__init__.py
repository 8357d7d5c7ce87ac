"""Tokenizers: characters, SentencePiece (BPE, unigram), GPT-2's byte-level BPE; in Python and in the graph.

    tok = lm_keras.tokenizers.train("bpe", train_text, vocab_size=1024)
    ids = tok.encode("To be, or not to be")      # int32 (n,)
    tok.decode(ids)                              # the same text, for any text
    tok.save(model_dir + "/tokenizer")
    tok = lm_keras.tokenizers.load(model_dir + "/tokenizer")
    graph = tok.in_graph()                       # tf.Module: tokenize / detokenize

Importing this package does not import TensorFlow; `in_graph()` does.
"""

from lm_keras.tokenizers.byte_level_bpe_tokenizer import ByteLevelBPETokenizer
from lm_keras.tokenizers.char_tokenizer import CharTokenizer
from lm_keras.tokenizers.factory import KINDS, load, train
from lm_keras.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer
from lm_keras.tokenizers.tokenizer import Tokenizer

__all__ = [
    "Tokenizer",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "ByteLevelBPETokenizer",
    "train",
    "load",
    "KINDS",
]
