"""The interface between the decoding loop and a model family."""

import dataclasses
from collections.abc import Callable

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Phase:
    """One `tf.while_loop` of the decoding loop.

    Attributes:
        step: `(tokens, position, state) -> (logits, state)`, as `Decoder.step`.
        end: the phase fills the positions below this (an int or scalar tensor), or
            every position left (None).
        enter: `state -> state`, applied before the phase's first step (a larger
            cache, for example), or None.
    """

    step: Callable
    end: object = None
    enter: Callable | None = None


class Decoder:
    """How one model family computes next-token logits inside the decoding loop.

    The loop (`lm_keras.generation.decode`) owns a token buffer `(B, W)` that holds
    the right-padded prompts followed by room for the new tokens. It asks the
    decoder for the logits of the first position to fill, then, after writing the
    token at each position, for the logits of the next one. A decoder carries
    whatever state makes that cheap (a key/value cache, LSTM states) in a nest of
    tensors of fixed shapes, so each phase of the loop (see `phases`) is one
    `tf.while_loop` over static shapes.

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

    def phases(self, prompt_width, reach, use_cache):
        """The loop's phases, in order: a list of `Phase`s.

        The loop runs each phase as one `tf.while_loop` over static shapes: at each
        position not yet filled and below the phase's `end`, it writes the token
        there and calls the phase's `step`. One phase of `step` by default;
        `TransformerDecoder` attends over a longer cache in each.

        Args:
            prompt_width: int or scalar tensor, the width of the padded prompts.
            reach: int or scalar tensor, the most positions the loop may fill (the
                prompts' width + the room for new tokens).
            use_cache: Python bool.
        """
        return [Phase(lambda tokens, position, state: self.step(tokens, position, state, use_cache))]

    def next_token_logits(self, token_ids):
        """`(B, V)` float32 logits of the token after each row of `token_ids` `(B, T)`,
        recomputed from the tokens (no state); rows longer than `context` keep
        their last `context` tokens."""
        raise NotImplementedError


def batch_size(tokens):
    """The batch size: a Python int when the shape is static (XLA needs it), else a tensor."""
    return tokens.shape[0] if tokens.shape[0] is not None else tf.shape(tokens)[0]
