"""A development server that speaks TF Serving's REST API for one exported model.

Built on the standard library's `http.server.ThreadingHTTPServer` (one thread per
request). It loads the export as TF Serving does, into a TF1 session by its graph
alone (`SessionModel`), so an export this server runs is one TF Serving runs. It
imports no Keras and no part of lm_keras that does (only the TensorFlow-free settings
and export folder modules), as TF Serving needs only the SavedModel.
"""

import contextlib
import hmac
import http.server
import json
import re
import select
import socket
import threading

from lm_keras import generation_settings
from lm_keras.serving import openai_api
from lm_keras.serving.export_dir import latest_servable
from lm_keras.serving.request_batcher import RequestBatcher
from lm_keras.serving.rest_api import RequestError, format_predict_response, parse_predict_request
from lm_keras.serving.session_model import SessionModel

# Oversized bodies up to this size are read and dropped before the 400 answer.
_DRAIN_LIMIT = 64 << 20
_PREDICT = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")
# OpenAI's API: POST path -> whether it is the chat endpoint.
_OPENAI_POST = {"/v1/completions": False, "/v1/chat/completions": True}
_OPENAI_MODELS = "/v1/models"


class ModelServer:
    """Serves the highest version of an export directory over TF Serving's REST API.

    Endpoints (as TF Serving answers them, so a client works against either):

    - `GET /v1/models/<name>[/versions/<v>]`: the version's status,
      `{"model_version_status": [{"version": "1", "state": "AVAILABLE",
      "status": {"error_code": "OK", "error_message": ""}}]}`.
    - `GET /v1/models/<name>[/versions/<v>]/metadata`: the signatures.
    - `POST /v1/models/<name>[/versions/<v>]:predict`: a predict request in the
      row (`instances`) or columnar (`inputs`) format (see `rest_api`).

    `serving_default` and `generate` answer `continuation`, the generated text,
    and `prompt_tokens_dropped`, how many leading tokens of the prompt the model
    did not see because the prompt is longer than its context (0 for most
    prompts; see `GenerationModule`).

    Errors answer `{"error": "..."}` with TF Serving's status codes: 400 for a
    bad request (bad JSON, missing or extra inputs, a body over
    `max_body_bytes`, a check failing in the graph), 404 for an unknown model,
    version or path. The server keeps serving after any of them.

    Beside them, OpenAI's API (see `openai_api`), on the same export and batcher:

    - `GET /v1/models`: the served model, named `served_model_name`;
    - `POST /v1/completions` and `POST /v1/chat/completions`, whole or streamed
      (`"stream": true`: server-sent events, in HTTP/1.1 chunks); their errors are
      OpenAI's error object. A streamed choice runs one piece after another; when
      its client hangs up, no further piece runs.

    With `api_key`, every request (both APIs) must carry `Authorization: Bearer
    <api_key>`; others get 401 in OpenAI's error shape (compared in constant time).

    Concurrent `serving_default` and `generate` calls that arrive within
    `batch_timeout_micros` of each other run as one batched call of up to
    `max_batch_size` prompts (see `RequestBatcher`; TF Serving's batching
    parameters of the same names). Each answer equals the request's alone: the
    decoding loop gives every row what decoding it alone gives, with its own seed.

    Args:
        export_dir: the folder holding numeric version folders (`export`'s
            `--export_dir`, TF Serving's `--model_base_path`).
        model_name: the `<name>` in the URLs.
        host: the address to bind; 127.0.0.1 keeps it on this machine.
        port: the port; 0 picks a free one (see `address`).
        max_body_bytes: the largest request body accepted.
        max_batch_size: the most prompts in one batched call; 1 runs every
            request alone.
        batch_timeout_micros: how long a batch waits for more requests.
        request_timeout_s: a connection that sends nothing for this long
            (a stalled half body, an idle keep-alive) is closed.
        served_model_name: the model's name in OpenAI's API (`model`); None:
            `model_name`.
        api_key: None, or the key every request must send as a bearer token.
        max_n: the most choices (prompts x `n`) in one OpenAI request.

    Example:

    >>> server = ModelServer("exports/shakespeare", port=0)
    >>> server.start()                       # serves in a background thread
    >>> server.address
    ('127.0.0.1', 40123)
    >>> server.stop()
    """

    def __init__(
        self,
        export_dir,
        model_name="model",
        host="127.0.0.1",
        port=generation_settings.SERVING_PORT,
        max_body_bytes=generation_settings.SERVING_MAX_BODY_BYTES,
        max_batch_size=generation_settings.BATCHING_MAX_BATCH_SIZE,
        batch_timeout_micros=generation_settings.BATCHING_TIMEOUT_MICROS,
        request_timeout_s=generation_settings.SERVING_REQUEST_TIMEOUT_S,
        served_model_name=None,
        api_key=None,
        max_n=openai_api.MAX_N,
    ):
        problem = generation_settings.serving_problem(
            model_name, port, max_body_bytes, request_timeout_s, max_batch_size, batch_timeout_micros
        )
        if problem:
            raise ValueError(problem)
        self.model_name = model_name
        self.max_body_bytes = int(max_body_bytes)
        self.request_timeout_s = float(request_timeout_s)
        self.version, path = latest_servable(export_dir)
        self.model = SessionModel(path)
        self.batcher = (
            RequestBatcher(self.model.run, max_batch_size, batch_timeout_micros)
            if max_batch_size > 1
            else None
        )
        self._specs = {
            name: {key: (spec.dtype, spec.rank) for key, spec in signature.inputs.items()}
            for name, signature in self.model.signatures.items()
        }
        self._metadata = _metadata(path, model_name, self.version)
        self.api_key = api_key or None
        self.openai = openai_api.OpenAIAPI(
            self._run_for_openai, self.model.signatures, served_model_name or model_name, max_n=max_n
        )
        self._httpd = _HTTPServer((host, port), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread = None

    @property
    def address(self):
        """(host, port) the server listens on."""
        return self._httpd.server_address[:2]

    def serve_forever(self):
        """Serves until `stop()` (or Ctrl-C in the caller)."""
        self._httpd.serve_forever()

    def start(self):
        """Serves in a daemon thread and returns at once."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        if self.batcher is not None:
            self.batcher.close()
        self.model.close()

    # ------------------------------------------------------------ handling

    def status(self, name, version):
        self._check_model(name, version)
        return 200, {
            "model_version_status": [
                {
                    "version": str(self.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def metadata(self, name, version):
        self._check_model(name, version)
        return 200, self._metadata

    def predict(self, name, version, body):
        import tensorflow as tf

        self._check_model(name, version)
        signature, inputs, request_format = parse_predict_request(body, self._input_specs)
        for key, value in inputs.items():
            rank = self._specs[signature][key][1]
            if rank is not None and value.ndim != rank:
                raise RequestError(
                    f"input {key!r} of signature {signature!r} must have rank {rank} "
                    f"(batch first); received shape {list(value.shape)}"
                )
        try:
            outputs = (self.batcher or self.model).run(signature, inputs)
        except tf.errors.OpError as e:
            raise _GraphError(e) from None
        return 200, format_predict_response(outputs, request_format)

    def authorized(self, header):
        """Whether a request's Authorization header carries the key (always, without a key)."""
        if self.api_key is None:
            return True
        return hmac.compare_digest((header or "").encode("utf-8"), f"Bearer {self.api_key}".encode())

    def _run_for_openai(self, signature, inputs, wait=True):
        """Runs a signature for OpenAI's API (`wait`: see `RequestBatcher.run`); a refusal of
        the graph is an `APIError`."""
        import tensorflow as tf

        try:
            if self.batcher is None:
                return self.model.run(signature, inputs)
            return self.batcher.run(signature, inputs, wait=wait)
        except tf.errors.OpError as e:
            status = _HTTP_STATUS.get(e.error_code, 500)
            raise openai_api.APIError(
                status,
                _error_line(e.message),
                type="invalid_request_error" if status < 500 else "server_error",
            ) from None

    def _input_specs(self, signature):
        if signature not in self._specs:
            raise RequestError(
                f'Serving signature name: "{signature}" not found in signature def; '
                f"this model has {', '.join(sorted(self._specs))}"
            )
        return self._specs[signature]

    def _check_model(self, name, version):
        if name != self.model_name:
            raise _NotFound(
                f"Servable not found for request: Latest({name}); this server serves {self.model_name!r}"
            )
        if version is not None and int(version) != self.version:
            raise _NotFound(
                f"Servable not found for request: Specific({name}, {version}); this server "
                f"serves version {self.version}"
            )


class _HTTPServer(http.server.ThreadingHTTPServer):
    # The listen backlog: socketserver's default of 5 resets connections when more clients
    # than that connect at once (a burst of concurrent requests, which batching is for).
    request_queue_size = 256


class _NotFound(Exception):
    pass


class _GraphError(Exception):
    """An error raised by the model's graph, with its TF status."""

    def __init__(self, error):
        super().__init__(_error_line(error.message))
        self.code = error.error_code


# TF Serving's http_server.cc: error code -> HTTP status.
_HTTP_STATUS = {
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}


def _error_line(message):
    """The line of a TF error that says what went wrong, e.g. "assertion failed: [prompt is
    longer than ...]", without the graph's node names and call-site listing."""
    noise = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip() and not line.startswith((" ", "\t")) and not line.startswith(noise)
    ]
    line = lines[-1] if lines else message.strip()
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", line)


def _metadata(path, name, version):
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    signatures = {
        key: json_format.MessageToDict(value, preserving_proto_field_name=True)
        for key, value in saved_model.meta_graphs[0].signature_def.items()
        if not key.startswith("__")
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": signatures}},
    }


def _handler_class(server):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lm_keras-model-server"
        # The socket's timeout (StreamRequestHandler): a read that waits longer raises
        # TimeoutError, which BaseHTTPRequestHandler answers by closing the connection.
        timeout = server.request_timeout_s

        def do_GET(self):  # noqa: N802 (the standard library's naming)
            if not self._authorized():
                return
            if self.path == _OPENAI_MODELS:
                return self._reply(*server.openai.models())
            match = _STATUS.match(self.path)
            if not match:
                return self._reply(404, {"error": f"Malformed request: GET {self.path}"})
            name, version, metadata = match.groups()
            self._answer(lambda: (server.metadata if metadata else server.status)(name, version))

        def do_POST(self):  # noqa: N802
            if not self._authorized():
                return
            if self.path in _OPENAI_POST:
                return self._openai(_OPENAI_POST[self.path])
            match = _PREDICT.match(self.path)
            body = self._read_body()
            if body is None:
                return
            if not match:
                return self._reply(404, {"error": f"Malformed request: POST {self.path}"})
            name, version = match.groups()
            self._answer(lambda: server.predict(name, version, body))

        def _authorized(self):
            if server.authorized(self.headers.get("Authorization")):
                return True
            error = openai_api.APIError(
                401,
                "Incorrect API key provided: send the server's key as `Authorization: Bearer KEY`",
                code="invalid_api_key",
            )
            self._reply(401, error.body(), close=True)
            return False

        def _openai(self, chat):
            body = self._read_body(openai_shape=True)
            if body is None:
                return
            try:
                request = server.openai.parse(body, chat)
                if not request.stream:
                    return self._reply(*server.openai.complete(request))
                events = server.openai.stream(request)
            except openai_api.APIError as e:
                return self._reply(e.status, e.body())
            except Exception as e:  # a bug or a broken model: report it, keep serving
                self.log_error("error handling %s: %r", self.path, e)
                error = openai_api.APIError(500, f"{type(e).__name__}: {e}", type="server_error")
                return self._reply(500, error.body())
            self._stream(events)

        def _stream(self, events):
            """Sends server-sent events in HTTP/1.1 chunks; stops the events (no more pieces
            run) as soon as the client is gone."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for data in events:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    if _peer_closed(self.connection):
                        raise ConnectionResetError("the client closed the connection")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except openai_api.APIError as e:  # after the first piece: say so in the stream
                data = openai_api.event(e.body())
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
                self.close_connection = True
            except OSError:  # the client is gone: stop generating for it
                self.close_connection = True
            finally:
                events.close()

        def _read_body(self, openai_shape=False):
            def refuse(message):
                payload = openai_api.APIError(400, message).body() if openai_shape else {"error": message}
                self._reply(400, payload, close=True)

            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                refuse("chunked request bodies are not supported; send Content-Length")
                return None
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                refuse("Content-Length is not a number")
                return None
            if length < 0 or length > server.max_body_bytes:
                # Read the body away (in chunks, never held) so the client sees the answer
                # rather than a reset connection; past _DRAIN_LIMIT, just close.
                remaining = length if length <= _DRAIN_LIMIT else 0
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                refuse(
                    f"the request body is {length} bytes, over the limit of "
                    f"{server.max_body_bytes} bytes (--max_body_bytes)"
                )
                return None
            return self.rfile.read(length)

        def _answer(self, handle):
            try:
                code, payload = handle()
            except RequestError as e:
                code, payload = 400, {"error": str(e)}
            except _NotFound as e:
                code, payload = 404, {"error": str(e)}
            except _GraphError as e:
                code, payload = _HTTP_STATUS.get(e.code, 500), {"error": str(e)}
            except Exception as e:  # a bug or a broken model: report it, keep serving
                self.log_error("error handling %s: %r", self.path, e)
                code, payload = 500, {"error": f"{type(e).__name__}: {e}"}
            self._reply(code, payload)

        def _reply(self, code, payload, close=False):
            data = (json.dumps(payload, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def finish(self):
            # Flushes what is left: a client already gone is no error of the server's.
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format, *args):  # noqa: A002 (the standard library's signature)
            pass

    return Handler


def _peer_closed(connection):
    """Whether the client has closed its end: the socket reads as ended (a client that
    sent more, a pipelined request, is still there)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
