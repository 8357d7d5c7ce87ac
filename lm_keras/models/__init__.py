"""Models: the Transformer LM, the LSTM LM and the documented Keras LSTM."""

from lm_keras.models.documented_lstm import documented_lstm
from lm_keras.models.factory import build_model
from lm_keras.models.lstm_lm import LSTMLM
from lm_keras.models.transformer_lm import TransformerLM

__all__ = ["LSTMLM", "TransformerLM", "build_model", "documented_lstm"]
