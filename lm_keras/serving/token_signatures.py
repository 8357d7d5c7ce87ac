"""The export's signatures on token ids, for streaming: `generate_tokens` and `encode_chat`.

A stream continues a choice in pieces of a few tokens; each piece is one call of
`generate_tokens` with the prompt's ids and the ids generated so far. Sampling is a
pure function of (seed, position), so pieces give the tokens one long call gives,
greedy and seeded alike, and a server needs no state in the graph between calls
(no cache tensors to ship back and forth: a piece recomputes its prefix in one
prefill pass, which costs less than a decoding step per token). These are
functions of a `GenerationModule`, which makes them signatures.
"""

import tensorflow as tf

from lm_keras import chat_template, generation_settings
from lm_keras.generation.decode_loop import decode
from lm_keras.generation.stop_strings import StopStrings
from lm_keras.generation.text_generation import EMPTY_PROMPT, eot_id_of

# The finish reasons of `generate_tokens`: "" while a choice goes on.
STOP, LENGTH, GOING_ON = "stop", "length", ""


def generate_tokens_specs():
    """The input signature of `generate_tokens`."""
    return [
        tf.TensorSpec([None, None], tf.int32, name="prompt_ids"),
        tf.TensorSpec([None, None], tf.int32, name="generated_ids"),
        tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
        tf.TensorSpec([None], tf.int32, name="piece_tokens"),
        tf.TensorSpec([None], tf.float32, name="temperature"),
        tf.TensorSpec([None], tf.int32, name="top_k"),
        tf.TensorSpec([None], tf.float32, name="top_p"),
        tf.TensorSpec([None], tf.int64, name="seed"),
        tf.TensorSpec([None, None], tf.string, name="stop"),
    ]


def encode_chat_specs():
    """The input signature of `encode_chat`."""
    return [
        tf.TensorSpec([None, None], tf.string, name="roles"),
        tf.TensorSpec([None, None], tf.string, name="contents"),
    ]


def generate_tokens(
    module, prompt_ids, generated_ids, max_new_tokens, piece_tokens, temperature, top_k, top_p, seed, stop
):
    """The next piece of each choice: up to `piece_tokens` more tokens after its prompt and
    the tokens it has so far.

    Args:
        module: the `GenerationModule`.
        prompt_ids: int32 `(B, P)`, each row's prompt ids right-padded with -1 (what
            `tokenize` or `encode_chat` gave). A row longer than the model's context keeps
            its last `context` ids, as `generate` keeps them; an empty row is the empty
            prompt, as in `generate`.
        generated_ids: int32 `(B, G)`, the ids each row has generated so far (the
            `token_ids` of earlier pieces, in order), right-padded with -1; `G` may be 0.
        max_new_tokens: int32 `(B,)` or `(1,)`, the choice's whole budget in
            `[1, max_new_tokens_limit]`; a row never gets past it.
        piece_tokens: int32 `(B,)` or `(1,)`, >= 1: how many tokens this piece adds at most.
        temperature, top_k, top_p, seed: `(B,)` or `(1,)`, as for `generate`; a stream
            passes the same seed (>= 0) to every piece of a choice.

    Returns:
        `token_ids` int32 `(B, N)`: this piece's new ids, -1 after the row's last (a row
        that reaches the end-of-text id ends with it); `continuation` tf.string `(B,)`:
        the text of all the row's generated ids (earlier pieces' and this one's, what
        `generate` gives for the whole choice when the row has finished);
        `finish_reason` tf.string `(B,)`: "stop" (end of text), "length" (the budget is
        spent) or "" (the row goes on); `completion_tokens` int32 `(B,)`: the row's
        generated ids so far; `prompt_tokens` int32 `(B,)`: its prompt's ids.
    """
    batch = tf.shape(prompt_ids)[0]
    context = module.decoder.context
    checks = [
        tf.debugging.Assert(batch > 0, ["prompt_ids: send at least one row"]),
        module._rows_check(batch, "prompt_ids"),
        tf.debugging.Assert(
            tf.shape(generated_ids)[0] == batch, ["generated_ids must have one row per row of prompt_ids"]
        ),
        _ids_check(module, prompt_ids, "prompt_ids"),
        _ids_check(module, generated_ids, "generated_ids"),
        tf.debugging.Assert(
            tf.shape(generated_ids)[1] < module.max_new_tokens_limit,
            [f"generated_ids rows must be shorter than {module.max_new_tokens_limit} (max_new_tokens_limit)"],
        ),
    ]
    if not context:
        checks.append(
            tf.debugging.Assert(
                tf.shape(prompt_ids)[1] <= module.max_prompt_bytes,
                [
                    f"prompt_ids rows must be at most {module.max_prompt_bytes} ids long for this model, "
                    "which reads every token (the export's max_prompt_bytes, as tokens)"
                ],
            )
        )
    settings = dict(
        max_new_tokens=max_new_tokens,
        piece_tokens=piece_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
    )
    for name, value in settings.items():
        size = tf.size(value)
        checks.append(
            tf.debugging.Assert(
                (size == 1) | (size == batch), [f"{name} must hold one value, or one per row"]
            )
        )
    with tf.control_dependencies(checks):
        s = {k: tf.broadcast_to(tf.reshape(v, [-1]), [batch]) for k, v in settings.items()}  # (B,) each
    generated = tf.ragged.boolean_mask(generated_ids, generated_ids >= 0)  # (B, None)
    done = tf.cast(generated.row_lengths(), tf.int32)  # (B,)
    limit = module.max_new_tokens_limit
    checks = [
        tf.debugging.Assert(
            tf.reduce_all((s["max_new_tokens"] >= 1) & (s["max_new_tokens"] <= limit)),
            [f"max_new_tokens must be in [1, {limit}] (max_new_tokens_limit of this export)"],
        ),
        tf.debugging.Assert(
            tf.reduce_all(done < s["max_new_tokens"]),
            ["every row of generated_ids must be shorter than its max_new_tokens (a finished row is done)"],
        ),
        tf.debugging.Assert(tf.reduce_all(s["piece_tokens"] >= 1), ["piece_tokens must be >= 1"]),
        tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(s["temperature"]) & (s["temperature"] >= 0.0)),
            ["temperature must be >= 0 (0 is greedy)"],
        ),
        tf.debugging.Assert(tf.reduce_all(s["top_k"] >= 0), ["top_k must be >= 0 (0 keeps every token)"]),
        tf.debugging.Assert(
            tf.reduce_all((s["top_p"] > 0.0) & (s["top_p"] <= 1.0)),
            ["top_p must be in (0, 1] (1 keeps every token)"],
        ),
        tf.debugging.Assert(
            tf.reduce_all(s["seed"] >= 0), ["seed must be >= 0: a stream samples with one seed"]
        ),
    ]
    with tf.control_dependencies(checks):
        n = tf.minimum(s["piece_tokens"], s["max_new_tokens"] - done)  # (B,)
    prompt = _with_empty_prompt(module, tf.ragged.boolean_mask(prompt_ids, prompt_ids >= 0))  # (B, None)
    if context:
        prompt = prompt[:, -context:]
    kept = tf.cast(prompt.row_lengths(), tf.int32)  # (B,)
    stop_rows = tf.shape(stop)[0]
    checks = [
        tf.debugging.Assert(
            (stop_rows == 1) | (stop_rows == batch), ["stop must hold one row, or one per row"]
        ),
        tf.debugging.Assert(
            tf.shape(stop)[1] <= generation_settings.MAX_STOP_STRINGS,
            [f"stop: at most {generation_settings.MAX_STOP_STRINGS} strings per row"],
        ),
        tf.debugging.Assert(
            tf.reduce_all(tf.strings.length(stop) <= generation_settings.MAX_STOP_BYTES),
            [f"each stop string must be at most {generation_settings.MAX_STOP_BYTES} bytes (UTF-8)"],
        ),
    ]
    with tf.control_dependencies(checks):
        stop = tf.broadcast_to(stop, [batch, tf.shape(stop)[1]])  # (B, S)
    stops = StopStrings(module.tokenizer.detokenize, stop)
    has_stops = tf.reduce_any(tf.strings.length(stop) > 0)
    ids = tf.concat([prompt, generated], axis=1)  # (B, None): the buffer so far
    lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
    dense = ids.to_tensor(default_value=0)  # (B, L)
    room = tf.reduce_max(n)

    def run(use_cache):
        def plain_graph():
            return _decode(module, dense, lengths, n, room, s, use_cache, stop_check)

        if not (module.jit_compile and use_cache):
            return plain_graph

        def compiled():  # an XLA export's loop, as generate runs it; no stop strings in XLA
            return module._decode_compiled(
                dense, lengths, n, s["temperature"], s["top_k"], s["top_p"], s["seed"]
            )

        return lambda: tf.cond(has_stops, plain_graph, compiled)

    def stop_check(tokens, begin, end):
        # The text of every token generated so far, earlier pieces' too: a stop string
        # that straddles two pieces stops the row where it would without pieces.
        return tf.cond(has_stops, lambda: stops.check(tokens, kept, end), lambda: tf.zeros([batch], tf.bool))

    # Past the context, decoding recomputes windows anyway (see TransformerDecoder); a buffer
    # longer than the context cannot be prefilled, so it decodes uncached, on the whole
    # buffer: each position keeps its place, and with it its sampling noise.
    decoded = tf.cond(tf.reduce_max(lengths) > context, run(False), run(True)) if context else run(True)()
    new = decoded.tokens  # (B, N), -1 after each row's end
    completion = done + decoded.completion_tokens  # (B,)
    all_ids = tf.concat([generated, tf.ragged.boolean_mask(new, new >= 0)], axis=1)  # (B, None)
    text = module.tokenizer.detokenize(all_ids)  # (B,)
    # A row stopped by a stop string holds it at its end: the text ends before it.
    _, offset = stops.find(
        all_ids.to_tensor(default_value=0), tf.zeros_like(done), tf.cast(all_ids.row_lengths(), tf.int32)
    )
    text = tf.where(offset >= 0, tf.strings.substr(text, tf.zeros_like(offset), tf.maximum(offset, 0)), text)
    finish = tf.where(
        decoded.stopped, STOP, tf.where(completion >= s["max_new_tokens"], LENGTH, GOING_ON)
    )  # (B,)
    return {
        "token_ids": new,
        "continuation": _valid_utf8(text),
        "finish_reason": finish,
        "completion_tokens": completion,
        "prompt_tokens": kept,
    }


def encode_chat(module, roles, contents):
    """Conversations through the chat template recorded with the tokenizer, ready for the
    assistant's answer.

    Args:
        module: the `GenerationModule` (its tokenizer has an end-of-text id).
        roles: tf.string `(B, M)`: each conversation's roles ("system", "user",
            "assistant"), right-padded with "" (a conversation of fewer messages).
        contents: tf.string `(B, M)`: the messages' contents (each at most
            `max_prompt_bytes` bytes of UTF-8, all of a conversation together too).

    Returns:
        `token_ids` int32 `(B, N)` right-padded with -1 (`chat_template.encode_messages`'s
        ids with the generation prompt) and `lengths` int32 `(B,)`.
    """
    roles_ragged = tf.RaggedTensor.from_tensor(roles, padding="")  # (B, None)
    lengths = roles_ragged.row_lengths()
    contents_ragged = tf.RaggedTensor.from_tensor(contents, lengths=lengths)  # (B, None)
    flat = contents_ragged.flat_values
    per_row = tf.math.unsorted_segment_sum(
        tf.strings.length(flat), contents_ragged.value_rowids(), contents_ragged.nrows()
    )  # (B,)
    checks = [
        tf.debugging.Assert(tf.shape(roles)[0] > 0, ["roles: send at least one conversation"]),
        tf.debugging.Assert(
            tf.reduce_all(tf.shape(roles) == tf.shape(contents)),
            ["roles and contents must have one shape (B, M)"],
        ),
        module._rows_check(tf.shape(roles)[0], "roles"),
        tf.debugging.Assert(
            tf.reduce_all(per_row <= module.max_prompt_bytes),
            [
                f"a conversation is longer than the limit of {module.max_prompt_bytes} bytes (UTF-8); "
                "shorten it"
            ],
        ),
        tf.debugging.Assert(
            tf.reduce_all(_valid_utf8(flat) == flat), ["contents are not valid UTF-8; send UTF-8 text"]
        ),
    ]
    with tf.control_dependencies(checks):
        flat = tf.identity(flat)
    ids = chat_template.encode_messages_in_graph(
        module.tokenizer,
        roles_ragged,
        contents_ragged.with_flat_values(flat),
        add_generation_prompt=True,
    )  # (B, None)
    return {"token_ids": ids.to_tensor(default_value=-1), "lengths": tf.cast(ids.row_lengths(), tf.int32)}


def _decode(module, ids, lengths, n, room, s, use_cache, stop_check):
    # Stop strings are string ops, which XLA cannot compile: this loop is a plain graph (an XLA
    # export runs its compiled loop for pieces without stop strings that fit the context).
    return decode(
        module.decoder,
        ids,
        lengths,
        n,
        room,
        s["temperature"],
        s["top_k"],
        s["top_p"],
        s["seed"],
        use_cache=use_cache,
        unknown_id=module.unknown_id,
        eot_id=eot_id_of(module.tokenizer),
        stop_check=stop_check,
    )  # (B, room)


def _with_empty_prompt(module, prompt):
    """`prompt` (B, None) with each empty row replaced by the empty prompt's ids."""
    empty = module.tokenizer.tokenize(tf.constant([EMPTY_PROMPT])).flat_values  # (E,)
    is_empty = prompt.row_lengths() == 0  # (B,)
    fill = tf.RaggedTensor.from_row_lengths(  # (B, None): E ids in the empty rows, none elsewhere
        tf.tile(empty, [tf.reduce_sum(tf.cast(is_empty, tf.int32))]),
        tf.where(is_empty, tf.size(empty, out_type=tf.int64), 0),
    )
    return tf.concat([prompt, tf.cast(fill, prompt.dtype)], axis=1)


def _ids_check(module, ids, name):
    return tf.debugging.Assert(
        tf.reduce_all((ids >= -1) & (ids < module.vocab_size)),
        [f"{name} must be in [0, {module.vocab_size}), or -1 for padding"],
    )


def _valid_utf8(text):
    return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
