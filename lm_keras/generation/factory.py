"""`decoder_for`: the `Decoder` of a model's family."""

from lm_keras.generation.recurrent_decoder import RecurrentDecoder
from lm_keras.generation.transformer_decoder import TransformerDecoder
from lm_keras.generation.window_decoder import WindowDecoder
from lm_keras.models import LSTMLM, TransformerLM


def decoder_for(model, pad_id=0):
    """The `Decoder` of a model: `TransformerDecoder` for `TransformerLM`,
    `RecurrentDecoder` for `LSTMLM`, `WindowDecoder` for the documented LSTM
    (a model without `call_with_cache` whose input is a fixed window).

    Args:
        model: a built Keras language model.
        pad_id: the token that left-pads short prompts for the windowed
            documented LSTM (the newline's id; see `WindowDecoder`).
    """
    if isinstance(model, TransformerLM):
        return TransformerDecoder(model)
    if isinstance(model, LSTMLM):
        return RecurrentDecoder(model)
    shape = getattr(model, "input_shape", None) if not hasattr(model, "call_with_cache") else None
    if shape is not None and len(shape) == 2 and shape[1]:
        return WindowDecoder(model, pad_id=pad_id)
    raise TypeError(
        "model must be a TransformerLM, an LSTMLM or the documented LSTM (a fixed-window "
        f"Sequential); received {type(model).__name__}"
    )
