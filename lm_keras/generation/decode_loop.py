"""The decoding loop: one `tf.while_loop` over a fixed token buffer.

The same function runs in-process (traced by `generate`, XLA-compiled where that
pays) and inside the exported SavedModel (traced by the serving module), so both
produce the same tokens. Both pad its inputs to the same shapes (`bucket`).
"""

import numbers

import tensorflow as tf

from lm_keras.generation.sampling import sample_next_tokens


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
):
    """Generates `max_new_tokens` after each prompt of a batch of different lengths.

    The prompts are right-padded into a buffer `(B, W)`, `W` >= prompt width +
    `new_width`. The loop fills positions from the shortest prompt's end (or from
    where the decoder's state must start) to the longest prompt's end plus
    `max_new_tokens`; at each position a row still inside its own prompt keeps the
    prompt's token, and every other row takes the sampled one (keras-hub's
    approach). A row's continuation is therefore exactly what decoding it alone
    gives.

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

    Returns:
        `(B, new_width)` int32: row b's new tokens, then `-1` after its
        `max_new_tokens`.

    Example:

    >>> ids = decode(decoder_for(model), tf.constant([[5, 6, 7], [5, 0, 0]]),
    ...              tf.constant([3, 1]), 20, 20, [0.0, 0.0], [0, 0], [1.0, 1.0],
    ...              tf.constant([1, 2], tf.int64))
    >>> ids.shape
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
    stop = tf.reduce_max(prompt_lengths + max_new_tokens)  # one past the last position to fill
    positions = tf.range(width)[None, :]  # (1, W)
    in_prompt = positions < prompt_lengths[:, None]  # (B, W)

    def write(position, tokens, logits):
        if unknown_id is not None:
            is_unknown = tf.range(tf.shape(logits)[-1]) == unknown_id  # (V,)
            logits = tf.where(is_unknown[None, :], tf.constant(float("-inf"), logits.dtype), logits)
        sampled = sample_next_tokens(logits, temperature, top_k, top_p, seeds, position)  # (B,)
        keep = tf.gather(in_prompt, position, axis=1)  # (B,)
        token = tf.where(keep, tf.gather(tokens, position, axis=1), sampled)  # (B,)
        return tf.where(positions == position, token[:, None], tokens)  # (B, W)

    logits, state = decoder.start(tokens, prompt_width, first, use_cache)
    position = first
    # One loop per phase of the decoder (for the Transformer, each attends over a longer
    # cache), each over static shapes. Every position but the last goes through a loop;
    # the last needs no logits after it.
    for phase in decoder.phases(prompt_width, prompt_width + new_width, use_cache):
        if phase.enter is not None:
            state = phase.enter(state)
        limit = stop - 1 if phase.end is None else tf.minimum(stop - 1, phase.end)

        def body(position, tokens, logits, state, step=phase.step):
            tokens = write(position, tokens, logits)
            logits, state = step(tokens, position, state)  # logits of position + 1
            return position + 1, tokens, logits, state

        position, tokens, logits, state = tf.while_loop(
            lambda position, *_, limit=limit: position < limit,
            body,
            (position, tokens, logits, state),
            maximum_iterations=width,
        )
    tokens = write(position, tokens, logits)

    offsets = tf.range(new_width)[None, :]  # (1, N)
    index = tf.minimum(prompt_lengths[:, None] + offsets, width - 1)  # (B, N)
    new_tokens = tf.gather(tokens, index, batch_dims=1)  # (B, N)
    return tf.where(offsets < max_new_tokens[:, None], new_tokens, -1)


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
