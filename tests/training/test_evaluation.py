"""training/evaluation.py: the final figures against a direct computation, the --eval_tokens cap."""

import math

import numpy as np
import pytest

from lm_keras import tokenizers
from lm_keras.config import ModelConfig
from lm_keras.data.prepare import prepare
from lm_keras.models import build_model
from lm_keras.training.evaluation import characters, estimate, full_evaluation, make_eval_step

TEXT = "".join(f"line {i}: to be, or not to be\n" for i in range(150))
SEQ_LEN = 16


@pytest.fixture(scope="module")
def model_and_tokenizer():
    import keras

    keras.utils.set_random_seed(3)
    tokenizer = tokenizers.train("char", TEXT)
    model = build_model(
        ModelConfig(
            vocab_size=tokenizer.vocab_size, seq_len=SEQ_LEN, num_layers=1, num_heads=2, hidden_dim=16
        )
    )
    return model, tokenizer


def direct_nll(model, ids, targets):
    """Mean next-token NLL of the first `targets` targets of `ids`, windows at 0, T, 2T, ... by hand."""
    padded = np.concatenate([ids, np.zeros(SEQ_LEN + 1, ids.dtype)])
    starts = np.arange(0, targets, SEQ_LEN)
    x = padded[starts[:, None] + np.arange(SEQ_LEN)]  # (W, T)
    y = padded[starts[:, None] + 1 + np.arange(SEQ_LEN)]  # (W, T)
    logits = np.asarray(model(x, training=False)).astype(np.float64)  # (W, T, V)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, y[..., None], axis=-1)[..., 0]  # (W, T)
    scored = (starts[:, None] + 1 + np.arange(SEQ_LEN)) <= targets
    return float(nll[scored].mean()), int(scored.sum())


@pytest.mark.parametrize("max_targets", [0, 1000, 10**9])
def test_full_evaluation_matches_a_direct_computation(model_and_tokenizer, max_targets):
    model, tokenizer = model_and_tokenizer
    ids = tokenizer.encode(TEXT)
    expected_targets = min(max_targets or 10**9, len(ids) - 1)
    figures = full_evaluation(
        make_eval_step(model, "next_token", jit=False),
        ids,
        tokenizer,
        view="next_token",
        seq_len=SEQ_LEN,
        batch_size=7,
        vocab_size=tokenizer.vocab_size,
        max_targets=max_targets,
    )
    loss, count = direct_nll(model, ids, expected_targets)
    assert figures["val_tokens"] == count == expected_targets
    assert figures["val_split_targets"] == len(ids) - 1 and figures["eval_tokens"] == max_targets
    # float32 sums of ~10^4 terms of size ~3 against float64: a few float32 epsilons per term
    assert figures["val_loss"] == pytest.approx(loss, rel=64 * float(np.finfo(np.float32).eps))
    assert figures["val_chars"] == expected_targets  # one character per char-tokenizer target
    assert figures["val_bits_per_char"] == pytest.approx(figures["val_loss"] / math.log(2))
    assert figures["val_perplexity"] == pytest.approx(math.exp(figures["val_loss"]))


def test_the_same_figures_from_shards_and_the_periodic_estimate_is_fixed(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT)
    dataset = prepare(str(corpus), tmp_path / "ds", tokens_per_shard=500, log=lambda line: None)
    assert dataset.tokenizer().characters == tokenizer.characters
    step = make_eval_step(model, "next_token", jit=False)
    kwargs = dict(view="next_token", seq_len=SEQ_LEN, batch_size=8, vocab_size=tokenizer.vocab_size)
    from_shards = full_evaluation(step, dataset.train, tokenizer, **kwargs)
    from_array = full_evaluation(step, dataset.train.read(0, 10**9), tokenizer, **kwargs)
    assert from_shards == from_array  # the same windows, the same batches: the same sums
    assert from_shards["val_tokens"] == dataset.train.tokens - 1 > 6 * 500  # across many shards
    one = estimate(step, dataset.val, batches=3, **kwargs)
    assert one == estimate(step, dataset.val, batches=3, **kwargs) and one > 0


def test_characters_of_a_split_from_its_manifest_or_by_decoding(tmp_path, shakespeare):
    corpus = tmp_path / "text.txt"
    corpus.write_text(shakespeare.text[:60_000] + "héllo wörld 🙂\n" * 500, encoding="utf-8")
    dataset = prepare(str(corpus), tmp_path / "bpe", tokenizer="bpe", vocab_size=400, log=lambda line: None)
    tokenizer, split = dataset.tokenizer(), dataset.train
    whole = characters(tokenizer, split, 1, split.tokens)  # from the manifest's count
    decoded = len(tokenizer.decode(split.read(1, split.tokens)))
    assert whole == decoded == split.characters - len(tokenizer.decode(split.read(0, 1)))
    assert characters(tokenizer, split, 5, 105) == len(tokenizer.decode(split.read(5, 105)))
