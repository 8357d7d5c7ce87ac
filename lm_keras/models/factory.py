"""Builds the model a `ModelConfig` names."""

from lm_keras.models.documented_lstm import documented_lstm
from lm_keras.models.lstm_lm import LSTMLM
from lm_keras.models.transformer_lm import TransformerLM


def build_model(model_config):
    """The built (weights created) model of a `lm_keras.config.ModelConfig`.

    `model_config.model` picks the family:

    - `"transformer"`: `TransformerLM(vocab_size, num_layers, num_heads, hidden_dim,
      resolved_mlp_dim, seq_len, dropout, use_bias, position)`.
    - `"lstm"`: `LSTMLM(vocab_size, resolved_embedding_dim, hidden_dim, num_layers,
      dropout)`.
    - `"documented_lstm"`: `documented_lstm(vocab_size,
      embedding_dim=resolved_embedding_dim, max_length=seq_len, lstm_units=hidden_dim,
      dropout_rate=dropout, dense_units=dense_units)`, compiled as documented.

    The models are created under the global dtype policy in force at the call.

    Raises:
        ValueError: if `model_config.vocab_size` is 0 (it comes from the tokenizer).
    """
    cfg = model_config
    if cfg.vocab_size <= 0:
        raise ValueError(
            "model_config.vocab_size must be set from the tokenizer before building a model; "
            f"received vocab_size={cfg.vocab_size}"
        )
    if cfg.model == "transformer":
        return TransformerLM.from_model_config(cfg)
    if cfg.model == "lstm":
        return LSTMLM.from_model_config(cfg)
    if cfg.model == "documented_lstm":
        return documented_lstm(
            vocab_size=cfg.vocab_size,
            embedding_dim=cfg.resolved_embedding_dim,
            max_length=cfg.seq_len,
            lstm_units=cfg.hidden_dim,
            dropout_rate=cfg.dropout,
            dense_units=cfg.dense_units,
        )
    raise ValueError(f"model must be one of transformer, lstm, documented_lstm; received model={cfg.model!r}")
