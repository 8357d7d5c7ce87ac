"""`python -m lm_keras.serve`: a real server process on 127.0.0.1, spoken to over HTTP."""

import base64
import concurrent.futures
import json
import pathlib
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from unittest.mock import ANY

import pytest

from tests.generation.tiny_models import trained_model_dir
from tests.test_commands import run_until_exit

REPO = pathlib.Path(__file__).resolve().parents[1]
START_TIMEOUT = 180
REQUEST_TIMEOUT = 120
MAX_BODY = 4096
MAX_PROMPT_BYTES = 200
REQUEST_TIMEOUT_S = 2.0  # the server's: a stalled client is hung up on after this


@pytest.fixture(scope="module")
def trained():
    from lm_keras.model_dir import load_trained

    return load_trained(trained_model_dir("transformer"))


@pytest.fixture(scope="module")
def export_dir(trained, tmp_path_factory):
    """An export of the trained model with greedy defaults."""
    from lm_keras.serving.saved_model_export import export_saved_model

    export_dir = tmp_path_factory.mktemp("export")
    export_saved_model(
        trained.model_dir,
        export_dir,
        temperature=0.0,
        max_new_tokens=12,
        max_prompt_bytes=MAX_PROMPT_BYTES,
        max_new_tokens_limit=50,
    )
    return export_dir


@pytest.fixture(scope="module")
def server(export_dir):
    """(base URL of /v1/models/lm, the process) for the export."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lm_keras.serve",
            f"--export_dir={export_dir}",
            "--model_name=lm",
            "--port=0",
            f"--max_body_bytes={MAX_BODY}",
            f"--request_timeout_s={REQUEST_TIMEOUT_S}",
            "--batch_timeout_micros=20000",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    if not lines or "serving lm version 1 on http://127.0.0.1:" not in lines[0]:
        process.kill()
        pytest.fail(f"the server did not start: {lines} {process.stderr.read()[-2000:]}")
    url = lines[0].split(" on ")[1].strip()
    yield url, process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def request(url, body=None, raw=None, method=None):
    """(HTTP status, decoded JSON answer)."""
    data = raw if raw is not None else (json.dumps(body).encode("utf-8") if body is not None else None)
    req = urllib.request.Request(
        url,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def greedy(trained, prompts, n=12):
    from lm_keras.generation import generate

    return generate(trained.model, trained.tokenizer, prompts, max_new_tokens=n, temperature=0.0)


def test_status_and_metadata(server):
    url, _ = server
    assert request(url) == (
        200,
        {
            "model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        },
    )
    status, metadata = request(url + "/metadata")
    assert status == 200 and metadata["model_spec"]["version"] == "1"
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures["serving_default"]["inputs"]) == ["prompt"]


def test_a_prompt_is_a_complete_request(server, trained):
    from lm_keras.generation import generate_details

    url, _ = server
    status, answer = request(url + ":predict", {"instances": [{"prompt": "ROMEO:"}]})
    assert status == 200
    (expected,) = generate_details(
        trained.model, trained.tokenizer, ["ROMEO:"], max_new_tokens=12, temperature=0.0
    )
    assert answer == {
        "predictions": [
            {
                "continuation": expected.text,
                "finish_reason": expected.finish_reason,
                "completion_tokens": expected.completion_tokens,
                "prompt_tokens_dropped": 0,
            }
        ]
    }
    status, answer = request(url + ":predict", {"instances": ["ROMEO:", "JULIET:"]})
    assert status == 200
    assert [p["continuation"] for p in answer["predictions"]] == greedy(trained, ["ROMEO:", "JULIET:"])
    status, answer = request(url + "/versions/1:predict", {"inputs": {"prompt": ["ROMEO:", ""]}})
    assert status == 200
    assert answer["outputs"]["continuation"] == greedy(trained, ["ROMEO:", ""])
    assert answer["outputs"]["prompt_tokens_dropped"] == [0, 0]


def test_concurrent_requests_with_different_stop_strings_each_stop_at_their_own(server, trained):
    """The server batches requests whose stop lists differ in length (padded with ""): each row
    stops at its own stop strings, as generate_details stops it alone."""
    from lm_keras.generation import generate_details

    url, _ = server
    prompts, seeds = ["ROMEO:", "JULIET:", "O"], [3, 4, 5]
    settings = dict(max_new_tokens=12, temperature=1.0, top_k=0)
    free = [
        generate_details(trained.model, trained.tokenizer, [p], seed=s, **settings)[0].text
        for p, s in zip(prompts, seeds)
    ]
    i = next(i for i in range(1, 10) if free[0][i] not in free[0][:i])
    stops = [[free[0][i]], ["\u00a7", free[1][2:4] or "x"], []]

    def ask(k):
        instance = dict(prompt=prompts[k], top_p=1.0, seed=seeds[k], stop=stops[k], **settings)
        return request(url + ":predict", {"signature_name": "generate", "instances": [instance]})

    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(ask, range(len(prompts)), timeout=REQUEST_TIMEOUT))
    for k, (status, answer) in enumerate(answers):
        assert status == 200, answer
        (expected,) = generate_details(
            trained.model, trained.tokenizer, [prompts[k]], seed=seeds[k], stop=stops[k] or None, **settings
        )
        (prediction,) = answer["predictions"]
        assert prediction["continuation"] == expected.text, k
        assert prediction["finish_reason"] == expected.finish_reason, k
        assert prediction["completion_tokens"] == expected.completion_tokens, k
    assert answers[0][1]["predictions"][0]["finish_reason"] == "stop"


def test_generate_signature_with_settings_per_instance(server, trained):
    from lm_keras.generation import generate

    url, _ = server
    instances = [
        {"prompt": "ROMEO:", "max_new_tokens": 5, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 1},
        {"prompt": "JULIET:", "max_new_tokens": 9, "temperature": 0.9, "top_k": 10, "top_p": 0.9, "seed": 4},
    ]
    # TF Serving's REST parser asks every instance for every input: stop too ("" stops nothing).
    instances = [{**instance, "stop": [""]} for instance in instances]
    status, answer = request(url + ":predict", {"signature_name": "generate", "instances": instances})
    assert status == 200, answer
    texts = [p["continuation"] for p in answer["predictions"]]
    assert texts[0] == greedy(trained, ["ROMEO:"], n=5)[0]
    assert (
        texts[1]
        == generate(
            trained.model,
            trained.tokenizer,
            ["JULIET:"],
            max_new_tokens=9,
            temperature=0.9,
            top_k=10,
            top_p=0.9,
            seed=4,
        )[0]
    )


@pytest.mark.parametrize(
    "body,raw,code,message",
    [
        (None, b'{"instances": [', 400, "JSON Parse error"),
        (None, b"", 400, "JSON Parse error"),
        ({"instances": "ROMEO:"}, None, 400, "to be an list/array"),
        ({"prompt": "ROMEO:"}, None, 400, "unknown keys ['prompt']"),
        ({"instances": [{"text": "ROMEO:"}]}, None, 400, "must only have keys: prompt"),
        (
            {"signature_name": "generate", "instances": [{"prompt": "ROMEO:"}]},
            None,
            400,
            "must only have keys",
        ),
        (
            {"signature_name": "nope", "instances": ["a"]},
            None,
            400,
            'Serving signature name: "nope" not found',
        ),
        (
            {"instances": [{"prompt": {"b64": base64.b64encode(b"bad \xff").decode()}}]},
            None,
            400,
            "assertion failed: [prompt is not valid UTF-8; send UTF-8 text]",
        ),
        (
            {"instances": ["x" * (MAX_PROMPT_BYTES + 1)]},
            None,
            400,
            f"prompt is longer than the limit of {MAX_PROMPT_BYTES} bytes",
        ),
        (
            {
                "signature_name": "generate",
                "instances": [
                    {
                        "prompt": "a",
                        "max_new_tokens": 51,
                        "temperature": 0.0,
                        "top_k": 0,
                        "top_p": 1.0,
                        "seed": 1,
                        "stop": [""],
                    }
                ],
            },
            None,
            400,
            "max_new_tokens must be in [1, 50]",
        ),
        (
            None,
            b'{"instances": ["' + b"x" * MAX_BODY + b'"]}',
            400,
            f"over the limit of {MAX_BODY} bytes (--max_body_bytes)",
        ),
    ],
)
def test_bad_requests_get_400_and_the_server_keeps_serving(server, body, raw, code, message):
    url, process = server
    status, answer = request(url + ":predict", body, raw=raw)
    assert status == code
    assert list(answer) == ["error"] and message in answer["error"], answer
    assert process.poll() is None
    assert request(url)[0] == 200


def test_unknown_model_version_and_path_are_404(server):
    url, _ = server
    base = url.rsplit("/", 1)[0]
    status, answer = request(base + "/other:predict", {"instances": ["a"]})
    assert status == 404 and "Servable not found" in answer["error"]
    assert request(url + "/versions/7")[0] == 404
    assert request(url + ":explode", {"instances": ["a"]})[0] == 404


def test_concurrent_requests_are_all_served(server, trained):
    url, _ = server
    prompts = ["ROMEO:", "JULIET:", "First Citizen:", "O", "KING:", "", "Ay", "No"]
    expected = dict(zip(prompts, greedy(trained, prompts)))

    def ask(prompt):
        return prompt, request(url + ":predict", {"instances": [{"prompt": prompt}]})

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(ask, prompts, timeout=REQUEST_TIMEOUT))
    assert time.monotonic() - started < REQUEST_TIMEOUT
    for prompt, (status, answer) in answers:
        assert status == 200, answer
        assert answer["predictions"][0]["continuation"] == expected[prompt]


def test_binds_to_localhost_by_default():
    result = subprocess.run(
        [sys.executable, "-m", "lm_keras.serve", "--helpshort"], capture_output=True, text=True, timeout=60
    )
    host = re.search(r"--host: .*\n\s+\(default: '([^']*)'\)", result.stdout)
    assert host and host.group(1) == "127.0.0.1", result.stdout


def test_concurrent_sampled_requests_each_get_their_own_seed(server, trained):
    """Requests batched together (the server batches by default) draw what each would draw alone."""
    from lm_keras.generation import generate

    url, _ = server
    prompts = ["ROMEO:", "JULIET:", "First Citizen:", "O", "KING:", ""]

    def ask(i):
        instance = dict(
            prompt=prompts[i],
            max_new_tokens=6 + i,
            temperature=0.9,
            top_k=0,
            top_p=1.0,
            seed=100 + i,
            stop=[""],
        )
        return request(url + ":predict", {"signature_name": "generate", "instances": [instance]})

    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(ask, range(len(prompts)), timeout=REQUEST_TIMEOUT))
    for i, (status, answer) in enumerate(answers):
        assert status == 200, answer
        alone = generate(
            trained.model,
            trained.tokenizer,
            [prompts[i]],
            max_new_tokens=6 + i,
            temperature=0.9,
            top_k=0,
            seed=100 + i,
        )
        assert answer["predictions"][0]["continuation"] == alone[0], i


def test_a_short_load_of_good_and_bad_requests_holds(server):
    """python -m benchmarks.serve_load for a few seconds: every bad request a 4xx (the stalled
    client closed by the timeout), no 5xx, good requests answered throughout, RSS flat, server alive."""
    from benchmarks import serve_load

    url, process = server
    result = serve_load.run_load(
        url,
        process.pid,
        seconds=6,
        clients=len(serve_load.BAD_KINDS),
        max_body_bytes=MAX_BODY,
        max_new_tokens_limit=50,
        request_timeout_s=REQUEST_TIMEOUT_S,
        bad_fraction=0.5,
    )
    assert result["holds"], (
        result["problems"],
        result["by_kind_and_status"],
        result["rss_after_warmup_bytes"],
        result["rss_end_bytes"],
    )
    assert set(result["by_kind_and_status"]) >= set(serve_load.BAD_KINDS) | set(serve_load.GOOD_KINDS), result
    assert result["by_kind_and_status"]["stalled_half_body"] == {
        "closed": result["by_kind_and_status"]["stalled_half_body"]["closed"]
    }
    assert process.poll() is None and request(url)[0] == 200


def serve_without_tensorflow(*flags):
    """(exit code, stderr lines, whether TensorFlow was imported) of `lm_keras.serve` run with
    `flags` in a fresh process that stops at the command's exit."""
    stdout, stderr = run_until_exit(["lm_keras.serve", *flags])
    code, tensorflow = stdout.split()[-2:]
    return int(code), stderr.splitlines(), tensorflow == "True"


@pytest.mark.parametrize(
    "flag, message",
    [
        (
            "--max_batch_size=0",
            "--max_batch_size must be an int >= 1 (1 runs each request alone); received max_batch_size=0",
        ),
        (
            "--batch_timeout_micros=-1",
            "--batch_timeout_micros must be an int >= 0; received batch_timeout_micros=-1",
        ),
        ("--request_timeout_s=0", "--request_timeout_s must be > 0; received request_timeout_s=0.0"),
        ("--port=70000", "--port must be an int in [0, 65535] (0 picks a free one); received port=70000"),
        ("--model_name=a:b", "--model_name must be a name without '/' or ':'; received model_name='a:b'"),
        (
            "--served_model_name=a/b",
            "--served_model_name must be a name without '/' or ':'; received served_model_name='a/b'",
        ),
        ("--api_key=", "--api_key: the key must be one word of printable characters, not empty"),
        ("--api_key=two words", "--api_key: the key must be one word of printable characters, not empty"),
    ],
)
def test_bad_flags_are_one_line_before_tensorflow_loads(tmp_path, flag, message):
    assert serve_without_tensorflow(f"--export_dir={tmp_path}", flag) == (2, [f"error: {message}"], False)


def test_api_key_flags_are_one_line_before_tensorflow_loads(tmp_path):
    key_file = tmp_path / "key"
    assert serve_without_tensorflow(
        f"--export_dir={tmp_path}", "--api_key=a", f"--api_key_file={key_file}"
    ) == (
        2,
        ["error: --api_key and --api_key_file: pass one of them"],
        False,
    )
    code, lines, tensorflow = serve_without_tensorflow(
        f"--export_dir={tmp_path}", f"--api_key_file={key_file}"
    )
    assert (code, tensorflow, len(lines)) == (1, False, 1)
    assert lines[0].startswith(f"error: --api_key_file={key_file}: cannot read it")
    key_file.write_text("\n")
    assert serve_without_tensorflow(f"--export_dir={tmp_path}", f"--api_key_file={key_file}") == (
        2,
        [f"error: --api_key_file={key_file}: the key must be one word of printable characters, not empty"],
        False,
    )


def test_openai_api_beside_tf_servings(server, trained):
    """The same process answers OpenAI's API, named by --model_name (no --served_model_name), as
    README's curl examples ask it."""
    url, _ = server
    base = url.split("/v1/")[0]
    assert request(base + "/v1/models")[1]["data"][0]["id"] == "lm"
    body = {"model": "lm", "prompt": "ROMEO:", "max_tokens": 12, "temperature": 0}
    status, answer = request(base + "/v1/completions", body)
    text = greedy(trained, ["ROMEO:"])[0]
    assert status == 200 and answer["choices"][0]["text"] == text
    assert answer["usage"]["completion_tokens"] == 12
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps({**body, "stream": True}).encode())
    with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in response.read().decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def readme_curl_commands():
    """The curl commands of README's "Use it from OpenAI clients", each joined onto one line."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it from OpenAI clients", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [line for line in block.splitlines() if line.startswith("curl ")]


def test_readmes_curl_examples_work_as_written(server, trained):
    url, _ = server
    base = url.split("/v1/")[0]
    commands = readme_curl_commands()
    assert len(commands) == 3
    outputs = []
    for command in commands:
        # The README's server is on port 8501 and names its model "model"; this one's are others.
        command = command.replace("http://127.0.0.1:8501", base).replace('"model": "model"', '"model": "lm"')
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=REQUEST_TIMEOUT)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert json.loads(outputs[0])["data"][0]["id"] == "lm"
    completion = json.loads(outputs[1])["choices"][0]
    assert completion["text"] == greedy(trained, ["ROMEO:"], n=40)[0]
    events = [e for e in outputs[2].split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert (
        chunks[0]["object"] == "chat.completion.chunk"
        and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    )
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.slow  # a second server process; tests/serving/test_openai_api.py checks the key in-process
def test_api_key_and_served_model_name(export_dir, tmp_path):
    """--api_key_file: every request of both APIs needs the bearer key (401 in OpenAI's shape
    otherwise); --served_model_name names the model in OpenAI's API."""
    key_file = tmp_path / "key"
    key_file.write_text("sk-local-123\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lm_keras.serve",
            f"--export_dir={export_dir}",
            "--port=0",
            "--served_model_name=shakespeare",
            f"--api_key_file={key_file}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert "OpenAI API on http://127.0.0.1:" in lines[1] and "API key required" in lines[1], lines
        base = lines[0].split(" on ")[1].strip().split("/v1/")[0]

        def call(path, key, body=None):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            data = json.dumps(body).encode() if body else None
            req = urllib.request.Request(base + path, data=data, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        for key in (None, "sk-local-12", "sk-local-1234"):
            for path in ("/v1/models", "/v1/models/model"):
                status, answer = call(path, key)
                assert status == 401 and answer["error"]["code"] == "invalid_api_key", (path, key)
        assert call("/v1/models", "sk-local-123") == (
            200,
            {
                "object": "list",
                "data": [{"id": "shakespeare", "object": "model", "created": ANY, "owned_by": "lm_keras"}],
            },
        )
        status, answer = call("/v1/completions", "sk-local-123", {"model": "model", "prompt": "x"})
        assert status == 404 and answer["error"]["code"] == "model_not_found"
        status, answer = call("/v1/completions", "sk-local-123", {"model": "shakespeare", "prompt": "x"})
        assert status == 200 and answer["model"] == "shakespeare"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("where", ["nonexistent", "empty", "file", "version_without_saved_model"])
def test_an_export_dir_without_a_version_is_one_line_before_tensorflow_loads(tmp_path, where):
    export_dir = tmp_path / where
    if where == "empty":
        export_dir.mkdir()
    elif where == "file":
        export_dir.write_text("not a folder")
    elif where == "version_without_saved_model":
        (export_dir / "1" / "variables").mkdir(parents=True)
    assert serve_without_tensorflow(f"--export_dir={export_dir}") == (
        1,
        [
            f"error: --export_dir={export_dir} holds no version folder with a saved_model.pb; export one "
            "first (python -m lm_keras.export --model_dir=... --export_dir=...)"
        ],
        False,
    )
