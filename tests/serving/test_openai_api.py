"""OpenAI's API on the model server, spoken to by the `openai` package over 127.0.0.1.

One export of a tiny random Transformer (context 16, so answers run past it) and one
server for the module, with an API key; every answer is compared with what
`lm_keras.generation` gives in this process.
"""

import http.client
import json
import time

import pytest

from tests.generation.tiny_models import SEQ_LEN, char_tokenizer

openai = pytest.importorskip("openai")

KEY = "sk-test-0123456789"
NAME = "tiny"
LIMIT = 40  # the export's max_new_tokens_limit
MAX_PROMPT_BYTES = 64
PROMPTS = ["ROMEO:", "", "First Citizen:\nBefore we proceed"]  # the last is longer than the context
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who art thou?"}]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    import keras

    from lm_keras.config import ModelConfig
    from lm_keras.models import build_model

    tokenizer = char_tokenizer()
    assert tokenizer.eot_id is not None
    # One layer: the export traces the decoding loop a few times, each tracing the model.
    keras.utils.set_random_seed(0)
    config = ModelConfig(
        model="transformer",
        vocab_size=tokenizer.vocab_size,
        seq_len=SEQ_LEN,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
    )
    model = build_model(config)
    for w in model.weights:  # random init gives nearly flat logits; larger weights, clear choices
        if len(w.shape) >= 2:
            w.assign(w.numpy() * 3.0)
    return model, tokenizer


@pytest.fixture(scope="module")
def server(model_and_tokenizer, tmp_path_factory):
    from lm_keras.serving.generation_module import GenerationModule
    from lm_keras.serving.model_server import ModelServer
    from lm_keras.serving.saved_model_export import save_version

    model, tokenizer = model_and_tokenizer
    module = GenerationModule(
        model,
        tokenizer,
        temperature=0.0,
        max_new_tokens=12,
        max_prompt_bytes=MAX_PROMPT_BYTES,
        max_new_tokens_limit=LIMIT,
        max_prompts_per_request=8,
    )
    export_dir = tmp_path_factory.mktemp("export")
    save_version(module, export_dir)
    server = ModelServer(
        export_dir,
        port=0,
        served_model_name=NAME,
        api_key=KEY,
        max_batch_size=8,
        batch_timeout_micros=20000,
        max_body_bytes=4096,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    host, port = server.address
    return openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key=KEY, max_retries=0, timeout=120)


def expected(model_and_tokenizer, prompts, max_tokens, temperature=0.0, seed=0, stop=None, top_p=1.0):
    from lm_keras.generation.text_generation import generate_details

    model, tokenizer = model_and_tokenizer
    return generate_details(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_tokens,
        temperature=temperature,
        top_k=0,
        top_p=top_p,
        seed=seed,
        stop=stop,
    )


def expected_chat(model_and_tokenizer, messages, max_tokens, temperature, seed):
    """(text, finish_reason, completion tokens, prompt tokens) of the library's decoding loop
    on the chat template's ids (the prompt cut to the context, as generate cuts it)."""
    import tensorflow as tf

    from lm_keras import chat_template
    from lm_keras.generation.decode_loop import decode
    from lm_keras.generation.factory import decoder_for
    from lm_keras.generation.text_generation import unknown_id_of

    model, tokenizer = model_and_tokenizer
    ids, _ = chat_template.encode_messages(tokenizer, messages, add_generation_prompt=True)
    ids = ids[-SEQ_LEN:]
    out = decode(
        decoder_for(model, pad_id=int(tokenizer.encode("\n")[-1])),
        tf.constant([ids], tf.int32),
        tf.constant([len(ids)]),
        max_tokens,
        max_tokens,
        [temperature],
        [0],
        [1.0],
        tf.constant([seed], tf.int64),
        unknown_id=unknown_id_of(tokenizer),
        eot_id=tokenizer.eot_id,
    )
    row = out.tokens.numpy()[0]
    reason = "stop" if bool(out.stopped.numpy()[0]) else "length"
    return tokenizer.decode(row[row >= 0]), reason, int(out.completion_tokens.numpy()[0]), len(ids)


def streamed_texts(stream, rows, chat=False):
    """Each choice's text and finish reason from a stream of chunks, and the usage chunk."""
    texts, reasons, usage = [""] * rows, [None] * rows, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            assert reasons[choice.index] is None, "a chunk after the choice's finish_reason"
            piece = (choice.delta.content if chat else choice.text) or ""
            texts[choice.index] += piece
            reasons[choice.index] = choice.finish_reason
    return texts, reasons, usage


def test_models_lists_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [NAME]


@pytest.mark.parametrize(
    "settings",
    [
        dict(temperature=0.0),
        dict(temperature=0.9, seed=7, top_p=0.95),
        dict(temperature=1.0, seed=3, stop=["e", "th"]),
    ],
    ids=["greedy", "seeded", "stop"],
)
def test_completions_streamed_and_not_give_generates_text(client, model_and_tokenizer, settings):
    max_tokens = 30
    n = 2
    rows = [p for p in PROMPTS for _ in range(n)]
    want = expected(model_and_tokenizer, rows, max_tokens, **{"seed": 0, **settings})
    answer = client.completions.create(model=NAME, prompt=PROMPTS, max_tokens=max_tokens, n=n, **settings)
    assert answer.object == "text_completion" and answer.model == NAME and answer.id.startswith("cmpl-")
    assert [c.index for c in answer.choices] == list(range(len(rows)))
    assert [c.text for c in answer.choices] == [w.text for w in want]
    assert [c.finish_reason for c in answer.choices] == [w.finish_reason for w in want]
    completion_tokens = sum(w.completion_tokens for w in want)
    prompt_tokens = sum(w.prompt_tokens for w in want[::n])
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt_tokens, completion_tokens)
    assert answer.usage.total_tokens == prompt_tokens + completion_tokens

    stream = client.completions.create(
        model=NAME,
        prompt=PROMPTS,
        max_tokens=max_tokens,
        n=n,
        stream=True,
        stream_options={"include_usage": True},
        **settings,
    )
    texts, reasons, usage = streamed_texts(stream, len(rows))
    assert texts == [w.text for w in want]
    assert reasons == [w.finish_reason for w in want]
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt_tokens, completion_tokens)


def test_a_request_without_a_seed_draws_one(client):
    texts = {
        client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=20, temperature=1.0).choices[0].text
        for _ in range(3)
    }
    assert len(texts) > 1


@pytest.mark.parametrize(
    "settings", [dict(temperature=0.0), dict(temperature=0.8, seed=11)], ids=["greedy", "seeded"]
)
def test_chat_streamed_and_not_give_the_chat_templates_continuation(client, model_and_tokenizer, settings):
    max_tokens = 25
    text, reason, completion_tokens, prompt_tokens = expected_chat(
        model_and_tokenizer, MESSAGES, max_tokens, settings["temperature"], settings.get("seed", 0)
    )
    answer = client.chat.completions.create(
        model=NAME, messages=MESSAGES, max_tokens=max_tokens, **{"seed": 0, **settings}
    )
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    choice = answer.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == ("assistant", text, reason)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt_tokens, completion_tokens)

    stream = client.chat.completions.create(
        model=NAME, messages=MESSAGES, max_tokens=max_tokens, stream=True, **{"seed": 0, **settings}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    texts, reasons, _ = streamed_texts(chunks, 1, chat=True)
    assert (texts, reasons) == ([text], [reason])


def test_a_wrong_model_name_and_a_wrong_key_raise_the_packages_errors(client, server):
    with pytest.raises(openai.NotFoundError) as error:
        client.completions.create(model="gpt-4", prompt="ROMEO:")
    assert error.value.code == "model_not_found"
    host, port = server.address
    intruder = openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key="sk-wrong", max_retries=0)
    for call in (
        lambda: intruder.models.list(),
        lambda: intruder.completions.create(model=NAME, prompt="ROMEO:"),
        lambda: intruder.chat.completions.create(model=NAME, messages=MESSAGES, stream=True),
    ):
        with pytest.raises(openai.AuthenticationError) as error:
            call()
        assert error.value.status_code == 401 and error.value.code == "invalid_api_key"
    # TF Serving's API asks for the key too.
    assert raw_request(server, "GET", "/v1/models/model", key=None)[0] == 401
    assert raw_request(server, "GET", "/v1/models/model", key=KEY)[0] == 200


@pytest.mark.parametrize(
    "body,param,message",
    [
        (dict(prompt="x", n=17), "n", "n must be an integer in [1, 16]"),
        (dict(prompt=["x"] * 9, n=2), "n", "18 choices"),
        (dict(prompt="x", max_tokens=LIMIT + 1), None, f"max_new_tokens must be in [1, {LIMIT}]"),
        (
            dict(prompt="x", max_tokens=LIMIT + 1, stream=True),
            None,
            f"max_new_tokens must be in [1, {LIMIT}]",
        ),
        (
            dict(prompt="x" * (MAX_PROMPT_BYTES + 1)),
            None,
            f"longer than the limit of {MAX_PROMPT_BYTES} bytes",
        ),
        (dict(prompt="x", temperature=-1), "temperature", "temperature must be in [0, 2]"),
        (dict(prompt="x", stop=["a"] * 5), "stop", "at most 4"),
        (dict(prompt=[1, 2, 3]), "prompt", "token ids are not supported"),
        (dict(prompt="x", max_tokens="many"), "max_tokens", "max_tokens must be an integer"),
        (dict(messages=[{"role": "robot", "content": "x"}], chat=True), "messages[0].role", "robot"),
        (dict(messages=[], chat=True), "messages", "non-empty list"),
    ],
)
def test_client_mistakes_get_400_in_openais_shape(server, client, body, param, message):
    chat = body.pop("chat", False)
    status, answer = raw_request(
        server, "POST", "/v1/chat/completions" if chat else "/v1/completions", {"model": NAME, **body}
    )
    assert status == 400
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == param
    assert message in answer["error"]["message"]
    # The server keeps serving.
    assert client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=2).choices[0].text


def test_a_body_over_the_limit_and_bad_json_are_400(server):
    status, answer = raw_request(server, "POST", "/v1/completions", raw=b"x" * 5000)
    assert status == 400 and "over the limit of 4096 bytes" in answer["error"]["message"]
    status, answer = raw_request(server, "POST", "/v1/completions", raw=b"{not json")
    assert status == 400 and "not JSON" in answer["error"]["message"]


def test_a_client_that_leaves_mid_stream_frees_its_slot_at_once(server):
    api = server.openai
    pieces_before = api.pieces_run
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=60)
    body = json.dumps({"model": NAME, "prompt": "ROMEO:", "max_tokens": LIMIT, "stream": True})
    connection.request("POST", "/v1/completions", body, {"Authorization": f"Bearer {KEY}"})
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    first = response.fp.readline()
    assert first.strip()  # the chunk size line of the first event
    connection.sock.close()
    connection.close()
    deadline = time.monotonic() + 10
    while api.active_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert api.active_streams == 0
    # A whole answer of LIMIT tokens takes 1 + 2 + 4 + 8 + 16 + 16 = 6 pieces; the stream stopped
    # within one piece of the client's leaving.
    assert api.pieces_run - pieces_before <= 3


def test_concurrent_streams_join_the_request_batcher(server, client, model_and_tokenizer):
    import concurrent.futures

    prompts = ["ROMEO:", "JULIET:", "KING:", "O"]
    want = [w.text for w in expected(model_and_tokenizer, prompts, 20)]
    sizes_before = len(server.batcher.batch_sizes)

    def stream(prompt):
        chunks = client.completions.create(
            model=NAME, prompt=prompt, max_tokens=20, temperature=0.0, stream=True
        )
        return streamed_texts(chunks, 1)[0][0]

    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        texts = list(pool.map(stream, prompts))
    assert texts == want
    assert max(server.batcher.batch_sizes[sizes_before:]) > 1


def raw_request(server, method, path, body=None, raw=None, key=KEY):
    """(status, JSON answer) of one request over http.client."""
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=60)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    connection.request(method, path, data, headers)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


def test_visible_text_holds_back_what_a_later_token_may_change():
    from lm_keras.serving.openai_api import first_stop, visible_text

    assert visible_text("abc\ufffd", []) == "abc"
    assert visible_text("to be\n", ["\n\n"]) == "to be"
    assert visible_text("to be or", ["or not"]) == "to be "
    assert visible_text("to be", ["\n\n"]) == "to be"
    assert first_stop("a\n\nb th", ["th", "\n\n"]) == 1
    assert first_stop("xyz", ["q"]) is None
