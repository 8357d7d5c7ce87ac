"""`decoder_for`: the `Decoder` of a model's family."""

from lm_keras.families import family_of


def decoder_for(model, pad_id=0):
    """The `Decoder` of a model's family (`lm_keras.families`): `TransformerDecoder` for
    `TransformerLM`, `RecurrentDecoder` for `LSTMLM`, `WindowDecoder` for the documented LSTM.

    Args:
        model: a built Keras language model.
        pad_id: the token that left-pads short prompts for the windowed
            documented LSTM (the newline's id; see `WindowDecoder`).

    Raises:
        TypeError: a model of no family.
    """
    return family_of(model).decoder(model, pad_id=pad_id)
