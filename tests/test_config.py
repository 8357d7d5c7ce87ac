"""The config dataclasses: each field's check names the flag and what it received."""

import pytest

from lm_keras.config import Config, ModelConfig, TrainConfig


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(mlp="relu"), "--mlp must be one of gelu, gelu_tanh, relu2, swiglu; received mlp='relu'"),
        (dict(norm_epsilon=0.0), "--norm_epsilon must be > 0; received norm_epsilon=0.0"),
        (dict(norm="rms"), "--norm must be one of layernorm, rmsnorm; received norm='rms'"),
        (dict(logit_softcap=-2.0), r"--logit_softcap must be >= 0 \(0 is off\); received logit_softcap=-2.0"),
        (
            dict(position="rope", hidden_dim=12, num_heads=4),
            r"--position=rope needs heads of even width \(--hidden_dim / --num_heads\); received "
            "hidden_dim=12, num_heads=4",
        ),
    ],
)
def test_model_config_refuses_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)


def test_defaults_are_the_articles_gpt():
    model = ModelConfig()
    assert (model.mlp, model.norm_epsilon, model.norm, model.position) == (
        "gelu",
        1e-5,
        "layernorm",
        "learned",
    )
    assert (model.qk_norm, model.tie_embeddings, model.zero_init_residual, model.logit_softcap) == (
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
