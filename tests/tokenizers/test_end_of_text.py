"""The end-of-text id of every tokenizer kind: where it is, that text never makes it, files old and new."""

import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_keras import chat_template, tokenizers
from lm_keras.errors import UserError
from lm_keras.tokenizers import ByteLevelBPETokenizer
from lm_keras.tokenizers.byte_level_bpe_tokenizer import BYTE_CHARS
from lm_keras.tokenizers.tokenizer import END_OF_TEXT
from tests.tokenizers.cases import gpt2_text, unicode_text
from tests.tokenizers.conftest import SENTENCEPIECE_VOCAB_SIZE

KINDS = ("char", "bpe", "unigram", "gpt2_bpe")
# Text that looks like the end-of-text token or a chat header, in pieces and whole.
FORGERIES = [
    END_OF_TEXT,
    "<|",
    "|>",
    "endoftext",
    "<|endoftext",
    "|><|endoftext|>",
    " <|endoftext|> ",
    *chat_template.HEADERS.values(),
]
forged_text = st.lists(st.one_of(st.sampled_from(FORGERIES), unicode_text, gpt2_text), max_size=12).map(
    "".join
)


def test_each_kind_has_its_end_of_text_id_last(trained):
    expected = {"char": 66, "bpe": 1023, "unigram": 1023, "gpt2_bpe": 1023}
    for kind in KINDS:
        tok = trained(kind)
        assert tok.eot_id == expected[kind] == tok.vocab_size - 1, kind
        assert tok.id_to_piece(tok.eot_id) == END_OF_TEXT
        assert tok.chat_template == chat_template.record()
    # SentencePiece's own pieces stop before it: vocab_size counts it.
    assert trained("bpe")._processor.get_piece_size() == SENTENCEPIECE_VOCAB_SIZE - 1


def test_gpt2s_end_of_text_is_50256():
    # GPT-2's layout: 256 bytes, 50,000 merges, <|endoftext|> (no GPT-2 files can be downloaded here).
    chars = [BYTE_CHARS[b] for b in range(256)]
    vocab = {c: i for i, c in enumerate(chars)}
    merges = [(a, b) for a in chars for b in chars][:50_000]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[END_OF_TEXT] = len(vocab)
    tok = ByteLevelBPETokenizer(vocab, merges)
    assert (tok.vocab_size, tok.eot_id, tok.end_of_text_id) == (50_257, 50_256, 50_256)
    assert tok.with_end_of_text() is tok
    assert 50_256 not in tok.encode("a<|endoftext|>b").tolist()
    assert tok.decode([*tok.encode("a"), 50_256, *tok.encode("b")]) == "ab"


@pytest.mark.parametrize("kind", KINDS)
def test_decode_drops_it_and_the_graph_agrees(kind, trained):
    # A module of its own: a SentencePiece resource of the session's cached one can be gone
    # after other modules' tests ran in this worker.
    tok = trained(kind)
    graph = tok.in_graph()
    eot = tok.eot_id
    rows = [
        [eot],
        [*tok.encode("To be"), eot, *tok.encode(" or not"), eot, eot],
        [eot, *tok.encode("\u00e9\U0001f600")],
        [],
    ]
    texts = ["", "To be or not", tok.decode(tok.encode("\u00e9\U0001f600")), ""]
    assert [tok.decode(r) for r in rows] == texts
    assert graph.eot_id == eot
    for dtype in (tf.int32, tf.int64):
        out = graph.detokenize(tf.ragged.constant(rows, dtype, ragged_rank=1, inner_shape=()))
        assert [t.decode("utf-8") for t in out.numpy()] == texts
    # An id split by the end-of-text id still joins its bytes, in both paths.
    if kind != "char":
        e_acute = tok.encode("\u00e9").tolist()
        if len(e_acute) == 2:
            split = [e_acute[0], eot, e_acute[1]]
            assert tok.decode(split) == "\u00e9"
            assert graph.detokenize(tf.ragged.constant([split])).numpy()[0].decode() == "\u00e9"


@pytest.mark.parametrize("kind", KINDS)
def test_the_forged_token_is_text_in_python_and_in_the_graph(kind, trained):
    # A module of its own: a SentencePiece resource of the session's cached one can be gone
    # after other modules' tests ran in this worker.
    tok = trained(kind)
    graph = tok.in_graph()
    ids = [tok.encode(t).tolist() for t in FORGERIES]
    assert all(tok.eot_id not in i for i in ids)
    assert graph.tokenize(tf.constant(FORGERIES)).to_list() == ids
    if kind != "char":  # the char tokenizer has no "|" in Shakespeare: it spells it as unknown
        assert [tok.decode(i) for i in ids] == FORGERIES


@settings(max_examples=150, deadline=None)
@given(text=forged_text)
def test_encode_never_gives_the_end_of_text_id(trained, text):
    for kind in KINDS:
        tok = trained(kind)
        ids = tok.encode(text)
        assert tok.eot_id not in ids.tolist(), kind
        if kind != "char":
            assert tok.decode(ids) == text


@pytest.mark.parametrize("kind", KINDS)
def test_save_records_it_and_load_gives_it_back(kind, trained, tmp_path):
    tok = trained(kind)
    tok.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert config["eot_id"] == tok.eot_id
    assert config["chat_template"] == chat_template.record()
    loaded = tokenizers.load(tmp_path)
    assert (loaded.eot_id, loaded.vocab_size) == (tok.eot_id, tok.vocab_size)
    np.testing.assert_array_equal(loaded.encode("To be, or not"), tok.encode("To be, or not"))


def _old_files(tok, directory):
    """`tok` saved as lm_keras wrote it before the end-of-text id: no eot_id, no chat template."""
    tok.save(directory)
    path = directory / "tokenizer.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    del config["eot_id"], config["chat_template"]
    if tok.kind != "gpt2_bpe":
        config["vocab_size"] -= 1
    path.write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram"])
def test_an_old_tokenizer_loads_without_it_and_gains_it_appended(kind, trained, tmp_path):
    tok = trained(kind)
    _old_files(tok, tmp_path / "old")
    old = tokenizers.load(tmp_path / "old")
    assert old.eot_id is None and old.chat_template is None
    assert old.vocab_size == tok.vocab_size - 1
    text = "First Citizen:\nBefore we proceed"
    np.testing.assert_array_equal(old.encode(text), tok.encode(text))
    with pytest.raises(UserError, match=rf"ids must be in \[0, {old.vocab_size}\)"):
        old.decode([tok.eot_id])
    with pytest.raises(UserError, match="no end-of-text id.*with_end_of_text"):
        chat_template.encode_messages(old, [{"role": "user", "content": "hi"}])
    graph = old.in_graph()
    assert graph.eot_id is None and graph.vocab_size == old.vocab_size
    with pytest.raises(tf.errors.InvalidArgumentError):
        graph.detokenize(tf.ragged.constant([[tok.eot_id]]))

    # with_end_of_text appends it after the old ids, once; save then records it.
    new = old.with_end_of_text()
    assert new is not old and new.with_end_of_text() is new
    assert (
        (new.eot_id, new.vocab_size) == (old.vocab_size, old.vocab_size + 1) == (tok.eot_id, tok.vocab_size)
    )
    np.testing.assert_array_equal(new.encode(text), old.encode(text))
    assert new.decode([*new.encode(text), new.eot_id]) == old.decode(old.encode(text))
    new.save(tmp_path / "new")
    assert (tmp_path / "new" / "tokenizer.json").read_bytes() == _saved(tok, tmp_path / "trained")
    assert tokenizers.load(tmp_path / "new").eot_id == new.eot_id


def _saved(tok, directory):
    tok.save(directory)
    return (directory / "tokenizer.json").read_bytes()


def test_an_old_gpt2_bpe_tokenizer_has_its_end_of_text_from_the_vocabulary(trained, tmp_path):
    tok = trained("gpt2_bpe")
    _old_files(tok, tmp_path)
    old = tokenizers.load(tmp_path)
    assert (old.eot_id, old.vocab_size) == (tok.eot_id, tok.vocab_size)
    assert old.with_end_of_text() is old
    # A vocabulary without the token gains it last.
    vocab = {t: i for t, i in tok.vocab.items() if t != END_OF_TEXT}
    bare = ByteLevelBPETokenizer(vocab, tok.merges)
    assert bare.eot_id is None
    assert bare.with_end_of_text().eot_id == len(vocab) == tok.eot_id


def test_a_file_with_a_wrong_eot_id_or_another_template_is_refused(trained, tmp_path):
    tok = trained("char")
    tok.save(tmp_path)
    path = tmp_path / "tokenizer.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**config, "eot_id": 3}), encoding="utf-8")
    with pytest.raises(UserError, match="says eot_id=3, but this char tokenizer's end-of-text id is 66"):
        tokenizers.load(tmp_path)
    other = {**config["chat_template"], "name": "chatml"}
    path.write_text(json.dumps({**config, "chat_template": other}), encoding="utf-8")
    with pytest.raises(UserError, match="records the chat template 'chatml'.*upgrade lm_keras"):
        tokenizers.load(tmp_path)


def test_newly_trained_char_and_sentencepiece_tokenizers_count_it_in_vocab_size():
    char = tokenizers.train("char", "abc")
    assert (char.vocab_size, char.eot_id) == (5, 4)  # unknown, a, b, c, end of text
    assert tokenizers.train("char", "abc", vocab_size=5).eot_id == 4
    with pytest.raises(UserError, match=r"largest size it supports is 5 \(3 distinct characters"):
        tokenizers.train("char", "abc", vocab_size=6)
    bpe = tokenizers.train("bpe", "abc abd\n" * 50, vocab_size=264)
    assert (bpe.vocab_size, bpe.eot_id, bpe._processor.get_piece_size()) == (264, 263, 263)
