"""The decoding loop: one `tf.while_loop` over a fixed token buffer.

The same function runs in-process (traced by `generate`, XLA-compiled where that
pays) and inside the exported SavedModel (traced by the serving module), so both
produce the same tokens. Both pad its inputs to the same shapes (`bucket`).
"""

import numbers
import typing

import tensorflow as tf

from lm_keras.generation.sampling import sample_next_tokens


class Decoded(typing.NamedTuple):
    """What `decode` returns.

    Attributes:
        tokens: `(B, N)` int32, each row's new tokens, then `-1`: after its
            `max_new_tokens`, from its end-of-text id on (the id itself is not
            text), or after the token that completed a stop string.
        completion_tokens: `(B,)` int32, the tokens each row generated: its
            `max_new_tokens`, or up to and including the token that stopped it (the
            end-of-text id counts: generating it cost a step).
        stopped: `(B,)` bool, whether the row stopped at its end-of-text id or a stop
            string (True) or ran to its `max_new_tokens` (False).
    """

    tokens: tf.Tensor
    completion_tokens: tf.Tensor
    stopped: tf.Tensor


def decode(
    decoder,
    prompt_ids,
    prompt_lengths,
    max_new_tokens,
    new_width,
    temperature,
    top_k,
    top_p,
    seeds,
    use_cache=True,
    unknown_id=None,
    eot_id=None,
    stop_check=None,
):
    """Generates up to `max_new_tokens` after each prompt of a batch of different lengths.

    The prompts are right-padded into a buffer `(B, W)`, `W` >= prompt width +
    `new_width`. The loop fills positions from the shortest prompt's end (or from
    where the decoder's state must start) towards the longest prompt's end plus
    `max_new_tokens`; at each position a row still inside its own prompt keeps the
    prompt's token, and every other row takes the sampled one (keras-hub's
    approach). A row's continuation is therefore exactly what decoding it alone
    gives, and a row's draw at a position depends only on its seed and that
    position (`sample_next_tokens`), so continuing a prompt + its first k new tokens
    gives the same tokens as generating them at once.

    A row stops when it writes `eot_id` or when `stop_check` says its text holds a
    stop string; a stopped row writes no more text (its tokens are `-1` from there),
    and the loop ends as soon as every row has stopped or reached its
    `max_new_tokens`, so an early stop saves the remaining steps. The end-of-text
    check is integer arithmetic and runs under XLA; a `stop_check` works on strings,
    which XLA cannot compile, so a loop with one must run as a plain graph.

    Args:
        decoder: a `Decoder` (`decoder_for(model)`).
        prompt_ids: `(B, P)` int32 prompt ids, right-padded (any pad value); each
            row at most `decoder.context` tokens long.
        prompt_lengths: `(B,)` int32, each `>= 1`.
        max_new_tokens: scalar or `(B,)` int32, each `>= 1` and `<= new_width`.
        new_width: Python int (static, for XLA) or scalar int32 tensor: the room
            for new tokens in the buffer and the width of the result.
        temperature, top_k, top_p: `(B,)` sampling settings (see `sample_next_tokens`).
        seeds: `(B,)` int64, one seed per row.
        use_cache: Python bool: carry the decoder's state (key/value cache, LSTM
            states) or recompute the full context at every step.
        unknown_id: Python int or None: the tokenizer's unknown id, which the loop never
            writes after a prompt. It stands for every character outside the vocabulary
            and decodes to U+FFFD, so a model fine-tuned on text with unknown characters
            predicts it often, and greedy decoding repeats it; the next token is drawn
            from the tokens that are text (prompts keep their own unknown ids).
        eot_id: Python int or None: the end-of-text id; a row that writes it stops
            (None: no row stops at a token).
        stop_check: None, or a function `(tokens (B, W), begin (B,), end (B,)) -> (B,)
            bool`: whether the text of row b's `tokens[b, begin[b]:end[b]]` (its new
            tokens so far) holds a stop string (`StopStrings.check`). It is called after
            each position the loop fills with new tokens; a row it flags keeps the token
            just written (the stop string may end inside it) and stops.

    Returns:
        A `Decoded`: the new tokens `(B, new_width)` (`-1` after each row's end),
        the tokens each row generated `(B,)`, and whether it stopped `(B,)`.

    Example:

    >>> out = decode(decoder_for(model), tf.constant([[5, 6, 7], [5, 0, 0]]),
    ...              tf.constant([3, 1]), 20, 20, [0.0, 0.0], [0, 0], [1.0, 1.0],
    ...              tf.constant([1, 2], tf.int64), eot_id=0)
    >>> out.tokens.shape
    TensorShape([2, 20])
    """
    prompt_ids = tf.cast(prompt_ids, tf.int32)
    prompt_lengths = tf.cast(prompt_lengths, tf.int32)
    batch = prompt_ids.shape[0] if prompt_ids.shape[0] is not None else tf.shape(prompt_ids)[0]
    prompt_width = prompt_ids.shape[1] if prompt_ids.shape[1] is not None else tf.shape(prompt_ids)[1]
    width = decoder.buffer_width(prompt_width + new_width)
    tokens = tf.concat([prompt_ids, tf.zeros([batch, width - prompt_width], tf.int32)], axis=1)  # (B, W)
    max_new_tokens = tf.broadcast_to(tf.cast(max_new_tokens, tf.int32), tf.shape(prompt_lengths))  # (B,)
    temperature = tf.cast(temperature, tf.float32)
    top_k = tf.cast(top_k, tf.int32)
    top_p = tf.cast(top_p, tf.float32)
    seeds = tf.cast(seeds, tf.int64)

    first = decoder.first_position(tf.reduce_min(prompt_lengths), use_cache)
    # One past each row's last position: its text ends there, and its generated tokens at
    # `spent` (past an end-of-text id, which is no text). Both shrink when the row stops.
    limit = prompt_lengths + max_new_tokens  # (B,)
    end, spent = limit, limit
    stopped = tf.zeros_like(prompt_lengths, tf.bool)  # (B,)
    positions = tf.range(width)[None, :]  # (1, W)
    in_prompt = positions < prompt_lengths[:, None]  # (B, W)

    def write(position, tokens, end, spent, stopped, logits):
        if unknown_id is not None:
            is_unknown = tf.range(tf.shape(logits)[-1]) == unknown_id  # (V,)
            logits = tf.where(is_unknown[None, :], tf.constant(float("-inf"), logits.dtype), logits)
        sampled = sample_next_tokens(logits, temperature, top_k, top_p, seeds, position)  # (B,)
        keep = tf.gather(in_prompt, position, axis=1)  # (B,)
        token = tf.where(keep, tf.gather(tokens, position, axis=1), sampled)  # (B,)
        tokens = tf.where(positions == position, token[:, None], tokens)  # (B, W)
        new = ~keep & (position < end)  # (B,) rows that wrote one of their new tokens
        if eot_id is not None:
            at_eot = new & (token == eot_id)
            end = tf.where(at_eot, position, end)
            spent = tf.where(at_eot, position + 1, spent)
            stopped |= at_eot
            new &= ~at_eot
        if stop_check is not None:
            hit = tf.cond(
                tf.reduce_any(new),
                lambda: new & stop_check(tokens, prompt_lengths, tf.fill(tf.shape(end), position + 1)),
                lambda: tf.zeros_like(new),
            )  # (B,)
            end = tf.where(hit, position + 1, end)
            spent = tf.where(hit, position + 1, spent)
            stopped |= hit
        return tokens, end, spent, stopped

    logits, state = decoder.start(tokens, prompt_width, first, use_cache)
    position = first
    # One loop per phase of the decoder (for the Transformer, each attends over a longer
    # cache), each over static shapes. Every position but the last goes through a loop;
    # the last needs no logits after it. A loop runs while some row has positions left to
    # fill (the longest row's end moves in when that row stops).
    for phase in decoder.phases(prompt_width, prompt_width + new_width, use_cache):
        if phase.enter is not None:
            state = phase.enter(state)

        def more(position, tokens, end, *_, phase_end=phase.end):
            last = tf.reduce_max(end) - 1
            return position < (last if phase_end is None else tf.minimum(last, phase_end))

        def body(position, tokens, end, spent, stopped, logits, state, step=phase.step):
            tokens, end, spent, stopped = write(position, tokens, end, spent, stopped, logits)
            logits, state = step(tokens, position, state)  # logits of position + 1
            return position + 1, tokens, end, spent, stopped, logits, state

        position, tokens, end, spent, stopped, logits, state = tf.while_loop(
            more,
            body,
            (position, tokens, end, spent, stopped, logits, state),
            maximum_iterations=width,
        )
    tokens, end, spent, stopped = write(position, tokens, end, spent, stopped, logits)

    offsets = tf.range(new_width)[None, :]  # (1, N)
    index = tf.minimum(prompt_lengths[:, None] + offsets, width - 1)  # (B, N)
    new_tokens = tf.gather(tokens, index, batch_dims=1)  # (B, N)
    new_tokens = tf.where(offsets < (end - prompt_lengths)[:, None], new_tokens, -1)  # (B, N)
    return Decoded(new_tokens, spent - prompt_lengths, stopped)


def bucket(size):
    """The smallest power of two >= `size` (and >= 1): the shapes the decoding loop runs on.

    `generate` and the export pad the prompts' width, the room for new tokens and (for
    the export's XLA loop) the batch up to these sizes, so a process or a server traces
    and compiles one loop per bucket, not one per request: a few dozen programs at most
    (11 sizes up to 1024 in each dimension), where each XLA compile costs seconds. The
    padding is nearly free: the loop stops at the longest row's last new token whatever
    the room, and padded prompt columns cost one prefill pass at most twice the prompt.

    Args:
        size: a Python int, or a scalar integer tensor (then a scalar int32 tensor).

    Example:

    >>> [bucket(n) for n in (0, 1, 5, 8, 200)]
    [1, 1, 8, 8, 256]
    """
    if isinstance(size, numbers.Integral):
        return 1 << max(0, int(size) - 1).bit_length()
    # Exact integer arithmetic: spread the highest set bit of size - 1 to every lower bit.
    smeared = tf.maximum(tf.cast(size, tf.int32), 1) - 1
    for shift in (1, 2, 4, 8, 16):
        smeared = tf.bitwise.bitwise_or(smeared, tf.bitwise.right_shift(smeared, shift))
    return smeared + 1
