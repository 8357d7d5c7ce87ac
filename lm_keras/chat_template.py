"""The one chat template: messages as token ids with a loss mask, in Python and in the TF graph.

Each message is its role's header, then its content, then the end-of-text id:

    <|user|>\\n What is 2+2? <eot> <|assistant|>\\n 4 <eot>

A generation prompt is the assistant's header, `"<|assistant|>\\n"`. Headers and
contents are ordinary text, each encoded on its own (so a content never merges with
its header): a content holding "<|assistant|>\\n" or "<|endoftext|>" encodes as that
text. Only the end-of-text id, which no text encodes to, comes before a genuine header,
so a user cannot forge a turn or end one. The template is recorded in tokenizer.json
(`record()`), so it travels with the tokenizer into datasets, model directories and
exports.

TensorFlow-free at import; `encode_messages_in_graph` imports it.

Example:

>>> ids, mask = encode_messages(tok, [
...     {"role": "user", "content": "What is 2+2?"},
...     {"role": "assistant", "content": "4"},
... ])
>>> render_prompt([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
'<|user|>\\nHi<|assistant|>\\n'
"""

import numpy as np

from lm_keras.errors import UserError

NAME = "lm_keras_chat_v1"
ROLES = ("system", "user", "assistant")
HEADERS = {role: f"<|{role}|>\n" for role in ROLES}
GENERATION_PROMPT = HEADERS["assistant"]
# The role whose contents (and their end-of-text ids) the loss mask scores.
SCORED_ROLE = "assistant"


def record():
    """The template as tokenizer.json stores it: {"name", "headers", "generation_prompt"}."""
    return {"name": NAME, "headers": dict(HEADERS), "generation_prompt": GENERATION_PROMPT}


def check_record(stored, where):
    """Raises UserError unless `stored` (a tokenizer.json's "chat_template") is this template.

    Args:
        stored: the recorded dict.
        where: the file it was read from, for the message.
    """
    if stored != record():
        name = stored.get("name") if isinstance(stored, dict) else stored
        raise UserError(
            f"{where} records the chat template {name!r}, which this lm_keras does not apply "
            f"(it applies {NAME!r}); upgrade lm_keras, or save the tokenizer again"
        )


def messages_problem(messages):
    """The first problem of `messages` as one line, or None when the template can encode them.

    The data and the server name the file line or request before it.

    Args:
        messages: a non-empty list of {"role": str, "content": str} dicts.
    """
    if not isinstance(messages, (list, tuple)):
        return f"messages must be a list of {{role, content}} objects; received {type(messages).__name__}"
    if not messages:
        return "messages is empty; give at least one {role, content} message"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] must be a {{role, content}} object; received {type(message).__name__}"
        for key in ("role", "content"):
            if key not in message:
                return f"messages[{i}] has no {key!r}; each message needs a role and a content"
        role, content = message["role"], message["content"]
        if role not in HEADERS:
            return f"messages[{i}] has the unknown role {role!r}; the chat template knows {', '.join(ROLES)}"
        if not isinstance(content, str):
            return f"messages[{i}] ({role}) has a content of type {type(content).__name__}; it must be a str"
    return None


def check_messages(messages):
    """Raises UserError naming the first problem of `messages` (see `messages_problem`)."""
    problem = messages_problem(messages)
    if problem:
        raise UserError(problem)


def encode_messages(tokenizer, messages, add_generation_prompt=False):
    """The ids of a conversation under the template, and which of them the loss scores.

    Args:
        tokenizer: a `lm_keras.tokenizers.Tokenizer` with an end-of-text id.
        messages: a non-empty list of {"role": "system" | "user" | "assistant",
            "content": str} dicts, in order.
        add_generation_prompt: whether to end with the assistant's header, for the
            model to answer after.

    Returns:
        (ids, mask): ids int32 (n,); mask uint8 (n,), 1 on each assistant message's
        content and its end-of-text id, 0 on headers, other messages and the
        generation prompt.

    Raises:
        UserError: a message that is not {role, content} with a known role and a str
            content, no messages, or a tokenizer without an end-of-text id.

    Example:

    >>> ids, mask = encode_messages(tok, [{"role": "user", "content": "Hi"},
    ...                                   {"role": "assistant", "content": "Hello"}])
    >>> tok.decode(ids[mask == 1])
    'Hello'
    """
    eot_id = _eot_id(tokenizer)
    check_messages(messages)
    ids, mask = [], []
    for message in messages:
        header = tokenizer.encode(HEADERS[message["role"]])
        content = tokenizer.encode(message["content"])
        scored = int(message["role"] == SCORED_ROLE)
        ids += [header, content, np.array([eot_id], np.int32)]
        mask += [np.zeros(len(header), np.uint8), np.full(len(content) + 1, scored, np.uint8)]
    if add_generation_prompt:
        prompt = tokenizer.encode(GENERATION_PROMPT)
        ids.append(prompt)
        mask.append(np.zeros(len(prompt), np.uint8))
    return np.concatenate(ids).astype(np.int32), np.concatenate(mask).astype(np.uint8)


def render_prompt(messages, add_generation_prompt=False):
    """The text a reader sees of `messages` under the template (for logs): the end-of-text id shows as "".

    Args:
        messages: as for `encode_messages`.
        add_generation_prompt: whether to end with the assistant's header.

    Returns:
        A str: each message's header then its content.
    """
    check_messages(messages)
    text = "".join(HEADERS[m["role"]] + m["content"] for m in messages)
    return text + (GENERATION_PROMPT if add_generation_prompt else "")


def encode_messages_in_graph(tokenizer_graph, roles, contents, add_generation_prompt=False):
    """`encode_messages` as TensorFlow ops, for a batch of conversations: the same ids.

    Args:
        tokenizer_graph: a tokenizer's `in_graph()` module with an end-of-text id
            (its `eot_id` is not None).
        roles: tf.string (B, M), a RaggedTensor or a dense tensor: each conversation's
            message roles.
        contents: tf.string (B, M), the same shape: the message contents.
        add_generation_prompt: a Python bool; whether each conversation ends with the
            assistant's header.

    Returns:
        tf.RaggedTensor int32 (B, None), the ids of each conversation. An unknown role
        or a conversation without messages raises tf.errors.InvalidArgumentError when
        the ops run (naming the known roles).
    """
    import tensorflow as tf

    eot_id = getattr(tokenizer_graph, "eot_id", None)
    if eot_id is None:
        raise UserError(
            "the tokenizer has no end-of-text id, which the chat template ends each message with; "
            "use tokenizer.with_end_of_text().in_graph()"
        )
    roles, contents = (
        x
        if isinstance(x, tf.RaggedTensor)
        else tf.RaggedTensor.from_tensor(tf.convert_to_tensor(x, tf.string))
        for x in (roles, contents)
    )
    flat_roles, flat_contents = roles.flat_values, contents.flat_values  # (N,) each
    same_shape = tf.debugging.assert_equal(
        roles.row_splits, contents.row_splits, message="roles and contents must have the same shape (B, M)"
    )
    matches = tf.equal(flat_roles[:, None], tf.constant(ROLES)[None, :])  # (N, R)
    known = tf.reduce_any(matches, axis=1)  # (N,)
    first_unknown = tf.gather(flat_roles, tf.argmin(tf.cast(known, tf.int32)))
    role_check = tf.debugging.Assert(
        tf.reduce_all(known),
        [f"the chat template knows the roles {', '.join(ROLES)}; received the unknown role", first_unknown],
    )
    nonempty = tf.debugging.assert_positive(
        roles.row_lengths(), message="every conversation needs at least one message"
    )
    with tf.control_dependencies([same_shape, role_check, nonempty]):
        role_index = tf.argmax(tf.cast(matches, tf.int32), axis=1)  # (N,)
    headers = tf.gather(tf.constant([HEADERS[r] for r in ROLES]), role_index)  # (N,)
    header_ids = tokenizer_graph.tokenize(headers)  # (N, None)
    content_ids = tokenizer_graph.tokenize(flat_contents)  # (N, None)
    eot = tf.RaggedTensor.from_row_lengths(  # (N, 1)
        tf.fill(tf.shape(flat_contents), tf.constant(eot_id, tf.int32)), tf.ones_like(roles.value_rowids())
    )
    message_ids = tf.concat([header_ids, content_ids, eot], axis=1)  # (N, None)
    ids = tf.RaggedTensor.from_row_splits(message_ids, roles.row_splits).merge_dims(1, 2)  # (B, None)
    if add_generation_prompt:
        prompt = tokenizer_graph.tokenize(tf.constant([GENERATION_PROMPT]))  # (1, None)
        batch = ids.nrows()
        prompts = tf.RaggedTensor.from_row_lengths(  # (B, P)
            tf.tile(prompt.flat_values, [batch]), tf.fill([batch], prompt.row_lengths()[0])
        )
        ids = tf.concat([ids, prompts], axis=1)  # (B, None)
    return ids


def _eot_id(tokenizer):
    eot_id = getattr(tokenizer, "eot_id", None)
    if eot_id is None:
        raise UserError(
            f"the {tokenizer.kind} tokenizer has no end-of-text id, which the chat template ends each "
            "message with (it was saved before lm_keras had one); use tokenizer.with_end_of_text()"
        )
    return int(eot_id)
