"""The interface between the decoding loop and a model family."""

import tensorflow as tf


class Decoder:
    """How one model family computes next-token logits inside the decoding loop.

    The loop (`lm_keras.generation.decode`) owns a token buffer `(B, W)` that holds
    the right-padded prompts followed by room for the new tokens. It asks the
    decoder for the logits of the first position to fill, then, after writing the
    token at each position, for the logits of the next one. A decoder carries
    whatever state makes that cheap (a key/value cache, LSTM states) in a nest of
    tensors of fixed shapes, so the loop is one `tf.while_loop` over static shapes.

    Subclasses: `TransformerDecoder`, `RecurrentDecoder`, `WindowDecoder`; pick
    one with `decoder_for(model)`.

    Attributes:
        model: the Keras model.
        context: the most tokens the model sees at once, or None for no limit. A
            longer prompt keeps its last `context` tokens.
    """

    context = None

    def __init__(self, model):
        self.model = model

    def buffer_width(self, width):
        """The buffer width the decoder needs to hold `width` tokens (prompt + new)."""
        return width

    def first_position(self, shortest_prompt, use_cache):
        """The first position the loop fills (scalar int32); positions still inside
        a row's prompt keep the prompt's token."""
        return shortest_prompt

    def start(self, tokens, prompt_width, position, use_cache):
        """(logits `(B, V)` of the token at `position`, state) before the loop.

        Args:
            tokens: `(B, W)` int32 buffer; positions `< position` hold every row's
                prompt (rows are right-padded to `prompt_width`).
            prompt_width: int or scalar tensor, the width of the padded prompts.
            position: scalar int32, the result of `first_position`.
            use_cache: Python bool.
        """
        raise NotImplementedError

    def step(self, tokens, position, state, use_cache):
        """(logits `(B, V)` of the token at `position + 1`, new state), once the buffer
        holds its token at `position`."""
        raise NotImplementedError

    def next_token_logits(self, token_ids):
        """`(B, V)` float32 logits of the token after each row of `token_ids` `(B, T)`,
        recomputed from the tokens (no state); rows longer than `context` keep
        their last `context` tokens."""
        raise NotImplementedError


def batch_size(tokens):
    """The batch size: a Python int when the shape is static (XLA needs it), else a tensor."""
    return tokens.shape[0] if tokens.shape[0] is not None else tf.shape(tokens)[0]


def decoder_for(model, pad_id=0):
    """The `Decoder` of a model: `TransformerDecoder` for `TransformerLM`,
    `RecurrentDecoder` for `LSTMLM`, `WindowDecoder` for the documented LSTM
    (a model without `call_with_cache` whose input is a fixed window).

    Args:
        model: a built Keras language model.
        pad_id: the token that left-pads short prompts for the windowed
            documented LSTM (the newline's id; see `WindowDecoder`).
    """
    from lm_keras.generation.recurrent_decoder import RecurrentDecoder
    from lm_keras.generation.transformer_decoder import TransformerDecoder
    from lm_keras.generation.window_decoder import WindowDecoder
    from lm_keras.models import LSTMLM, TransformerLM

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
