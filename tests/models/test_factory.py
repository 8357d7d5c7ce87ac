import pytest

from lm_keras.config import ModelConfig
from lm_keras.models import LSTMLM, TransformerLM, build_model


@pytest.mark.parametrize("kind, cls", [("transformer", TransformerLM), ("lstm", LSTMLM)])
def test_builds_the_named_family_with_weights(kind, cls):
    model = build_model(ModelConfig(model=kind, vocab_size=5, num_layers=1, num_heads=2, hidden_dim=8))
    assert type(model) is cls and model.built and model.count_params() > 0


def test_documented_lstm_is_a_compiled_sequential():
    model = build_model(ModelConfig(model="documented_lstm", vocab_size=5, hidden_dim=8, dense_units=4))
    assert model.name == "documented_lstm" and model.compiled


def test_needs_the_vocab_size():
    with pytest.raises(
        ValueError, match="vocab_size must be set from the tokenizer .* received vocab_size=0"
    ):
        build_model(ModelConfig(model="transformer"))
