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
            instance = dict(prompt=prompt, max_new_tokens=8, temperature=0.9, top_k=0, top_p=1.0)
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
                "instances": [{**instance, "top_k": 0, "top_p": 1.0, "seed": 1}],
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


def throughput(url, clients, requests, new_tokens, timeout=600):
    """New tokens/s of `requests` greedy generate calls of `new_tokens` each, `clients` at a time."""
    import concurrent.futures

    client = Client(url, 0, 0, 0)
    body = {
        "signature_name": "generate",
        "instances": [
            dict(prompt="ROMEO:", max_new_tokens=new_tokens, temperature=0.0, top_k=0, top_p=1.0, seed=1)
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


def report(results, seconds, elapsed, rss_warm, rss_end):
    """The figures and checks of a run: `seconds` the time requests were sent for, `elapsed` until
    the last answer (a stalled client's close comes after)."""
    counts = {}
    for kind, status, _, _ in results:
        counts.setdefault(kind, {}).setdefault(str(status), 0)
        counts[kind][str(status)] += 1
    good = sorted(latency for kind, status, _, latency in results if kind in GOOD_KINDS and status == 200)
    problems = []
    for kind, by_status in counts.items():
        for status in by_status:
            if kind in GOOD_KINDS and status != "200":
                problems.append(f"a good {kind} request got {status}")
            if kind == "stalled_half_body" and status != "closed":
                problems.append(f"a stalled client was {status}, not closed")
            if kind not in GOOD_KINDS and kind != "stalled_half_body" and not status.startswith("4"):
                problems.append(f"a bad {kind} request got {status}, not a 4xx")
    quarters = {
        min(int(4 * start / seconds), 3)
        for kind, status, start, _ in results
        if kind in GOOD_KINDS and status == 200
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
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.rounds, args.new_tokens = len(BAD_KINDS), 4.0, 1, 4
    export_dir = args.export_dir or random_export(
        common.scratch_dir(prefix="bench_serve_"), args.max_new_tokens_limit, args.jit_compile, args.quick
    )
    process, url = start_server(export_dir, args.max_body_bytes, args.request_timeout_s)
    batching = None
    try:
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
        },
        args.out,
    )
    return 0 if load["holds"] else 1


def rows(result):
    """RESULTS.md's rows: whether the server holds under bad requests, and what batching gives."""
    load, n = result["load"], result["clients"]
    growth = load["rss_end_bytes"] / load["rss_after_warmup_bytes"] - 1
    measured = (
        f"{'holds' if load['holds'] else 'fails: ' + '; '.join(load['problems'])}: "
        f"{load['requests_per_s']:.1f} requests/s, p50 {load['good_p50_s']:.2f} s, "
        f"p99 {load['good_p99_s']:.2f} s, RSS {100 * growth:+.1f}%"
    )
    out = [
        common.row(
            f"{n} clients for {load['seconds']:.0f} s, bad requests among good: "
            "bad ones a 4xx, never a 5xx, RSS flat",
            (int(load["holds"]), measured),
            ("==", 1, "holds"),
        )
    ]
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
    return out


if __name__ == "__main__":
    sys.exit(main())
