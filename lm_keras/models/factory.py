"""Builds the model a `ModelConfig` names, through its family (`lm_keras.families`)."""

from lm_keras.families import family
from lm_keras.models.documented_lstm import documented_lstm


def build_model(model_config):
    """The built (weights created) model of a `lm_keras.config.ModelConfig`.

    `model_config.model` names the family: `"transformer"` builds
    `TransformerLM.from_model_config(model_config)`, `"lstm"`
    `LSTMLM.from_model_config(model_config)`, and `"documented_lstm"` the documented
    `Sequential` (`documented_lstm_from_config`), compiled as documented. The models
    are created under the global dtype policy in force at the call.

    Raises:
        ValueError: if `model_config.vocab_size` is 0 (it comes from the tokenizer).
    """
    if model_config.vocab_size <= 0:
        raise ValueError(
            "model_config.vocab_size must be set from the tokenizer before building a model; "
            f"received vocab_size={model_config.vocab_size}"
        )
    return family(model_config.model).build(model_config)


def documented_lstm_from_config(cfg):
    """`documented_lstm(vocab_size, embedding_dim=resolved_embedding_dim, max_length=seq_len,
    lstm_units=hidden_dim, dropout_rate=dropout, dense_units=dense_units)`."""
    return documented_lstm(
        vocab_size=cfg.vocab_size,
        embedding_dim=cfg.resolved_embedding_dim,
        max_length=cfg.seq_len,
        lstm_units=cfg.hidden_dim,
        dropout_rate=cfg.dropout,
        dense_units=cfg.dense_units,
    )
