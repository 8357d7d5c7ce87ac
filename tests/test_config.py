"""The config dataclasses: each field's check names the flag and what it received."""

import pytest

from lm_keras.config import Config, ModelConfig


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(mlp="relu"), "--mlp must be one of gelu, gelu_tanh; received mlp='relu'"),
        (dict(norm_epsilon=0.0), "--norm_epsilon must be > 0; received norm_epsilon=0.0"),
    ],
)
def test_model_config_refuses_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)


def test_defaults_are_the_articles_gpt():
    model = ModelConfig()
    assert (model.mlp, model.norm_epsilon) == ("gelu", 1e-5)
    # A config.json written before a field existed reads back with the field's default.
    assert Config.from_dict({"model": {"hidden_dim": 64}}).model == ModelConfig(hidden_dim=64)
