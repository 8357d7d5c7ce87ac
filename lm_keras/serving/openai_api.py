"""OpenAI's HTTP API (completions, chat completions, models) over an export's signatures.

TensorFlow-free at import: the server hands `OpenAIAPI` a function that runs a
signature (`SessionModel.run`, or the request batcher's), and this module turns
OpenAI's JSON requests into signature calls and their outputs into OpenAI's
answers, chunks and error objects. The wire format follows OpenAI's API
reference, as the `openai` Python package reads it:

- `GET /v1/models`: `{"object": "list", "data": [{"id", "object": "model",
  "created", "owned_by"}]}`.
- `POST /v1/completions`: `model`, `prompt` (a string or a list of strings),
  `max_tokens`, `temperature`, `top_p`, `n`, `stop` (a string or up to 4),
  `seed`, `stream`, `stream_options.include_usage`; other fields are ignored.
  The answer: `{"id", "object": "text_completion", "created", "model",
  "choices": [{"index", "text", "finish_reason", "logprobs": null}], "usage"}`.
- `POST /v1/chat/completions`: `messages` (`role`, `content`), rendered by the
  chat template recorded in the export (its `encode_chat` signature), and the
  same settings; choices hold `message` `{"role": "assistant", "content"}`.
- `stream: true` answers server-sent events: `data: {chunk}` and a blank line
  per chunk (`text_completion` chunks, or `chat.completion.chunk` with a
  `delta`), the last chunk of each choice with its `finish_reason`, then
  `data: [DONE]`.
- Errors: `{"error": {"message", "type", "param", "code"}}` with a 4xx status
  for every mistake of the client (`APIError`).

Choice `i` of a request (prompt `i // n`, sample `i % n`) samples with `seed + i`,
as `lm_keras.generation.generate` samples its prompt `i` with `seed + i`; without a
seed the server draws one per request, so a streamed choice's pieces share it.
"""

import collections
import dataclasses
import json
import math
import random
import secrets
import threading
import time

import numpy as np

from lm_keras import generation_settings

# OpenAI's own limits, where it has them: 4 stop strings, n up to 128 (ours is lower: every
# choice is one row of a call, and an export takes at most max_prompts_per_request rows).
MAX_STOP_STRINGS = 4
MAX_N = 16
# OpenAI's defaults: a completion without max_tokens gets 16 tokens; sampling at temperature 1.
DEFAULT_COMPLETION_TOKENS = 16
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
# Streamed choices advance in pieces, each one call of generate_tokens. The first piece is one
# token: the time to the first token is that of a one-token call. The next ones are sized from
# what a call costs on this server (a fixed cost c, which recomputes the prefix and waits for the
# batcher, and t per token, fitted over its recent pieces): long enough that c is at most
# PIECE_OVERHEAD of the piece, at most MAX_PIECE_SECONDS of decoding (a reader sees text that
# often, and a client that hangs up frees its row within that) and MAX_PIECE_TOKENS tokens.
# Before the server has a fit, each piece is twice the last.
PIECE_OVERHEAD = 0.1
MAX_PIECE_SECONDS = 0.25
MAX_PIECE_TOKENS = 256
# The replacement character a text holds where its last token ends inside a UTF-8 sequence.
_REPLACEMENT = "\ufffd"
ROLES = ("system", "user", "assistant")


class OpenAIAPI:
    """OpenAI's completions, chat completions and models endpoints over an export.

    Completions run the `generate` signature (text in, text out, as TF Serving's
    clients call it); chat and every streamed answer run `generate_tokens`, a piece
    at a time: the first piece is one token, the next ones as long as keeps a call's
    fixed cost small (see `PIECE_OVERHEAD`). A choice's text is what the piece that ended it gives for all
    its tokens, so a streamed answer equals the unstreamed one; the text sent before
    is the part no later token can change (`visible_text`).

    Args:
        run: function (signature name, {input: numpy array}, wait=True) ->
            {output: numpy array}; it raises `APIError` for a request the graph
            refuses. The server's request batcher, so that concurrent pieces of
            different streams run as one call; the only stream running passes
            `wait=False` (it expects no company, so its pieces skip the batch timeout).
        signatures: the export's signature names -> objects with `inputs` and
            `outputs` (dicts by name), as `SessionModel.signatures`.
        model_name: the name clients send as `model` (404 for another).
        max_n: the most choices (prompts x `n`) in one request.

    Example:

    >>> api = OpenAIAPI(batcher.run, model.signatures, "shakespeare")
    >>> status, answer = api.complete(b'{"model": "shakespeare", "prompt": "ROMEO:"}', chat=False)
    >>> answer["choices"][0]["text"]
    '...'
    """

    def __init__(self, run, signatures, model_name, max_n=MAX_N):
        self._run = run
        self.model_name = model_name
        self.max_n = int(max_n)
        self.created = int(time.time())
        generate = signatures["generate"]
        self._generate_inputs = set(generate.inputs)
        self._generate_outputs = set(generate.outputs)
        self.can_stream = "generate_tokens" in signatures
        self.can_chat = self.can_stream and "encode_chat" in signatures
        # Streams between their first piece and their end (or their client's leaving), and
        # pieces run, for tests and benchmarks.
        self.active_streams = 0
        self.pieces_run = 0
        self._lock = threading.Lock()
        self._sizer = _PieceSizer()

    def models(self):
        """(200, the answer to `GET /v1/models`)."""
        return 200, models_answer(self.model_name, self.created)

    def parse(self, body, chat):
        """The request in `body`, checked against what this export can do.

        Raises:
            APIError: a malformed request (400), another model's name (404), or
                what this export cannot do (400: chat without a chat template,
                streaming without `generate_tokens`).
        """
        request = parse_request(body, chat, max_n=self.max_n)
        if request.model != self.model_name:
            raise APIError(
                404,
                f"The model `{request.model}` does not exist; this server serves `{self.model_name}`",
                param="model",
                code="model_not_found",
            )
        if chat and not self.can_chat:
            raise APIError(
                400,
                "this export has no chat template (no encode_chat signature); re-export the model with "
                "this version of lm_keras, from a tokenizer with an end-of-text id",
                param="messages",
            )
        if (request.stream or chat) and not self.can_stream:
            raise APIError(
                400,
                "this export cannot stream (no generate_tokens signature); re-export it with this version "
                "of lm_keras",
                param="stream",
            )
        return request

    def complete(self, request):
        """(200, the whole answer) to an unstreamed request."""
        answer = Answer(request, self.model_name)
        seeds = row_seeds(request)
        if request.chat:
            prompt_ids = np.repeat(self._chat_ids(request), request.n, axis=0)
            out = self._piece(request, prompt_ids, [[] for _ in seeds], seeds, request.max_tokens)
            texts = _strings(out["continuation"])
            reasons = _strings(out["finish_reason"])
            return 200, answer.complete(
                texts, reasons, int(out["prompt_tokens"][0]), int(out["completion_tokens"].sum())
            )
        prompts = [p for p in request.prompts for _ in range(request.n)]
        rows = len(prompts)
        inputs = {
            "prompt": np.array([p.encode("utf-8") for p in prompts], object),
            "max_new_tokens": np.full([rows], request.max_tokens, np.int32),
            "temperature": np.full([rows], request.temperature, np.float32),
            "top_k": np.zeros([rows], np.int32),
            "top_p": np.full([rows], request.top_p, np.float32),
            "seed": np.array(seeds, np.int64),
        }
        native_stop = "stop" in self._generate_inputs
        if native_stop:
            inputs["stop"] = _stop_array(request.stop, rows)
        out = self._run("generate", inputs)
        texts = _strings(out["continuation"])
        if "finish_reason" in out:
            reasons = _strings(out["finish_reason"])
            completion_tokens = int(np.sum(out["completion_tokens"]))
        else:  # an export from before stop strings: cut them here
            reasons = []
            for i, text in enumerate(texts):
                cut = first_stop(text, request.stop)
                reasons.append("length" if cut is None else "stop")
                texts[i] = text if cut is None else text[:cut]
            completion_tokens = rows * request.max_tokens
        prompt_tokens = self._prompt_tokens(request.prompts, out, request.n)
        return 200, answer.complete(texts, reasons, prompt_tokens, completion_tokens)

    def stream(self, request):
        """The events of a streamed answer: an iterator of bytes, whose first item is ready
        (its first piece has run, so a request the graph refuses raises `APIError` here,
        before anything is sent). Closing the iterator ends the stream: no more pieces run."""
        events = self._events(request)
        first = next(events)
        return _Stream(first, events)

    def _events(self, request):
        with self._lock:
            self.active_streams += 1
        try:
            yield from self._stream_events(request)
        finally:
            with self._lock:
                self.active_streams -= 1

    def _stream_events(self, request):
        answer = Answer(request, self.model_name)
        seeds = row_seeds(request)
        if request.chat:
            prompt_ids = np.repeat(self._chat_ids(request), request.n, axis=0)
        else:
            prompt_ids = np.repeat(self._prompt_ids(request.prompts), request.n, axis=0)
        rows = len(seeds)
        generated = [[] for _ in range(rows)]
        sent = [""] * rows
        finished = [None] * rows
        prompt_tokens = [0] * rows
        completion_tokens = [0] * rows
        piece = 1
        started = False
        while True:
            active = [i for i in range(rows) if finished[i] is None]
            if not active:
                break
            alone = self.active_streams == 1
            started_at = time.monotonic()
            out = self._piece(
                request,
                prompt_ids[active],
                [generated[i] for i in active],
                [seeds[i] for i in active],
                piece,
                wait=not alone,
            )
            produced = int(np.max(np.sum(np.asarray(out["token_ids"]) >= 0, axis=1)))
            if alone:  # a piece batched with others' costs more: the fit is of pieces alone
                self._sizer.record(produced, time.monotonic() - started_at)
            events = []
            if not started and request.chat:
                events += [event(answer.chunk(i, "", first=True)) for i in range(rows)]
            started = True
            for j, i in enumerate(active):
                generated[i] += [int(t) for t in out["token_ids"][j] if t >= 0]
                text = out["continuation"][j].decode("utf-8")
                reason = out["finish_reason"][j].decode("utf-8")
                prompt_tokens[i] = int(out["prompt_tokens"][j])
                completion_tokens[i] = int(out["completion_tokens"][j])
                shown = text if reason else visible_text(text, request.stop)
                if shown.startswith(sent[i]) and len(shown) > len(sent[i]):
                    events.append(event(answer.chunk(i, shown[len(sent[i]) :])))
                    sent[i] = shown
                if reason:
                    finished[i] = reason
                    events.append(event(answer.chunk(i, finish_reason=reason)))
            yield b"".join(events)
            piece = self._sizer.next(piece)
        tail = []
        if request.include_usage:
            prompts = prompt_tokens[:: request.n]
            tail.append(event(answer.usage_chunk(sum(prompts), sum(completion_tokens))))
        yield b"".join(tail) + DONE

    def _piece(self, request, prompt_ids, generated, seeds, piece, wait=True):
        rows = len(seeds)
        width = max([len(g) for g in generated] + [0])
        generated_ids = np.full([rows, width], -1, np.int32)
        for i, ids in enumerate(generated):
            generated_ids[i, : len(ids)] = ids
        with self._lock:
            self.pieces_run += 1
        return self._run(
            "generate_tokens",
            {
                "prompt_ids": np.asarray(prompt_ids, np.int32),
                "generated_ids": generated_ids,
                "max_new_tokens": np.full([rows], request.max_tokens, np.int32),
                "piece_tokens": np.full([rows], piece, np.int32),
                "temperature": np.full([rows], request.temperature, np.float32),
                "top_k": np.zeros([rows], np.int32),
                "top_p": np.full([rows], request.top_p, np.float32),
                "seed": np.array(seeds, np.int64),
                "stop": _stop_array(request.stop, rows),
            },
            **({} if wait else {"wait": False}),
        )

    def _prompt_ids(self, prompts):
        out = self._run("tokenize", {"text": np.array([p.encode("utf-8") for p in prompts], object)})
        ids = np.asarray(out["token_ids"], np.int32)
        lengths = np.asarray(out["lengths"])
        columns = np.arange(ids.shape[1])[None, :]
        return np.where(columns < lengths[:, None], ids, -1)  # (P, N), -1 after each prompt

    def _chat_ids(self, request):
        roles, contents = request.messages
        out = self._run(
            "encode_chat",
            {
                "roles": np.array([[r.encode("utf-8") for r in roles]], object),
                "contents": np.array([[c.encode("utf-8") for c in contents]], object),
            },
        )
        return np.asarray(out["token_ids"], np.int32)  # (1, N)

    def _prompt_tokens(self, prompts, out, n):
        """The prompt tokens the model saw, summed over the choices' distinct prompts."""
        if "prompt_tokens" in out:
            return int(np.sum(out["prompt_tokens"][::n]))
        lengths = self._run("tokenize", {"text": np.array([p.encode("utf-8") for p in prompts], object)})[
            "lengths"
        ]
        dropped = np.asarray(out["prompt_tokens_dropped"])[::n]
        return int(np.sum(np.maximum(np.asarray(lengths) - dropped, 1)))


class APIError(Exception):
    """A request OpenAI's API would refuse: an HTTP status and OpenAI's error object.

    Args:
        status: the HTTP status (400, 401, 404, ...).
        message: one line that says what is wrong and what to send instead.
        type: OpenAI's error type ("invalid_request_error", "authentication_error").
        param: the request field at fault, or None.
        code: OpenAI's error code ("model_not_found", "invalid_api_key"), or None.

    Example:

    >>> APIError(404, "The model `x` does not exist", code="model_not_found").body()["error"]["code"]
    'model_not_found'
    """

    def __init__(self, status, message, type="invalid_request_error", param=None, code=None):  # noqa: A002
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclasses.dataclass
class Request:
    """A parsed completions or chat completions request.

    Attributes:
        chat: True for /v1/chat/completions.
        model: the model named.
        prompts: the prompts (completions), or None.
        messages: ([roles], [contents]) of the conversation (chat), or None.
        max_tokens, temperature, top_p, n, seed: the settings (seed None: draw one).
        stop: the stop strings (a list, maybe empty).
        stream, include_usage: stream the answer; add a usage chunk at its end.
    """

    chat: bool
    model: str
    prompts: list | None
    messages: tuple | None
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    stop: list
    seed: int | None
    stream: bool
    include_usage: bool

    @property
    def rows(self):
        """How many choices the answer holds (every prompt n times)."""
        return (1 if self.chat else len(self.prompts)) * self.n


def parse_request(body, chat, max_n=MAX_N, default_max_tokens=DEFAULT_COMPLETION_TOKENS):
    """Parses the body of a completions (`chat=False`) or chat completions request.

    Limits the export checks in its graph (prompt bytes, max_tokens up to its
    `max_new_tokens_limit`) are left to it; this checks the JSON types, `n` up to
    `max_n`, and up to 4 stop strings.

    Returns:
        a `Request`.

    Raises:
        APIError: 400, naming the field, for every malformed field.
    """
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise APIError(400, f"the request body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise APIError(400, "the request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "you must provide a model parameter (a string)", param="model")
    prompts = messages = None
    if chat:
        messages = _messages(doc.get("messages"))
        max_tokens = doc.get("max_completion_tokens", doc.get("max_tokens"))
    else:
        prompts = _prompts(doc.get("prompt"))
        max_tokens = doc.get("max_tokens")
    if max_tokens is None:
        max_tokens = default_max_tokens
    if not _is_int(max_tokens) or max_tokens < 1:
        raise APIError(
            400, f"max_tokens must be an integer >= 1; received {max_tokens!r}", param="max_tokens"
        )
    temperature = _number(doc, "temperature", DEFAULT_TEMPERATURE)
    if not 0.0 <= temperature <= 2.0:
        raise APIError(
            400, f"temperature must be in [0, 2] (0 is greedy); received {temperature!r}", param="temperature"
        )
    top_p = _number(doc, "top_p", DEFAULT_TOP_P)
    if not 0.0 < top_p <= 1.0:
        raise APIError(400, f"top_p must be in (0, 1]; received {top_p!r}", param="top_p")
    n = doc.get("n")
    n = 1 if n is None else n
    if not _is_int(n) or not 1 <= n <= max_n:
        raise APIError(400, f"n must be an integer in [1, {max_n}]; received {n!r}", param="n")
    seed = doc.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < generation_settings.SEED_LIMIT):
        raise APIError(400, f"seed must be an integer in [0, 2**62); received {seed!r}", param="seed")
    stream = doc.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise APIError(400, f"stream must be true or false; received {stream!r}", param="stream")
    options = doc.get("stream_options") or {}
    if not isinstance(options, dict):
        raise APIError(400, "stream_options must be an object", param="stream_options")
    request = Request(
        chat=chat,
        model=model,
        prompts=prompts,
        messages=messages,
        max_tokens=int(max_tokens),
        temperature=float(temperature),
        top_p=float(top_p),
        n=int(n),
        stop=_stop(doc.get("stop")),
        seed=None if seed is None else int(seed),
        stream=bool(stream),
        include_usage=bool(options.get("include_usage")),
    )
    if request.rows > max_n:
        raise APIError(
            400,
            f"this request asks for {request.rows} choices (prompts x n); at most {max_n} per request",
            param="n",
        )
    return request


def row_seeds(request):
    """The seed of each choice: `seed + i`, with a seed drawn for the request when it has none."""
    base = request.seed
    if base is None:
        base = random.randrange(generation_settings.RANDOM_SEED_LIMIT)
    return [(base + i) % generation_settings.SEED_LIMIT for i in range(request.rows)]


def first_stop(text, stops):
    """The index of the earliest occurrence of any stop string in `text`, or None."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def visible_text(text, stops):
    """The part of an unfinished stream's text that no later token can change: without a
    trailing replacement character (the next token may complete its UTF-8 sequence) and
    without a trailing prefix of a stop string (the next token may complete the stop)."""
    end = len(text)
    while end and text[end - 1] == _REPLACEMENT:
        end -= 1
    text = text[:end]
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:k]):
                hold = k
                break
    return text[: len(text) - hold]


class Answer:
    """Builds one request's answers and chunks: its id, creation time and model name."""

    def __init__(self, request, model_name):
        self.request = request
        self.model = model_name
        self.created = int(time.time())
        prefix = "chatcmpl" if request.chat else "cmpl"
        self.id = f"{prefix}-{secrets.token_hex(12)}"

    def complete(self, texts, finish_reasons, prompt_tokens, completion_tokens):
        """The whole (unstreamed) answer."""
        if self.request.chat:
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": reason,
                }
                for i, (text, reason) in enumerate(zip(texts, finish_reasons))
            ]
        else:
            choices = [
                {"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                for i, (text, reason) in enumerate(zip(texts, finish_reasons))
            ]
        return {
            "id": self.id,
            "object": "chat.completion" if self.request.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens),
        }

    def chunk(self, index, text=None, finish_reason=None, first=False):
        """One streamed chunk of choice `index`: new text, or its end (`finish_reason`)."""
        if self.request.chat:
            delta = {}
            if first:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        return self._chunk([choice])

    def usage_chunk(self, prompt_tokens, completion_tokens):
        """The chunk `stream_options.include_usage` asks for last: no choices, the usage."""
        chunk = self._chunk([])
        chunk["usage"] = usage(prompt_tokens, completion_tokens)
        return chunk

    def _chunk(self, choices):
        return {
            "id": self.id,
            "object": "chat.completion.chunk" if self.request.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


def usage(prompt_tokens, completion_tokens):
    prompt_tokens, completion_tokens = int(prompt_tokens), int(completion_tokens)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def models_answer(model_name, created):
    """`GET /v1/models`: the one model this server serves."""
    return {
        "object": "list",
        "data": [{"id": model_name, "object": "model", "created": int(created), "owned_by": "lm_keras"}],
    }


def event(payload):
    """One server-sent event: `data: <JSON>` and a blank line (bytes)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


DONE = event("[DONE]")


def _prompts(prompt):
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(_is_int(p) or isinstance(p, list) for p in prompt):
        raise APIError(400, "prompts of token ids are not supported; send text", param="prompt")
    raise APIError(400, "prompt must be a string or a non-empty list of strings", param="prompt")


def _messages(messages):
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages must be a non-empty list of {role, content} objects", param="messages")
    roles, contents = [], []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise APIError(400, f"messages[{i}] must be an object with role and content", param="messages")
        role, content = message.get("role"), message.get("content")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ROLES:
            raise APIError(
                400,
                f"messages[{i}].role is {role!r}; the chat template knows {', '.join(ROLES)}",
                param=f"messages[{i}].role",
            )
        if isinstance(content, list):  # content parts: only text ones
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise APIError(
                    400,
                    f"messages[{i}].content: only text parts are supported",
                    param=f"messages[{i}].content",
                )
            content = "".join(str(p.get("text", "")) for p in content)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise APIError(400, f"messages[{i}].content must be a string", param=f"messages[{i}].content")
        roles.append(role)
        contents.append(content)
    return roles, contents


def _stop(stop):
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise APIError(400, "stop must be a string or a list of strings", param="stop")
    if len(stop) > MAX_STOP_STRINGS:
        raise APIError(400, f"stop holds {len(stop)} strings; at most {MAX_STOP_STRINGS}", param="stop")
    return [s for s in stop if s]


def _number(doc, name, default):
    value = doc.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise APIError(400, f"{name} must be a number; received {value!r}", param=name)
    return float(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _stop_array(stops, rows):
    return np.array([[s.encode("utf-8") for s in stops] or [b""]] * rows, object)  # (rows, S)


def _strings(array):
    return [value.decode("utf-8") for value in np.asarray(array).tolist()]


class _Stream:
    """`first`, then the items of the generator `rest`; `close()` closes `rest` (its
    `finally` runs at once, started or not)."""

    def __init__(self, first, rest):
        self.first, self.rest = first, rest

    def __iter__(self):
        yield self.first
        yield from self.rest

    def close(self):
        self.rest.close()


class _PieceSizer:
    """Sizes a stream's next piece from a least-squares fit of recent pieces' seconds against
    their tokens (see PIECE_OVERHEAD)."""

    def __init__(self, window=64):
        self._samples = collections.deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, tokens, seconds):
        with self._lock:
            self._samples.append((tokens, seconds))

    def fit(self):
        """(fixed seconds per call, seconds per token), or None while the pieces so far cannot tell."""
        with self._lock:
            samples = np.array(self._samples, np.float64).reshape(-1, 2)
        if len(np.unique(samples[:, 0])) < 2:
            return None
        per_token, fixed = np.polyfit(samples[:, 0], samples[:, 1], 1)
        if not per_token > 0:
            return None
        return max(float(fixed), 0.0), float(per_token)

    def next(self, previous):
        fit = self.fit()
        if fit is None:
            return min(2 * previous, MAX_PIECE_TOKENS)
        fixed, per_token = fit
        tokens = math.ceil(fixed * (1 - PIECE_OVERHEAD) / (PIECE_OVERHEAD * per_token))
        return int(max(1, min(tokens, MAX_PIECE_SECONDS / per_token, MAX_PIECE_TOKENS)))
