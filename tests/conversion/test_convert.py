"""Converted GPT-2 checkpoints compute what keras-hub computes from the same files."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tokenizers.cases import MIXED_BATCH, gpt2_text, unicode_text

FORMATS = ("huggingface", "keras_hub")
PROMPTS = ["First Citizen:\nBefore we proceed any further, hear me speak.", "ROMEO:", "x€y 'tis 42"]
NEW_TOKENS = 12


def keras_hub_logits(lm, ids):
    backbone = lm.backbone
    hidden = backbone({"token_ids": ids[None, :], "padding_mask": np.ones((1, len(ids)), "int32")})
    return np.asarray(backbone.token_embedding(hidden, reverse=True))[0]  # (T, V)


@pytest.mark.parametrize("source_format", FORMATS)
def test_next_token_logits_equal_keras_hubs(converted, keras_hub_lms, source_format):
    trained = converted[source_format]
    for prompt in PROMPTS:
        ids = trained.tokenizer.encode(prompt)
        ours = np.asarray(trained.model(ids[None, :]))[0]
        theirs = keras_hub_logits(keras_hub_lms[source_format], ids)
        assert ours.shape == theirs.shape == (len(ids), trained.tokenizer.vocab_size)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
        assert np.abs(theirs).max() > 1.0  # logits far from flat: the comparison can fail


@pytest.mark.parametrize("source_format", FORMATS)
def test_greedy_text_equals_keras_hubs_generate(converted, keras_hub_lms, source_format):
    from lm_keras.generation import generate

    trained, lm = converted[source_format], keras_hub_lms[source_format]
    # Token ids in and out: keras-hub's preprocessor would put <|endoftext|> before the prompt.
    preprocessor, lm.preprocessor = lm.preprocessor, None
    lm.compile(sampler="greedy")
    generated = set()
    try:
        for prompt in PROMPTS:
            ids = trained.tokenizer.encode(prompt)
            padded = np.zeros((1, len(ids) + NEW_TOKENS), "int32")
            padded[0, : len(ids)] = ids
            mask = np.zeros(padded.shape, bool)
            mask[0, : len(ids)] = True
            out = lm.generate({"token_ids": padded, "padding_mask": mask}, stop_token_ids=None)
            theirs = trained.tokenizer.decode(np.asarray(out["token_ids"])[0, len(ids) :])
            (ours,) = generate(
                trained.model, trained.tokenizer, [prompt], max_new_tokens=NEW_TOKENS, temperature=0.0
            )
            assert ours == theirs
            generated.update(np.asarray(out["token_ids"])[0, len(ids) :].tolist())
    finally:
        lm.preprocessor = preprocessor
    assert len(generated) > 1  # not one token over and over: the comparison can fail


@pytest.mark.parametrize("source_format", FORMATS)
def test_tokenizer_ids_equal_hugging_faces_and_keras_hubs(sources, converted, keras_hub_lms, source_format):
    from tokenizers.implementations import ByteLevelBPETokenizer

    folder = sources[source_format]
    files = folder if source_format == "huggingface" else folder.parent / f"{folder.name}_tokenizer_files"
    reference = ByteLevelBPETokenizer(str(files / "vocab.json"), str(files / "merges.txt"))
    tok = converted[source_format].tokenizer
    for text in MIXED_BATCH + PROMPTS:
        assert tok.encode(text).tolist() == reference.encode(text).ids
    # keras-hub's own graph tokenizer agrees on plain text (see the report for where it does not).
    for prompt in PROMPTS[:2]:
        assert (
            tok.encode(prompt).tolist()
            == np.asarray(keras_hub_lms[source_format].preprocessor.tokenizer(prompt)).tolist()
        )


@settings(max_examples=50, deadline=None)
@given(text=st.one_of(unicode_text, gpt2_text))
def test_converted_tokenizer_gives_hugging_faces_ids_on_random_unicode(sources, converted, text):
    from tokenizers.implementations import ByteLevelBPETokenizer

    folder = sources["huggingface"]
    reference = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tok = converted["huggingface"].tokenizer
    assert tok.encode(text).tolist() == reference.encode(text).ids
    assert tok.decode(tok.encode(text)) == text


def test_model_directory_is_ordinary(converted):
    import json
    import pathlib

    model_dir = pathlib.Path(converted["huggingface"].model_dir)
    assert sorted(p.name for p in model_dir.iterdir()) == ["checkpoints", "config.json", "tokenizer"]
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["mlp"] == "gelu_tanh" and config["model"]["use_bias"] is True
    assert config["model"]["layer_norm_epsilon"] == 1e-5 and config["model"]["seq_len"] == 64
    assert config["data"]["tokenizer"] == "gpt2_bpe" and config["converted_from"]["format"] == "huggingface"
    from lm_keras.model_dir import load_trained

    loaded = load_trained(model_dir)
    ids = loaded.tokenizer.encode(PROMPTS[0])[None, :]
    np.testing.assert_array_equal(
        np.asarray(loaded.model(ids)), np.asarray(converted["huggingface"].model(ids))
    )
