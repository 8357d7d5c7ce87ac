"""The export module in this process: same text as `generate`, checks inside the graph."""

import numpy as np
import pytest
import tensorflow as tf

from tests.generation.tiny_models import SEQ_LEN, char_tokenizer, random_model

PROMPTS = ["ROMEO:", "", "First Citizen:\nBefore we proceed"]  # the last is longer than the context


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


def module_for(model, tokenizer, **settings):
    from lm_keras.serving.generation_module import GenerationModule, stock_ops_only

    module = GenerationModule(model, tokenizer, **{"temperature": 0.0, "max_new_tokens": 12, **settings})
    with stock_ops_only():  # trace as the export does
        for function in module.signatures().values():
            function.get_concrete_function()
    return module


@pytest.fixture(scope="module")
def transformer_module(tokenizer):
    model = random_model("transformer", tokenizer.vocab_size)
    return model, module_for(
        model, tokenizer, max_prompt_bytes=64, max_new_tokens_limit=30, max_prompts_per_request=4
    )


def texts(tensor):
    return [t.decode("utf-8") for t in tensor.numpy()]


# Every family's export gives generate's text through TF Serving's session loader
# (tests/serving/test_session_loader.py) and the dropped-token count in a bare process
# (tests/test_export_cli.py); this in-process check of the module repeats them (slow).
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["transformer", "lstm", "documented_lstm"])
def test_serving_default_equals_generate(kind, tokenizer):
    from lm_keras.generation import generate

    model = random_model(kind, tokenizer.vocab_size)
    out = module_for(model, tokenizer).serving_default(tf.constant(PROMPTS))
    assert texts(out["continuation"]) == generate(
        model, tokenizer, PROMPTS, max_new_tokens=12, temperature=0.0
    )
    dropped = len(PROMPTS[2]) - SEQ_LEN if kind != "lstm" else 0
    assert out["prompt_tokens_dropped"].numpy().tolist() == [0, 0, dropped]


def test_generate_signature_takes_settings_per_prompt(transformer_module, tokenizer):
    from lm_keras.generation import generate

    model, module = transformer_module
    prompts = tf.constant(["ROMEO:", "JULIET:"])
    out = module.generate(
        prompts,
        max_new_tokens=tf.constant([3, 7]),
        temperature=tf.constant([0.0]),
        top_k=tf.constant([0]),
        top_p=tf.constant([1.0]),
        seed=tf.constant([1], tf.int64),
    )
    assert [len(t) for t in texts(out["continuation"])] == [3, 7]
    # Seeded sampling: the same tokens as generate(seed=7), whose prompt i uses seed 7 + i.
    sampled = module.generate(
        prompts,
        max_new_tokens=tf.constant([10]),
        temperature=tf.constant([0.9]),
        top_k=tf.constant([20]),
        top_p=tf.constant([0.95]),
        seed=tf.constant([7, 8], tf.int64),
    )
    expected = generate(
        model,
        tokenizer,
        ["ROMEO:", "JULIET:"],
        max_new_tokens=10,
        temperature=0.9,
        top_k=20,
        top_p=0.95,
        seed=7,
    )
    assert texts(sampled["continuation"]) == expected
    # Without a request's seed (the default -1), each call draws its own.
    default_calls = [
        texts(
            module.generate(prompts, temperature=tf.constant([1.0]), max_new_tokens=tf.constant([30]))[
                "continuation"
            ]
        )
        for _ in range(2)
    ]
    assert default_calls[0] != default_calls[1]


@pytest.mark.parametrize(
    "call,message",
    [
        (dict(prompt=[b"bad \xff"]), "prompt is not valid UTF-8"),
        (dict(prompt=["x" * 65]), "prompt is longer than the limit of 64 bytes"),
        (dict(prompt=["a"] * 5), r"at most 4 rows per request \(max_prompts_per_request of this export\)"),
        (dict(max_new_tokens=[31]), r"max_new_tokens must be in \[1, 30\]"),
        (dict(max_new_tokens=[0]), r"max_new_tokens must be in \[1, 30\]"),
        (dict(temperature=[-1.0]), "temperature must be >= 0"),
        (dict(top_k=[-1]), "top_k must be >= 0"),
        (dict(top_p=[0.0]), r"top_p must be in \(0, 1\]"),
        (dict(max_new_tokens=[1, 2, 3]), "max_new_tokens must hold one value, or one per prompt"),
    ],
)
def test_bad_requests_are_invalid_argument_errors_naming_the_limit(transformer_module, call, message):
    _, module = transformer_module
    request = dict(
        prompt=["ROMEO:", "JULIET:"], max_new_tokens=[5], temperature=[0.0], top_k=[0], top_p=[1.0], seed=[1]
    )
    request.update(call)
    dtypes = dict(
        prompt=tf.string,
        max_new_tokens=tf.int32,
        temperature=tf.float32,
        top_k=tf.int32,
        top_p=tf.float32,
        seed=tf.int64,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        module.generate(**{k: tf.constant(v, dtypes[k]) for k, v in request.items()})


def test_tokenize_detokenize_and_next_token_logits(transformer_module, tokenizer):
    model, module = transformer_module
    out = module.tokenize(tf.constant(["ab", "c€"]))
    a, b, c = tokenizer.encode("abc").tolist()
    assert out["token_ids"].numpy().tolist() == [[a, b], [c, 0]]
    assert out["lengths"].numpy().tolist() == [2, 2]
    padded = tf.constant([[a, b, -1], [c, -1, -1]])
    assert texts(module.detokenize(padded)["text"]) == ["ab", "c"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"token_ids must be in \[0, "):
        module.detokenize(tf.constant([[tokenizer.vocab_size]]))
    ids = np.array([tokenizer.encode("First Citizen:\nBefore")], np.int32)  # 21 tokens, context 16
    logits = module.next_token_logits(tf.constant(ids))["logits"].numpy()
    np.testing.assert_allclose(logits, model(ids[:, -SEQ_LEN:]).numpy()[:, -1], rtol=1e-5, atol=1e-5)


def test_next_token_logits_limits_tokens_not_bytes(tokenizer):
    """A row of token ids has no bytes: the Transformer reads its last `context` tokens whatever
    its length (the check used to compare the length with max_prompt_bytes); the LSTM, which
    reads every token, refuses rows longer than max_prompt_bytes tokens."""
    ids = np.array([tokenizer.encode("First Citizen:\nBefore we proceed")], np.int32)  # 32 tokens
    transformer = random_model("transformer", tokenizer.vocab_size)
    module = module_for(transformer, tokenizer, max_prompt_bytes=8)
    logits = module.next_token_logits(tf.constant(ids))["logits"].numpy()
    np.testing.assert_allclose(logits, transformer(ids[:, -SEQ_LEN:]).numpy()[:, -1], rtol=1e-5, atol=1e-5)
    lstm = random_model("lstm", tokenizer.vocab_size)
    module = module_for(lstm, tokenizer, max_prompt_bytes=8)
    np.testing.assert_allclose(
        module.next_token_logits(tf.constant(ids[:, :8]))["logits"].numpy(),
        lstm(ids[:, :8]).numpy()[:, -1],
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 8 tokens long for this model"):
        module.next_token_logits(tf.constant(ids))


def test_served_text_never_holds_the_unknown_id(tokenizer):
    """Notebook 4's fine-tuned char model answered U+FFFD after U+FFFD: its greedy choice was the
    unknown id, which stands for no character. The export draws from the tokens that are text,
    as `generate` does, greedy and sampled alike."""
    from lm_keras.generation import generate

    model = unknown_loving_lstm(tokenizer)
    module = module_for(model, tokenizer, max_new_tokens=10)
    prompts = ["The ", "ROMEO:"]
    greedy = texts(module.serving_default(tf.constant(prompts))["continuation"])
    assert greedy == generate(model, tokenizer, prompts, max_new_tokens=10, temperature=0.0)
    sampled = module.generate(
        tf.constant(prompts),
        max_new_tokens=tf.constant([10]),
        temperature=tf.constant([1.0]),
        top_k=tf.constant([0]),
        top_p=tf.constant([1.0]),
        seed=tf.constant([5, 6], tf.int64),
    )
    assert texts(sampled["continuation"]) == generate(
        model, tokenizer, prompts, max_new_tokens=10, temperature=1.0, top_k=0, seed=5
    )
    for text in greedy + texts(sampled["continuation"]):
        assert len(text) == 10 and "\ufffd" not in text


def unknown_loving_lstm(tokenizer):
    """An LSTM whose most likely next token is always the unknown id, by a wide margin."""
    model = random_model("lstm", tokenizer.vocab_size)
    bias = model.output_projection.bias
    bias.assign(bias.numpy() + 50.0 * (np.arange(tokenizer.vocab_size) == tokenizer.unknown_id))
    # Nor may it end: these rows run to max_new_tokens.
    bias.assign(bias.numpy() - 50.0 * (np.arange(tokenizer.vocab_size) == getattr(tokenizer, "eot_id", None)))
    return model


def _traced_ops(function, *args):
    graph = tf.function(function).get_concrete_function(*args).graph
    return {op.type for op in graph.get_operations()}


def test_stock_ops_only_replaces_keras_xla_slice_update():
    """stock_ops_only patches a private Keras function: this fails when Keras changes under it."""
    from keras import ops

    from lm_keras.serving.generation_module import stock_ops_only

    def update(cache, value):
        return ops.slice_update(cache, (0, 1), value)

    args = (tf.TensorSpec([2, 4], tf.float32), tf.TensorSpec([2, 1], tf.float32))
    # Keras lowers slice_update to XLA's op (if not, the patch is no longer needed)...
    assert "XlaDynamicUpdateSlice" in _traced_ops(update, *args)
    with stock_ops_only():
        ops_inside = _traced_ops(update, *args)
    # ... and inside the block to a stock kernel, with the same result.
    assert "TensorStridedSliceUpdate" in ops_inside and not {o for o in ops_inside if o.startswith("Xla")}
    cache, value = tf.zeros([2, 4]), tf.constant([[1.0], [2.0]])
    with stock_ops_only():
        patched = update(cache, value)
    np.testing.assert_array_equal(patched, update(cache, value))
    np.testing.assert_array_equal(patched, [[0, 1, 0, 0], [0, 2, 0, 0]])


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(top_p=1.5), r"top_p must be in \(0, 1\] \(1 keeps every token\); received top_p=1.5"),
        (dict(top_p=0.0), r"top_p must be in \(0, 1\] \(1 keeps every token\); received top_p=0.0"),
        (dict(top_k=-1), r"top_k must be an int >= 0 \(0 keeps every token\); received top_k=-1"),
        (dict(temperature=-0.5), r"temperature must be >= 0 \(0 is greedy\); received temperature=-0.5"),
        (dict(max_new_tokens=31), r"max_new_tokens must be an int in \[1, 30\]; received max_new_tokens=31"),
        (
            dict(max_prompts_per_request=0),
            "max_prompts_per_request must be an int > 0; received max_prompts_per_request=0",
        ),
    ],
)
def test_rejects_bad_serving_default_settings(transformer_module, tokenizer, settings, message):
    from lm_keras.serving.generation_module import GenerationModule

    model, _ = transformer_module
    with pytest.raises(ValueError, match=message):
        GenerationModule(model, tokenizer, **{"max_new_tokens": 12, "max_new_tokens_limit": 30, **settings})


def test_a_seeded_export_answers_each_prompt_as_generate_with_that_seed(tokenizer):
    """With an export's seed, serving_default samples each prompt with it, alone or batched:
    the same answer at every request, the one `generate([prompt], seed=...)` gives."""
    from lm_keras.generation import generate

    model = random_model("transformer", tokenizer.vocab_size)
    module = module_for(model, tokenizer, temperature=1.0, top_k=0, seed=11)
    prompts = ["ROMEO:", "JULIET:"]
    answers = texts(module.serving_default(tf.constant(prompts))["continuation"])
    assert answers == [
        generate(model, tokenizer, [p], max_new_tokens=12, temperature=1.0, top_k=0, seed=11)[0]
        for p in prompts
    ]
    assert texts(module.serving_default(tf.constant(prompts[::-1]))["continuation"]) == answers[::-1]


def stop_rows(model, tokenizer, prompts, seeds):
    """Per-row stop strings for `prompts` sampled with `seeds`: row 0 stops at two characters of
    its own text (first complete at offset i + 1), row 1 at a string it never writes, row 2 has
    none; and what generate_details gives each row alone with its stop strings."""
    from lm_keras.generation import generate_details

    settings = dict(max_new_tokens=12, temperature=1.0, top_k=0)
    free = [generate_details(model, tokenizer, [p], seed=s, **settings)[0] for p, s in zip(prompts, seeds)]
    text = free[0].text
    i = next(i for i in range(1, 9) if text[i : i + 2] not in text[: i + 1])
    stops = [[text[i : i + 2], ""], ["\u00a7\u00a7", ""], ["", ""]]
    expected = [
        generate_details(model, tokenizer, [p], seed=s, stop=[x for x in row if x] or None, **settings)[0]
        for p, s, row in zip(prompts, seeds, stops)
    ]
    assert expected[0].finish_reason == "stop" and expected[0].text == text[:i]
    return stops, expected


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_per_row_stops_in_one_batch_equal_generate_per_row(tokenizer, jit_compile):
    """A batched server merges requests with different stop strings: each row stops at its own.
    An XLA export runs such a request in its plain graph's loop, and one without stop strings
    in its XLA loop, to the same answers."""
    model = random_model("lstm", tokenizer.vocab_size, seed=1)
    module = module_for(model, tokenizer, jit_compile=jit_compile)
    prompts, seeds = ["ROMEO:", "O", "JULIET:"], [5, 6, 7]
    stops, expected = stop_rows(model, tokenizer, prompts, seeds)
    settings = dict(
        max_new_tokens=[12], temperature=[1.0], top_k=[0], top_p=[1.0], seed=tf.constant(seeds, tf.int64)
    )
    out = module.generate(tf.constant(prompts), stop=tf.constant(stops), **settings)
    assert texts(out["continuation"]) == [c.text for c in expected]
    assert texts(out["finish_reason"]) == [c.finish_reason for c in expected] == ["stop", "length", "length"]
    assert out["completion_tokens"].numpy().tolist() == [c.completion_tokens for c in expected]
    # No stop strings (S = 0): every row runs to its length, as without the input.
    free = module.generate(tf.constant(prompts), stop=tf.zeros([1, 0], tf.string), **settings)
    assert texts(free["continuation"])[1:] == [c.text for c in expected[1:]]
    assert texts(free["finish_reason"]) == ["length"] * 3


def test_serving_default_uses_the_exports_stops_through_saved_model_load(tokenizer, tmp_path):
    """The export's stop strings: serving_default's, generate's default, and in its settings file;
    tf.saved_model.load gives the in-process answers."""
    import json

    from lm_keras.generation import generate_details
    from lm_keras.serving.saved_model_export import GENERATION_SETTINGS, save_version

    model = random_model("lstm", tokenizer.vocab_size, seed=1)
    prompts = ["ROMEO:", "O"]
    # A seeded export samples every prompt with its seed.
    settings = dict(max_new_tokens=12, temperature=1.0, top_k=0, seed=11)
    free = [generate_details(model, tokenizer, [p], **settings)[0] for p in prompts]
    text = free[0].text
    i = next(i for i in range(1, 9) if text[i] not in text[:i] + free[1].text)
    stop = [text[i], "\u00a7"]
    module = module_for(model, tokenizer, stop=stop, **settings)
    expected = [generate_details(model, tokenizer, [p], stop=stop, **settings)[0] for p in prompts]
    assert expected[0].text == text[:i] and expected[1] == free[1]
    path = save_version(module, tmp_path / "export")
    loaded = tf.saved_model.load(str(path))
    for outputs in (
        module.serving_default(tf.constant(prompts)),
        loaded.signatures["serving_default"](tf.constant(prompts)),
    ):
        assert texts(outputs["continuation"]) == [c.text for c in expected]
        assert texts(outputs["finish_reason"]) == ["stop", "length"]
        assert outputs["completion_tokens"].numpy().tolist() == [i + 1, 12]
    settings = json.loads((path / GENERATION_SETTINGS).read_text(encoding="utf-8"))
    assert settings["stop"] == stop and settings["eot_id"] == getattr(tokenizer, "eot_id", None)
    assert settings["max_new_tokens"] == 12 and settings["seed"] == 11
    # generate's default stop strings are the export's (TF Serving's gRPC fills inputs left out).
    defaults = loaded.signatures["generate"].structured_input_signature
    assert "stop" in defaults[1]
    bad = module.generate
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 16 stop strings"):
        bad(tf.constant(["a"]), stop=tf.constant([["x"] * 17]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row of stop strings, or one per prompt"):
        bad(tf.constant(["a", "b", "c"]), stop=tf.constant([["x"], ["y"]]))
