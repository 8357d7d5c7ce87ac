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
