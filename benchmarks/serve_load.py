"""A load test of `lm_keras.serve`: N clients on loopback for a bounded time, good requests
mixed with bad ones.

Bad requests, one kind after another: invalid JSON, a body that is not UTF-8, a body
over `--max_body_bytes`, `max_new_tokens` over the export's limit, an unknown
signature, an unknown model name, and a client that sends half its body and stalls
(the server must close it after its `--request_timeout_s`, without holding up the
rest). Good requests are greedy `serving_default` calls and seeded `generate` calls.

Reports requests/s, p50 and p99 latency of the good requests, answers by kind and
status code, and the server's RSS after warm-up and at the end. Holds (exit status 1
if not): every bad request gets a 4xx (the stalled one: its connection closed), no
request gets a 5xx, the server is alive at the end, good requests are answered in
every quarter of the run, and the end RSS is within 10% of the RSS after warm-up.

Then request batching: greedy `generate` requests of `--new_tokens` each, from one
client at a time and from `--clients` at once, against the batching server, and
`--clients` at once against a server started with `--max_batch_size=1` (every request
alone), alternated round by round (`--rounds`; 0 leaves this out); new tokens/s and
their ratios.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.serve_load

Then OpenAI's API, streamed: `--clients` streaming clients for `--stream_seconds`, on
`/v1/completions` and `/v1/chat/completions`, some reading their stream to `[DONE]`, some
hanging up after its first event, mixed with bad requests (another model's name, `n`
over the limit, `max_tokens` over the export's limit, invalid JSON, a body over the
limit). Holds (exit status 1 if not): every bad request a 4xx, no 5xx, every whole
stream ends with `[DONE]` and carries text, RSS within 10%, and no stream left running
once its client is gone: the server's CPU time over the 2 s after the last client
stopped is under 5% of one core.

And the streaming targets at batch 1, side by side, alternated round by round
(`--stream_rounds`): the time to the first streamed token against a one-token request;
streamed tokens/s against the same request unstreamed; `--clients` concurrent streams'
tokens/s against one stream's.

Without `--export_dir` it exports a model of random weights first (the default preset's
shape, a 256-token context, the char tokenizer of tiny Shakespeare; `--jit_compile`
for an XLA export): serving speed does not depend on the weights. It starts `python -m
lm_keras.serve` itself, with a short `--request_timeout_s`.
"""

import http.client
import json
import pathlib
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

from benchmarks import common

common.setup_environment()
REPO = common.REPO
TARGET_CONCURRENT_OVER_ONE = 3.0  # issue 15's
# Issue 26's streaming targets at batch 1.
TARGET_FIRST_TOKEN_OVER_ONE_TOKEN = 1.2
TARGET_STREAMED_OVER_UNSTREAMED = 0.8
TARGET_CONCURRENT_STREAMS_OVER_ONE = 3.0
STREAM_GOOD_KINDS = ("stream", "stream_chat", "stream_abandoned")
STREAM_BAD_KINDS = (
    "openai_unknown_model",
    "openai_n_over_limit",
    "openai_max_tokens_over_limit",
    "openai_invalid_json",
    "openai_body_over_limit",
)
# A stream whose server is still generating for a gone client would show as CPU time.
IDLE_CPU_FRACTION = 0.05
BAD_KINDS = (
    "invalid_json",
    "invalid_utf8",
    "body_over_limit",
    "max_new_tokens_over_limit",
    "unknown_signature",
    "unknown_model",
    "stalled_half_body",
)
GOOD_KINDS = ("greedy", "sampled")
PROMPTS = ["ROMEO:", "JULIET:", "First Citizen:", "O", "KING:", "Ay, my lord"]


def start_server(export_dir, max_body_bytes, request_timeout_s, extra_flags=()):
    """Starts `python -m lm_keras.serve` on a free port; returns (process, base URL of /v1/models/model)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lm_keras.serve",
            f"--export_dir={export_dir}",
            "--port=0",
            f"--max_body_bytes={max_body_bytes}",
            f"--request_timeout_s={request_timeout_s}",
            *extra_flags,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if " on http://" not in line:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r} {process.stderr.read()[-2000:]}")
    return process, line.split(" on ")[1].strip()


def cpu_seconds(pid):
    """The process's user + system CPU time so far, in seconds."""
    import os

    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    """The process's resident set size (VmRSS), in bytes."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Client:
    """Sends requests to one server (host, port, path prefix `/v1/models/<name>`)."""

    def __init__(self, url, max_body_bytes, max_new_tokens_limit, stall_timeout_s):
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.path = "/" + path
        self.max_body_bytes = max_body_bytes
        self.max_new_tokens_limit = max_new_tokens_limit
        self.stall_timeout_s = stall_timeout_s

    def post(self, path, body, timeout=300):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def send(self, kind, rng):
        """Sends one request of `kind`; returns its status (HTTP code, or "closed" for a stalled
        client the server hung up on, or "held" if it did not within the timeout)."""
        predict = self.path + ":predict"
        prompt = rng.choice(PROMPTS)
        if kind == "greedy":
            return self.post(predict, json.dumps({"instances": [{"prompt": prompt}]}).encode())[0]
        if kind == "sampled":
            instance = dict(prompt=prompt, max_new_tokens=8, temperature=0.9, top_k=0, top_p=1.0, stop=[""])
            instance["seed"] = rng.randrange(1 << 30)
            body = {"signature_name": "generate", "instances": [instance]}
            return self.post(predict, json.dumps(body).encode())[0]
        if kind == "invalid_json":
            return self.post(predict, b'{"instances": [')[0]
        if kind == "invalid_utf8":
            return self.post(predict, b'{"instances": ["\xff\xfe"]}')[0]
        if kind == "body_over_limit":
            return self.post(predict, b" " * (self.max_body_bytes + 1))[0]
        if kind == "max_new_tokens_over_limit":
            instance = dict(prompt=prompt, max_new_tokens=self.max_new_tokens_limit + 1, temperature=0.0)
            body = {
                "signature_name": "generate",
                "instances": [{**instance, "top_k": 0, "top_p": 1.0, "seed": 1, "stop": [""]}],
            }
            return self.post(predict, json.dumps(body).encode())[0]
        if kind == "unknown_signature":
            return self.post(predict, json.dumps({"signature_name": "nope", "instances": [prompt]}).encode())[
                0
            ]
        if kind == "unknown_model":
            other = self.path.rsplit("/", 1)[0] + "/no_such_model:predict"
            return self.post(other, json.dumps({"instances": [prompt]}).encode())[0]
        if kind == "stalled_half_body":
            return self.stall()
        raise ValueError(f"unknown request kind {kind!r}")

    def stall(self):
        """Sends headers and half the body, then waits: the server must close the connection."""
        body = json.dumps({"instances": [{"prompt": "ROMEO:"}]}).encode()
        with socket.create_connection((self.host, self.port), timeout=self.stall_timeout_s) as s:
            head = f"POST {self.path}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            s.sendall(head.encode() + body[: len(body) // 2])
            try:
                while s.recv(4096):
                    pass  # a 4xx answer, if the server sends one, then the close
                return "closed"
            except TimeoutError:
                return "held"
            except ConnectionResetError:
                return "closed"


class StreamClient:
    """Speaks OpenAI's API to one server (`base`: http://host:port) over http.client."""

    def __init__(self, base, model, max_body_bytes, max_new_tokens_limit):
        self.host, port = base.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.port = int(port)
        self.model = model
        self.max_body_bytes = max_body_bytes
        self.max_new_tokens_limit = max_new_tokens_limit

    def post(self, path, body, timeout=300):
        """(status, answer bytes) of one unstreamed request."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stream(self, path, body, leave_after_first=False, timeout=300):
        """Streams one request. Returns (status, {"first_s": seconds to the first event with
        text, "text": the text, "done": whether [DONE] came, "usage": the usage chunk's}); with
        `leave_after_first`, hangs up after the first event."""
        started = time.monotonic()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = json.dumps({**body, "stream": True}).encode()
            connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            if response.status != 200:
                response.read()
                return response.status, {}
            out = {"first_s": None, "text": "", "done": False, "usage": None}
            for line in response:
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    out["done"] = True
                    break
                chunk = json.loads(payload)
                if chunk.get("usage"):
                    out["usage"] = chunk["usage"]
                for choice in chunk.get("choices", []):
                    text = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                    if text and out["first_s"] is None:
                        out["first_s"] = time.monotonic() - started
                    out["text"] += text
                if leave_after_first:
                    connection.sock.shutdown(socket.SHUT_RDWR)
                    return "left", out
            return 200, out
        finally:
            connection.close()

    def send(self, kind, rng):
        """Sends one request of `kind` (STREAM_GOOD_KINDS, STREAM_BAD_KINDS); returns its status
        ("left" for a client that hung up mid-stream, "no_done"/"no_text" for a broken stream)."""
        prompt = rng.choice(PROMPTS)
        completion = {"model": self.model, "prompt": prompt, "max_tokens": 48, "temperature": 0.9}
        completion["seed"] = rng.randrange(1 << 30)
        if kind in ("stream", "stream_abandoned"):
            status, out = self.stream(
                "/v1/completions", completion, leave_after_first=kind == "stream_abandoned"
            )
            if status == 200 and not out["done"]:
                return "no_done"
            return status
        if kind == "stream_chat":
            chat = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32}
            status, out = self.stream("/v1/chat/completions", chat)
            return "no_done" if status == 200 and not out["done"] else status
        if kind == "openai_unknown_model":
            return self.post("/v1/completions", {**completion, "model": "no_such_model", "stream": True})[0]
        if kind == "openai_n_over_limit":
            return self.post("/v1/completions", {**completion, "n": 1000, "stream": True})[0]
        if kind == "openai_max_tokens_over_limit":
            body = {**completion, "max_tokens": self.max_new_tokens_limit + 1, "stream": True}
            return self.post("/v1/completions", body)[0]
        if kind == "openai_invalid_json":
            return self.post("/v1/completions", b'{"model": ')[0]
        if kind == "openai_body_over_limit":
            return self.post("/v1/completions", b" " * (self.max_body_bytes + 1))[0]
        raise ValueError(f"unknown request kind {kind!r}")


def run_stream_load(
    base,
    pid,
    seconds,
    clients,
    max_body_bytes,
    max_new_tokens_limit,
    model="model",
    bad_fraction=0.3,
    seed=0,
):
    """The streaming load (see the module docstring); returns its report, as `run_load`'s, with
    the server's CPU seconds in the 2 s after the last client stopped."""
    client = StreamClient(base, model, max_body_bytes, max_new_tokens_limit)
    warm_rng = random.Random(seed)
    for kind in STREAM_GOOD_KINDS:
        client.send(kind, warm_rng)
    rss_warm = rss_bytes(pid)
    results = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

    def work(index):
        rng = random.Random(seed * 1000 + index)
        turn = index
        while time.monotonic() < deadline:
            if rng.random() < bad_fraction:
                kind = STREAM_BAD_KINDS[turn % len(STREAM_BAD_KINDS)]
                turn += 1
            else:
                kind = STREAM_GOOD_KINDS[rng.randrange(len(STREAM_GOOD_KINDS))]
            t0 = time.monotonic()
            try:
                status = client.send(kind, rng)
            except OSError as e:
                status = f"error {type(e).__name__}"
            with lock:
                results.append((kind, status, t0 - started, time.monotonic() - t0))

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # the last hung-up stream's piece in flight ends
    cpu_before = cpu_seconds(pid)
    time.sleep(2.0)
    idle_cpu = (cpu_seconds(pid) - cpu_before) / 2.0
    rss_end = rss_bytes(pid)
    result = report(
        results,
        seconds,
        elapsed,
        rss_warm,
        rss_end,
        good_kinds=STREAM_GOOD_KINDS,
        left_kinds=("stream_abandoned",),
    )
    result["idle_cpu_fraction_after"] = round(idle_cpu, 4)
    if idle_cpu > IDLE_CPU_FRACTION:
        result["holds"] = False
        result["problems"].append(
            f"the server used {idle_cpu:.0%} of a core in the 2 s after its clients left: a stream still runs"
        )
    return result


def measure_streaming(base, model, rounds, new_tokens, clients):
    """{figure: [value per round]}: seconds to the first streamed token and of a one-token
    request, tokens/s streamed and unstreamed (one request at a time), and tokens/s of one
    stream and of `clients` concurrent streams; greedy, every variant alternated round by round.
    Also the prompt used and its completion tokens (a stream that stops early measures little)."""
    import concurrent.futures

    client = StreamClient(base, model, 0, 0)
    path = "/v1/completions"
    # A prompt whose greedy answer runs to new_tokens (random weights may end at end-of-text).
    body = None
    for prompt in PROMPTS:
        candidate = {"model": model, "prompt": prompt, "max_tokens": new_tokens, "temperature": 0.0}
        status, data = client.post(path, candidate)
        if status != 200:
            raise RuntimeError(f"a completion got {status}: {data[:300]!r}")
        tokens = json.loads(data)["usage"]["completion_tokens"]
        body = body or (candidate, tokens)
        if tokens == new_tokens:
            body = (candidate, tokens)
            break
    body, tokens = body
    one_token = {**body, "max_tokens": 1}
    usage_body = {**body, "stream_options": {"include_usage": True}}

    def streamed():
        t0 = time.monotonic()
        status, out = client.stream(path, usage_body)
        if status != 200 or not out["done"]:
            raise RuntimeError(f"a stream got {status}")
        return out["first_s"], out["usage"]["completion_tokens"] / (time.monotonic() - t0)

    def unstreamed(request):
        t0 = time.monotonic()
        status, data = client.post(path, request)
        if status != 200:
            raise RuntimeError(f"a completion got {status}")
        return time.monotonic() - t0, json.loads(data)["usage"]["completion_tokens"]

    def concurrent_streams():
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            outs = list(pool.map(lambda _: client.stream(path, usage_body), range(clients)))
        if any(status != 200 for status, _ in outs):
            raise RuntimeError(f"streams got {[status for status, _ in outs]}")
        return sum(out["usage"]["completion_tokens"] for _, out in outs) / (time.monotonic() - t0)

    for _ in range(2):  # warm-up: every shape the rounds meet
        streamed(), unstreamed(one_token), unstreamed(body), concurrent_streams()
    figures = {
        "first_token_s": [],
        "one_token_request_s": [],
        "streamed_tokens_per_s": [],
        "unstreamed_tokens_per_s": [],
        "one_stream_tokens_per_s": [],
        "concurrent_streams_tokens_per_s": [],
    }
    for _ in range(rounds):
        first_s, streamed_rate = streamed()
        figures["first_token_s"].append(first_s)
        figures["streamed_tokens_per_s"].append(streamed_rate)
        figures["one_token_request_s"].append(unstreamed(one_token)[0])
        seconds, count = unstreamed(body)
        figures["unstreamed_tokens_per_s"].append(count / seconds)
        figures["one_stream_tokens_per_s"].append(streamed()[1])
        figures["concurrent_streams_tokens_per_s"].append(concurrent_streams())
    return {"prompt": body["prompt"], "completion_tokens": tokens, "rounds": figures}


def throughput(url, clients, requests, new_tokens, timeout=600):
    """New tokens/s of `requests` greedy generate calls of `new_tokens` each, `clients` at a time."""
    import concurrent.futures

    client = Client(url, 0, 0, 0)
    body = {
        "signature_name": "generate",
        "instances": [
            dict(
                prompt="ROMEO:",
                max_new_tokens=new_tokens,
                temperature=0.0,
                top_k=0,
                top_p=1.0,
                seed=1,
                stop=[""],
            )
        ],
    }
    data = json.dumps(body).encode()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        statuses = list(
            pool.map(lambda _: client.post(client.path + ":predict", data, timeout)[0], range(requests))
        )
    elapsed = time.monotonic() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"answers {statuses}")
    return requests * new_tokens / elapsed


def measure_throughput(export_dir, batched_url, clients, rounds, new_tokens):
    """{variant: [tokens/s per round]} for one client at a time, `clients` at once batched (the
    server at `batched_url`), and `clients` at once against a server of the same export that
    runs every request alone, alternated round by round."""
    alone, alone_url = start_server(export_dir, 1 << 20, 30.0, ["--max_batch_size=1"])
    urls = {"batched": batched_url, "alone": alone_url}
    variants = {
        "one_client_at_a_time": ("batched", 1),
        f"{clients}_clients_batched": ("batched", clients),
        f"{clients}_clients_each_alone": ("alone", clients),
    }
    figures = {name: [] for name in variants}
    try:
        for url in urls.values():  # warm-up: the batch sizes the rounds meet (XLA compiles each)
            throughput(url, 1, 2, new_tokens)
            for _ in range(2):
                throughput(url, clients, clients, new_tokens)
        for _ in range(rounds):
            for name, (server, n) in variants.items():
                figures[name].append(throughput(urls[server], n, max(n, 4), new_tokens))
    finally:
        alone.terminate()
        alone.wait(timeout=30)
    return figures


def run_load(
    url,
    pid,
    seconds,
    clients,
    max_body_bytes,
    max_new_tokens_limit,
    request_timeout_s,
    bad_fraction=0.3,
    warmup_requests=4,
    seed=0,
):
    """Runs the load; returns the report (see the module docstring) with "holds" and "problems"."""
    client = Client(url, max_body_bytes, max_new_tokens_limit, stall_timeout_s=request_timeout_s + 30)
    warm_rng = random.Random(seed)
    for i in range(warmup_requests):  # compiles and allocates what steady serving needs
        client.send(GOOD_KINDS[i % 2], warm_rng)
    rss_warm = rss_bytes(pid)
    results = []  # (kind, status, start offset s, latency s)
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

    def work(index):
        rng = random.Random(seed * 1000 + index)
        turn = index  # each client walks the bad kinds from its own place
        while time.monotonic() < deadline:
            if rng.random() < bad_fraction:
                kind = BAD_KINDS[turn % len(BAD_KINDS)]
                turn += 1
            else:
                kind = rng.choice(GOOD_KINDS)
            t0 = time.monotonic()
            try:
                status = client.send(kind, rng)
            except OSError as e:  # refused or reset: the server is not answering
                status = f"error {type(e).__name__}"
            with lock:
                results.append((kind, status, t0 - started, time.monotonic() - t0))

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    rss_end = rss_bytes(pid)
    return report(results, seconds, elapsed, rss_warm, rss_end)


def report(results, seconds, elapsed, rss_warm, rss_end, good_kinds=GOOD_KINDS, left_kinds=()):
    """The figures and checks of a run: `seconds` the time requests were sent for, `elapsed` until
    the last answer (a stalled client's close comes after). Requests of `left_kinds` are good
    ones whose client hangs up ("left")."""
    counts = {}
    for kind, status, _, _ in results:
        counts.setdefault(kind, {}).setdefault(str(status), 0)
        counts[kind][str(status)] += 1
    good = sorted(latency for kind, status, _, latency in results if kind in good_kinds and status == 200)
    problems = []
    for kind, by_status in counts.items():
        for status in by_status:
            if kind in left_kinds:
                if status != "left":
                    problems.append(f"a {kind} request got {status}")
            elif kind in good_kinds and status != "200":
                problems.append(f"a good {kind} request got {status}")
            if kind == "stalled_half_body" and status != "closed":
                problems.append(f"a stalled client was {status}, not closed")
            if kind not in good_kinds and kind != "stalled_half_body" and not status.startswith("4"):
                problems.append(f"a bad {kind} request got {status}, not a 4xx")
    quarters = {
        min(int(4 * start / seconds), 3)
        for kind, status, start, _ in results
        if kind in good_kinds and status == 200
    }
    if quarters != {0, 1, 2, 3}:
        problems.append(f"good requests were answered in quarters {sorted(quarters)} only")
    if abs(rss_end / rss_warm - 1) > 0.10:
        problems.append(f"RSS grew from {rss_warm} to {rss_end} bytes (over 10%)")

    def percentile(q):
        return good[min(len(good) - 1, int(q * len(good)))] if good else None

    return {
        "seconds": round(elapsed, 2),
        "requests": len(results),
        "requests_per_s": round(len(results) / elapsed, 2),
        "good_answered": len(good),
        "good_p50_s": percentile(0.50),
        "good_p99_s": percentile(0.99),
        "by_kind_and_status": counts,
        "rss_after_warmup_bytes": rss_warm,
        "rss_end_bytes": rss_end,
        "holds": not problems,
        "problems": problems,
    }


def random_export(export_dir, max_new_tokens_limit, jit_compile, quick):
    """Exports a TransformerLM of random weights with the char tokenizer of tiny Shakespeare."""
    from lm_keras import tokenizers
    from lm_keras.data import load_corpus
    from lm_keras.models import TransformerLM
    from lm_keras.serving.generation_module import GenerationModule
    from lm_keras.serving.saved_model_export import save_version

    text, _ = load_corpus("tiny_shakespeare").split(0.1)
    tokenizer = tokenizers.train("char", text)
    shape = dict(num_layers=1, num_heads=2, hidden_dim=32) if quick else {}
    model = TransformerLM(vocab_size=tokenizer.vocab_size, seq_len=256, **shape)
    module = GenerationModule(
        model, tokenizer, max_new_tokens_limit=max_new_tokens_limit, jit_compile=jit_compile
    )
    save_version(module, export_dir)
    return export_dir


def main(argv=None):
    parser = common.arg_parser(__doc__.split("\n\n")[0])
    parser.set_defaults(rounds=3, seconds=60.0)
    parser.add_argument("--export_dir", default=None, help="default: a model of random weights")
    parser.add_argument("--jit_compile", action="store_true", help="the random model's export uses XLA")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max_body_bytes", type=int, default=4096)
    parser.add_argument("--max_new_tokens_limit", type=int, default=256, help="the export's limit")
    parser.add_argument("--request_timeout_s", type=float, default=2.0)
    parser.add_argument("--bad_fraction", type=float, default=0.3)
    parser.add_argument("--new_tokens", type=int, default=64, help="new tokens per batching request")
    parser.add_argument("--stream_seconds", type=float, default=None, help="default: --seconds; 0 skips")
    parser.add_argument("--stream_rounds", type=int, default=5, help="rounds of the streaming targets")
    parser.add_argument("--stream_tokens", type=int, default=128, help="tokens per streamed request")
    parser.add_argument("--skip_tf_serving_load", action="store_true", help="only OpenAI's API")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.rounds, args.new_tokens = len(BAD_KINDS), 4.0, 1, 4
        args.stream_rounds, args.stream_tokens = 1, 8
    if args.stream_seconds is None:
        args.stream_seconds = args.seconds
    export_dir = args.export_dir or random_export(
        common.scratch_dir(prefix="bench_serve_"), args.max_new_tokens_limit, args.jit_compile, args.quick
    )
    process, url = start_server(export_dir, args.max_body_bytes, args.request_timeout_s)
    base = url.split("/v1/", 1)[0]
    batching = load = stream_load = streaming = None
    try:
        if not args.skip_tf_serving_load:
            load = run_load(
                url,
                process.pid,
                args.seconds,
                args.clients,
                args.max_body_bytes,
                args.max_new_tokens_limit,
                args.request_timeout_s,
                bad_fraction=args.bad_fraction,
            )
            if process.poll() is not None:
                load["holds"] = False
                load["problems"].append(f"the server died (exit {process.returncode})")
            print(json.dumps(load, indent=1), flush=True)
            if args.rounds > 0 and load["holds"]:
                figures = measure_throughput(export_dir, url, args.clients, args.rounds, args.new_tokens)
                batching = {name: statistics.median(values) for name, values in figures.items()}
                batching["rounds"] = figures
        if args.stream_seconds > 0:
            stream_load = run_stream_load(
                base,
                process.pid,
                args.stream_seconds,
                args.clients,
                args.max_body_bytes,
                args.max_new_tokens_limit,
                bad_fraction=args.bad_fraction,
            )
            if process.poll() is not None:
                stream_load["holds"] = False
                stream_load["problems"].append(f"the server died (exit {process.returncode})")
            print(json.dumps(stream_load, indent=1), flush=True)
        if args.stream_rounds > 0:
            streaming = measure_streaming(base, "model", args.stream_rounds, args.stream_tokens, args.clients)
            streaming["median"] = {name: statistics.median(v) for name, v in streaming["rounds"].items()}
            # Each target's ratio within a round (its two sides measured back to back), then the
            # median over rounds: steadier than a ratio of medians on a machine whose load drifts.
            r = streaming["rounds"]
            pairs = {
                "first_token_over_one_token": ("first_token_s", "one_token_request_s"),
                "streamed_over_unstreamed": ("streamed_tokens_per_s", "unstreamed_tokens_per_s"),
                "concurrent_streams_over_one": ("concurrent_streams_tokens_per_s", "one_stream_tokens_per_s"),
            }
            streaming["ratio"] = {
                name: statistics.median(a / b for a, b in zip(r[top], r[bottom]))
                for name, (top, bottom) in pairs.items()
            }
            print(json.dumps(streaming, indent=1), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    common.emit(
        "serve_load",
        {
            "quick": args.quick,
            "export": "random weights" if args.export_dir is None else args.export_dir,
            "jit_compile": args.jit_compile,
            "clients": args.clients,
            "new_tokens": args.new_tokens,
            "load": load,
            "batching": batching,
            "stream_tokens": args.stream_tokens,
            "stream_load": stream_load,
            "streaming": streaming,
        },
        args.out,
    )
    return 0 if all(part is None or part["holds"] for part in (load, stream_load)) else 1


def rows(result):
    """RESULTS.md's rows: whether the server holds under bad requests, what batching gives, and
    the streaming targets."""
    load, n = result["load"], result["clients"]
    out = []
    if load:
        out.append(
            common.row(
                f"{n} clients for {load['seconds']:.0f} s, bad requests among good: "
                "bad ones a 4xx, never a 5xx, RSS flat",
                (int(load["holds"]), _load_text(load)),
                ("==", 1, "holds"),
            )
        )
    batching = result.get("batching")
    if batching:
        one = batching["one_client_at_a_time"]
        ratio = batching[f"{n}_clients_batched"] / one
        alone = batching[f"{n}_clients_each_alone"] / one
        export = "XLA export" if result["jit_compile"] else "plain-graph export"
        out.append(
            common.row(
                f"{n} concurrent clients / one at a time, batched serve ({export})",
                (ratio, f"{ratio:.2f}x ({alone:.2f}x with every request alone)"),
                (">=", TARGET_CONCURRENT_OVER_ONE, f"{TARGET_CONCURRENT_OVER_ONE:.0f}x"),
            )
        )
    stream_load = result.get("stream_load")
    if stream_load:
        text = f"{_load_text(stream_load)}, {100 * stream_load['idle_cpu_fraction_after']:.1f}% CPU after"
        out.append(
            common.row(
                f"{n} streaming clients (OpenAI API) for {stream_load['seconds']:.0f} s, some hanging up "
                "mid-stream, bad requests among them: 4xx, never a 5xx, RSS flat, no stream left running",
                (int(stream_load["holds"]), text),
                ("==", 1, "holds"),
            )
        )
    streaming = result.get("streaming")
    if streaming:
        m = streaming["median"]
        tokens = f"{streaming['completion_tokens']} tokens"
        first = streaming["ratio"]["first_token_over_one_token"]
        rate = streaming["ratio"]["streamed_over_unstreamed"]
        concurrent = streaming["ratio"]["concurrent_streams_over_one"]
        out += [
            common.row(
                "time to the first streamed token / a one-token request (batch 1)",
                (
                    first,
                    f"{first:.2f}x ({1000 * m['first_token_s']:.0f} ms / "
                    f"{1000 * m['one_token_request_s']:.0f} ms)",
                ),
                ("<=", TARGET_FIRST_TOKEN_OVER_ONE_TOKEN, f"{TARGET_FIRST_TOKEN_OVER_ONE_TOKEN}x"),
            ),
            common.row(
                f"streamed tokens/s / the same request unstreamed (batch 1, {tokens})",
                (
                    rate,
                    f"{rate:.2f}x ({m['streamed_tokens_per_s']:.0f} / "
                    f"{m['unstreamed_tokens_per_s']:.0f} tokens/s)",
                ),
                (">=", TARGET_STREAMED_OVER_UNSTREAMED, f"{TARGET_STREAMED_OVER_UNSTREAMED}x"),
            ),
            common.row(
                f"{n} concurrent streams / one stream, tokens/s ({tokens} each)",
                (concurrent, f"{concurrent:.2f}x"),
                (">=", TARGET_CONCURRENT_STREAMS_OVER_ONE, f"{TARGET_CONCURRENT_STREAMS_OVER_ONE:.0f}x"),
            ),
        ]
    return out


def _load_text(load):
    growth = load["rss_end_bytes"] / load["rss_after_warmup_bytes"] - 1
    return (
        f"{'holds' if load['holds'] else 'fails: ' + '; '.join(load['problems'])}: "
        f"{load['requests_per_s']:.1f} requests/s, p50 {load['good_p50_s']:.2f} s, "
        f"p99 {load['good_p99_s']:.2f} s, RSS {100 * growth:+.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
