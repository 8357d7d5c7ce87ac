"""Task examples in JSON Lines: reading and checking records, and turning them into ids and a loss mask.

A .jsonl file holds one JSON object per line (blank lines are skipped), all of one format,
which its first record sets:

- `{"text": ...}`: a document; its ids then the end-of-text id, every one scored (mask 1);
- `{"prompt": ..., "completion": ...}`: the prompt's ids (mask 0), then the completion's
  ids and the end-of-text id (mask 1), each text encoded on its own;
- `{"messages": [{"role": ..., "content": ...}, ...]}`: the chat template's ids and mask
  (`lm_keras.chat_template.encode_messages`: 1 on the assistant's contents and their
  end-of-text ids). A conversation needs at least one assistant message.

Other fields of a record are ignored. Every problem is a `UserError` of one line that
starts with `file:line` and says the fix. TensorFlow-free: `prepare` reads examples
without it.

Example:

    for record, fmt in read_examples("train.jsonl"):     # each checked, one format per file
        ids, mask = encode_record(tokenizer, record.value, fmt)
        prompt, reference = prompt_and_reference(record, fmt)  # for scoring by generation
"""

import dataclasses
import json

import numpy as np

from lm_keras import chat_template
from lm_keras.errors import UserError

SUFFIX = ".jsonl"
# Format name -> the fields its records need.
FORMATS = {"text": ("text",), "prompt_completion": ("prompt", "completion"), "messages": ("messages",)}
_SHAPES = '{"text": ...}, {"prompt": ..., "completion": ...} or {"messages": [{"role": ..., "content": ...}]}'


def is_jsonl(spec):
    """Whether a corpus spec names a JSON Lines file of examples (it ends in .jsonl)."""
    return str(spec).lower().endswith(SUFFIX)


@dataclasses.dataclass(frozen=True)
class Record:
    """One line of a .jsonl file, parsed.

    Attributes:
        value: the parsed JSON value (checked by `check_record`).
        name: the file's name as the messages show it.
        line: its line number (1-based).
        data: the line's bytes, newline included.
        next: the byte offset of the line after it.
    """

    value: object
    name: str
    line: int
    data: bytes
    next: int

    @property
    def where(self):
        return f"{self.name}:{self.line}"


def read_records(path, name=None, start=0, line=1, on_bytes=None):
    """Yields the `Record` of each non-blank line of a .jsonl file, streaming, from byte `start` on.

    Args:
        path: the file.
        name: the file's name in messages (default: the path).
        start: the byte offset to start at (a line's start).
        line: the line number of the line at `start`.
        on_bytes: called with every line's bytes, blank ones included (to hash the file).

    Raises:
        UserError: a line that is not UTF-8 or not JSON, naming `file:line`.
    """
    name = str(path) if name is None else name
    with open(path, "rb") as f:
        f.seek(start)
        position = start
        for data in iter(f.readline, b""):
            position += len(data)
            if on_bytes is not None:
                on_bytes(data)
            where = f"{name}:{line}"
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(
                    f"{where}: not UTF-8 (byte {e.start} of the line is 0x{data[e.start]:02x}): "
                    "save the file as UTF-8"
                ) from None
            if text.strip():
                try:
                    value = json.loads(text.rstrip("\r\n"))
                except json.JSONDecodeError as e:
                    raise UserError(
                        f"{where}: malformed JSON ({e.msg} at column {e.colno}): write one JSON object "
                        "per line"
                    ) from None
                yield Record(value, name, line, data, position)
            line += 1


def format_of(record):
    """The format a record's fields say (see `FORMATS`), checking only that it is one object of one format.

    Raises:
        UserError: the record is not an object, holds none of the formats' fields, or
            fields of two formats.
    """
    value = record.value
    if not isinstance(value, dict):
        raise UserError(
            f"{record.where}: the record is a JSON {_json_type(value)}, not an object: write each line "
            f"as {_SHAPES}"
        )
    found = [fmt for fmt, fields in FORMATS.items() if any(field in value for field in fields)]
    if not found:
        raise UserError(
            f"{record.where}: the record has none of the fields text, prompt/completion or messages "
            f"(it has {', '.join(sorted(value)) or 'no fields'}): write it as {_SHAPES}"
        )
    if len(found) > 1:
        raise UserError(
            f"{record.where}: the record has the fields of two formats ({' and '.join(found)}): give each "
            "record one format"
        )
    return found[0]


def check_record(record, expected=None, set_by=None):
    """Checks a record; returns its format.

    Args:
        record: a `Record`.
        expected: the file's format (set by its first record), or None for the first.
        set_by: the `file:line` whose record set `expected`, for the message.

    Returns:
        The record's format name (a key of `FORMATS`).

    Raises:
        UserError: naming `file:line` and the fix, for a record that is not an object, is
            of another format than the file's, misses a field or has an empty one (or
            one that is not a string), or holds messages the chat template refuses.
    """
    fmt = format_of(record)
    where, value = record.where, record.value
    if expected is not None and fmt != expected:
        origin = f" (set by {set_by})" if set_by else ""
        raise UserError(
            f"{where}: a {fmt} record among {expected} records{origin}: give one format per file, and "
            "put the others in a file of their own"
        )
    if fmt == "messages":
        problem = chat_template.messages_problem(value["messages"])
        if problem:
            raise UserError(f"{where}: {problem}")
        for i, message in enumerate(value["messages"]):
            if not message["content"]:
                raise UserError(
                    f"{where}: messages[{i}] ({message['role']}) has an empty content: give it text, or "
                    "leave the message out"
                )
        if not any(m["role"] == chat_template.SCORED_ROLE for m in value["messages"]):
            raise UserError(
                f"{where}: the messages hold no {chat_template.SCORED_ROLE} message, so nothing in them "
                "is learned: end the conversation with the assistant's reply"
            )
        return fmt
    for field in FORMATS[fmt]:
        if field not in value:
            raise UserError(
                f"{where}: the field {field!r} is missing: every {fmt} record needs "
                f"{' and '.join(repr(f) for f in FORMATS[fmt])}"
            )
        if not isinstance(value[field], str):
            raise UserError(
                f"{where}: the field {field!r} is a JSON {_json_type(value[field])}, not a string: give "
                "it text"
            )
        if not value[field]:
            raise UserError(f"{where}: the field {field!r} is empty: give it text, or leave the record out")
    return fmt


def read_examples(path, name=None):
    """Yields (`Record`, format) for every record of a .jsonl file, each checked (see `check_record`).

    Args:
        path: the file.
        name: its name in messages (default: the path).

    Raises:
        UserError: the first bad line, naming `file:line`; a file with no records.
    """
    fmt, set_by = None, None
    for record in read_records(path, name):
        fmt = check_record(record, fmt, set_by)
        set_by = set_by or record.where
        yield record, fmt
    if fmt is None:
        raise UserError(f"{name or path} holds no examples: give a file of one JSON object per line")


def prompt_and_reference(record, fmt):
    """What a model is asked and what it should answer, for scoring an example by generation.

    Args:
        record: a checked `Record`.
        fmt: its format.

    Returns:
        (prompt, reference): for prompt_completion, the prompt text and the completion;
        for messages, the messages before the last one (a list) and the last one's content.

    Raises:
        UserError: a text record (it has no answer to score), or messages that do not end
            with the assistant's reply.
    """
    value = record.value
    if fmt == "prompt_completion":
        return value["prompt"], value["completion"]
    if fmt == "messages" and value["messages"][-1]["role"] == chat_template.SCORED_ROLE:
        return value["messages"][:-1], value["messages"][-1]["content"]
    if fmt == "messages":
        raise UserError(
            f"{record.where}: the messages end with a {value['messages'][-1]['role']} message, so there "
            "is no reply to score: end each conversation with the assistant's reply"
        )
    raise UserError(
        f"{record.where}: a text record has no answer to score: give prompt/completion or messages records"
    )


def record_text(value, fmt):
    """The text a checked record's ids encode (the chat headers included): a tokenizer learns from it."""
    if fmt == "text":
        return value["text"]
    if fmt == "prompt_completion":
        return value["prompt"] + value["completion"]
    return chat_template.render_prompt(value["messages"])


def template_text():
    """Every chat header and the generation prompt, so a char vocabulary holds the template's characters."""
    return "".join(chat_template.HEADERS.values()) + chat_template.GENERATION_PROMPT


def encode_record(tokenizer, value, fmt):
    """A checked record's ids and loss mask.

    Args:
        tokenizer: a `lm_keras.tokenizers.Tokenizer` with an end-of-text id.
        value: the record (a dict checked by `check_record`).
        fmt: its format.

    Returns:
        (ids int32 (n,), mask uint8 (n,)), ending with the end-of-text id (mask 1 there).

    Example:

    >>> tok = tokenizers.train("char", "abc")           # ids a=1 b=2 c=3, eot 4
    >>> encode_record(tok, {"prompt": "ab", "completion": "c"}, "prompt_completion")
    (array([1, 2, 3, 4], dtype=int32), array([0, 0, 1, 1], dtype=uint8))
    """
    eot_id = tokenizer.eot_id
    if eot_id is None:
        raise UserError(
            f"the {tokenizer.kind} tokenizer has no end-of-text id, which ends every example; "
            "use tokenizer.with_end_of_text()"
        )
    end = np.array([eot_id], np.int32)
    if fmt == "messages":
        return chat_template.encode_messages(tokenizer, value["messages"], add_generation_prompt=False)
    if fmt == "text":
        ids = np.concatenate([tokenizer.encode(value["text"]), end])
        return ids.astype(np.int32), np.ones(len(ids), np.uint8)
    prompt, completion = tokenizer.encode(value["prompt"]), tokenizer.encode(value["completion"])
    ids = np.concatenate([prompt, completion, end]).astype(np.int32)
    mask = np.concatenate([np.zeros(len(prompt), np.uint8), np.ones(len(completion) + 1, np.uint8)])
    return ids, mask


def encode_file(path, tokenizer, name=None):
    """Every example of a small .jsonl file encoded in memory: a split the example pipelines take.

    For scoring a test file with a model's own tokenizer, without preparing a dataset.

    Args:
        path: the .jsonl file.
        tokenizer: a tokenizer with an end-of-text id (`tokenizer.with_end_of_text()`).
        name: the file's name in messages (default: the path).

    Returns:
        A dict: "ids" int32 (N,), "mask" uint8 (N,), "starts" int64 (examples,),
        "eot_id", "format", "where" (each example's `file:line`) and "longest" ({tokens,
        at}), which `check_example_lengths` reads.

    Raises:
        UserError: a bad record (naming `file:line`), or no records.
    """
    ids, masks, starts, where, fmt, length = [], [], [], [], None, 0
    longest = {"tokens": 0, "at": ""}
    for record, fmt in read_examples(path, name):
        example, mask = encode_record(tokenizer, record.value, fmt)
        starts.append(length)
        length += len(example)
        ids.append(example)
        masks.append(mask)
        where.append(record.where)
        if len(example) > longest["tokens"]:
            longest = {"tokens": len(example), "at": record.where}
    return {
        "ids": np.concatenate(ids).astype(np.int32),
        "mask": np.concatenate(masks).astype(np.uint8),
        "starts": np.array(starts, np.int64),
        "eot_id": int(tokenizer.eot_id),
        "format": fmt,
        "where": where,
        "longest": longest,
    }


def check_example_lengths(dataset, seq_len):
    """Refuses a prepared dataset of examples whose longest example does not fit a window.

    An example of N tokens (its end-of-text id included) needs N - 1 targets after its
    first token: a window of seq_len + 1 tokens holds it when N <= seq_len + 1. No
    example is ever cut to fit.

    Args:
        dataset: a `PreparedDataset` (one of a text corpus passes), or the examples of
            `encode_file`.
        seq_len: the model's context T.

    Raises:
        UserError: "FILE:LINE: example of N tokens does not fit --seq_len=T (+1 target);
            shorten it or raise --seq_len", for the longest example.
    """
    if isinstance(dataset, dict):
        longest = dataset["longest"]
    else:
        examples = dataset.manifest.get("examples")
        if not examples:
            return
        longest = examples["longest"]
    if longest["tokens"] > seq_len + 1:
        raise UserError(
            f"{longest['at']}: example of {longest['tokens']} tokens does not fit --seq_len={seq_len} "
            "(+1 target); shorten it or raise --seq_len"
        )


def _json_type(value):
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
