"""Tests for ByteLevelBPETokenizer (gpt2_bpe): GPT-2's files, Hugging Face's ids, lossless, save/load."""

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from tokenizers.implementations import ByteLevelBPETokenizer as HuggingFaceByteLevelBPE

from lm_keras import tokenizers
from lm_keras.errors import UserError
from lm_keras.tokenizers import ByteLevelBPETokenizer
from lm_keras.tokenizers.byte_level_bpe_tokenizer import BYTE_CHARS, END_OF_TEXT
from tests.tokenizers.cases import MIXED_BATCH, gpt2_text, unicode_text
from tests.tokenizers.conftest import SENTENCEPIECE_VOCAB_SIZE

VOCAB_SIZE = SENTENCEPIECE_VOCAB_SIZE


@pytest.fixture(scope="module")
def tok(trained):
    return trained("gpt2_bpe")


@pytest.fixture(scope="module")
def files(tok, tmp_path_factory):
    """The tokenizer saved as GPT-2's vocab.json and merges.txt."""
    directory = tmp_path_factory.mktemp("gpt2_bpe")
    tok.save(directory)
    return directory


@pytest.fixture(scope="module")
def reference(files):
    """Hugging Face's own GPT-2-style tokenizer, read from the saved files."""
    return HuggingFaceByteLevelBPE(
        str(files / "vocab.json"), str(files / "merges.txt"), add_prefix_space=False
    )


def test_vocabulary_is_gpt2_layout(tok):
    assert tok.kind == "gpt2_bpe" and tok.vocab_size == VOCAB_SIZE
    # The 256 byte tokens, then the merges, then <|endoftext|> last (GPT-2's 50256).
    assert sorted(tok.vocab[BYTE_CHARS[b]] for b in range(256)) == list(range(256))
    assert tok.end_of_text_id == VOCAB_SIZE - 1 and tok.id_to_token[-1] == END_OF_TEXT
    assert len(tok.merges) == VOCAB_SIZE - 257
    assert tok.id_to_piece(tok.encode(" the")[0]) == " the"
    assert tok.id_to_piece(tok.vocab[BYTE_CHARS[0xE2]]) == "<0xE2>"


def test_whole_corpus_gives_hugging_faces_ids_and_round_trips(tok, reference, corpus):
    ids = tok.encode(corpus)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ids.tolist() == reference.encode(corpus).ids
    # 1024 tokens cut 1.1M characters to under half as many tokens.
    assert 0.3 * len(corpus) < len(ids) < 0.5 * len(corpus)
    assert tok.decode(ids) == corpus


@pytest.mark.parametrize(
    "text", MIXED_BATCH + [END_OF_TEXT, "x<|endoftext|>y", "it's 2024's 'tis", "a  b\u00a0\u3000c"]
)
def test_hard_strings_give_hugging_faces_ids_and_round_trip(tok, reference, text):
    assert tok.encode(text).tolist() == reference.encode(text).ids
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(text=unicode_text | gpt2_text)
@example(text="\t \n  x 's'S  12 345\u00a0a")
def test_any_unicode_gives_hugging_faces_ids_and_round_trips(tok, reference, text):
    ids = tok.encode(text)
    assert ids.tolist() == reference.encode(text).ids
    assert tok.decode(ids) == text


def test_end_of_text_is_ordinary_text_and_its_id_decodes_to_nothing(tok):
    assert tok.eot_id == tok.end_of_text_id == VOCAB_SIZE - 1
    assert tok.eot_id not in tok.encode(END_OF_TEXT)
    assert tok.decode([tok.eot_id]) == ""
    assert tok.decode([*tok.encode("a"), tok.eot_id, *tok.encode("b")]) == "ab"
    assert tok.id_to_piece(tok.eot_id) == END_OF_TEXT


def test_decode_of_a_partial_character_gives_the_replacement_character(tok, reference):
    ids = [tok.vocab[BYTE_CHARS[b]] for b in "é".encode()[:1]] + tok.encode("a").tolist()
    assert tok.decode(ids) == reference.decode(ids) == "\ufffda"


def test_invalid_input_is_refused(tok):
    with pytest.raises(ValueError, match="not valid Unicode.*surrogate"):
        tok.encode("a\ud800b")
    with pytest.raises(TypeError, match="takes a str; received bytes"):
        tok.encode(b"abc")
    with pytest.raises(
        ValueError, match=rf"ids must be in \[0, {VOCAB_SIZE}\).*id {VOCAB_SIZE} at position 1"
    ):
        tok.decode([5, VOCAB_SIZE])


def test_save_and_load_give_the_same_ids(tok, files, corpus):
    config = json.loads((files / "tokenizer.json").read_text(encoding="utf-8"))
    assert (config["kind"], config["vocab_size"]) == ("gpt2_bpe", VOCAB_SIZE)
    assert (files / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    loaded = tokenizers.load(files)
    assert isinstance(loaded, ByteLevelBPETokenizer)
    assert loaded.vocab == tok.vocab and loaded.merges == tok.merges
    text = corpus[:20_000] + " \U0001f600 \u4e2d\u6587"
    np.testing.assert_array_equal(loaded.encode(text), tok.encode(text))


def test_training_is_deterministic(tok, train_text):
    again = tokenizers.train("gpt2_bpe", train_text, vocab_size=VOCAB_SIZE)
    assert again.vocab == tok.vocab and again.merges == tok.merges


def test_vocab_size_limits_are_named(corpus):
    with pytest.raises(ValueError, match=r"vocab_size must be an int >= 257 .*received vocab_size=256"):
        tokenizers.train("gpt2_bpe", corpus[:1000], vocab_size=256)
    with pytest.raises(ValueError, match=r"vocab_size=50000 is too large .* largest size it supports is \d+"):
        tokenizers.train("gpt2_bpe", corpus[:3000], vocab_size=50_000)
    with pytest.raises(ValueError, match="vocab_size is required for a gpt2_bpe tokenizer"):
        tokenizers.train("gpt2_bpe", corpus[:1000])


def _write(directory, vocab, merges_text):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text(merges_text, encoding="utf-8")
    return directory / "vocab.json", directory / "merges.txt"


def test_bad_files_get_one_clear_line(tmp_path):
    byte_vocab = {c: b for b, c in BYTE_CHARS.items()}
    with pytest.raises(UserError, match=r"merges\.txt does not exist"):
        ByteLevelBPETokenizer.from_files(*_write(tmp_path / "a", byte_vocab, "")[:1], tmp_path / "merges.txt")
    with pytest.raises(UserError, match=r"line 2 is 'a b c'; each line must be two tokens"):
        ByteLevelBPETokenizer.from_files(*_write(tmp_path / "b", byte_vocab, "#version: 0.2\na b c\n"))
    with pytest.raises(UserError, match=r"line 1 merges 'a' and 'b', but 'ab' is not in vocab\.json"):
        ByteLevelBPETokenizer.from_files(*_write(tmp_path / "c", byte_vocab, "a b\n"))
    with pytest.raises(UserError, match=r"lacks the token of byte 0x00 .* not a byte-level BPE vocabulary"):
        ByteLevelBPETokenizer.from_files(*_write(tmp_path / "d", {"a": 0}, ""))
    with pytest.raises(UserError, match=r"must give the ids 0 \.\. 256 once each"):
        ByteLevelBPETokenizer.from_files(*_write(tmp_path / "e", {**byte_vocab, "ab": 300}, ""))
    with pytest.raises(
        UserError, match=r"holds the token '▁x', which is not spelled in GPT-2's byte alphabet"
    ):
        ByteLevelBPETokenizer.from_files(*_write(tmp_path / "f", {**byte_vocab, "▁x": 256}, ""))
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "vocab.json").write_text("{", encoding="utf-8")
    (tmp_path / "g" / "merges.txt").write_text("", encoding="utf-8")
    with pytest.raises(UserError, match=r"vocab\.json is not valid JSON"):
        ByteLevelBPETokenizer.from_files(tmp_path / "g" / "vocab.json", tmp_path / "g" / "merges.txt")
