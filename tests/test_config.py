"""The config's checks: every bad value is a UserError (one line from the commands) naming it."""

import pytest

from lm_keras import config as config_lib
from lm_keras import tokenizers
from lm_keras.config import Config, ModelConfig, TrainConfig
from lm_keras.errors import UserError


@pytest.mark.parametrize(
    "section, fields, message",
    [
        ("model", {"model": "gru"}, r"--model must be one of transformer, lstm"),
        ("model", {"dropout": 1.5}, r"--dropout must be in \[0, 1\); received dropout=1.5"),
        ("model", {"vocab_size": -1}, r"--vocab_size must be >= 0; received vocab_size=-1"),
        (
            "data",
            {"tokenizer": "bpe"},
            r"--vocab_size is required for --tokenizer=bpe; received vocab_size=0",
        ),
        (
            "data",
            {"tokenizer": "unigram", "vocab_size": 100},
            r"--vocab_size must be at least 260 for --tokenizer=unigram .* received vocab_size=100",
        ),
        ("train", {"batch_size": 0}, r"--batch_size must be > 0; received batch_size=0"),
        ("train", {"min_learning_rate": 1.0}, r"--min_learning_rate must not exceed --learning_rate"),
        ("train", {"schedule": "step"}, r"--schedule must be one of cosine, constant"),
    ],
)
def test_bad_values_are_user_errors_that_name_the_flag(section, fields, message):
    with pytest.raises(UserError, match=message):
        config_lib.Config.from_dict({section: fields})


def test_an_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match=r"--preset must be one of .*; received preset='gpt5'"):
        config_lib.preset("gpt5")


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_the_smallest_sentencepiece_vocab_size_it_accepts_trains(kind):
    smallest = config_lib.MIN_SENTENCEPIECE_VOCAB_SIZE
    assert config_lib.DataConfig(tokenizer=kind, vocab_size=smallest).vocab_size == smallest
    with pytest.raises(UserError, match=f"at least {smallest}"):
        config_lib.DataConfig(tokenizer=kind, vocab_size=smallest - 1)
    # A text of one character needs exactly that many pieces.
    assert tokenizers.train(kind, "a", vocab_size=smallest).vocab_size == smallest


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(mlp="relu"), "--mlp must be one of gelu, gelu_tanh, relu2, swiglu; received mlp='relu'"),
        (dict(layer_norm_epsilon=0.0), "--layer_norm_epsilon must be > 0; received layer_norm_epsilon=0.0"),
        (dict(norm="rms"), "--norm must be one of layernorm, rmsnorm; received norm='rms'"),
        (dict(logit_softcap=-2.0), r"--logit_softcap must be >= 0 \(0 is off\); received logit_softcap=-2.0"),
        (
            dict(position="rope", hidden_dim=12, num_heads=4),
            r"--position='rope' needs heads of even width \(hidden_dim / num_heads\); received "
            "hidden_dim=12, num_heads=4",
        ),
        (
            dict(hidden_dim=130, num_heads=4),
            "--hidden_dim must be divisible by num_heads; received hidden_dim=130, num_heads=4",
        ),
        (dict(seq_len=0), "--seq_len must be a positive int; received seq_len=0"),
    ],
)
def test_model_config_refuses_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)


def test_defaults_are_the_articles_gpt():
    model = ModelConfig()
    assert (model.mlp, model.layer_norm_epsilon, model.norm, model.position) == (
        "gelu",
        1e-5,
        "layernorm",
        "learned",
    )
    assert (model.use_qk_norm, model.tie_embeddings, model.zero_init_residual, model.logit_softcap) == (
        False,
        True,
        False,
        0.0,
    )
    assert model.resolved_mlp_dim == 512
    # SwiGLU's three matrices get the parameters of two at 4 d: 8 d / 3, rounded up to 8.
    assert ModelConfig(mlp="swiglu").resolved_mlp_dim == 344
    assert ModelConfig(mlp="swiglu", hidden_dim=384, num_heads=6).resolved_mlp_dim == 1024
    # A config.json written before a field existed reads back with the field's default.
    assert Config.from_dict({"model": {"hidden_dim": 64}}).model == ModelConfig(hidden_dim=64)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(optimizer="sgd"), "--optimizer must be one of adamw, adam, muon; received optimizer='sgd'"),
        (
            dict(schedule="linear"),
            "--schedule must be one of cosine, constant, wsd; received schedule='linear'",
        ),
        (dict(decay_fraction=0.0), r"--decay_fraction must be in \(0, 1\]; received decay_fraction=0.0"),
    ],
)
def test_train_config_refuses_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)
