"""Exports run through a TF1 session loader, the way TF Serving loads them.

TF Serving, `saved_model_cli run` and the C API load a SavedModel into a session
by its graph alone (see `lm_keras.serving.session_model`). Every model family with
both tokenizer kinds is exported here and run, in a process without lm_keras,
through every signature; the answers must equal lm_keras's in-process ones.
Character and gpt2_bpe exports run where tensorflow_text cannot be imported, as in the stock
tensorflow/serving image.
"""

import json
import os
import pathlib
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from tests.generation.tiny_models import corpus_text, random_model

REPO = pathlib.Path(__file__).resolve().parents[2]
CHECK = REPO / "tests" / "serving" / "session_loader_check.py"
C_API_CHECK = REPO / "tests" / "serving" / "c_api_check.py"
SESSION_MODEL = REPO / "lm_keras" / "serving" / "session_model.py"
PROMPTS = ["ROMEO:", "", "First Citizen:\nBefore we proceed", "naïve 🙂"]
SEEDS = [7, 8, 9, 10]
NEW_TOKENS = 10
# (model family, tokenizer kind): every family with characters, SentencePiece
# (tensorflow_text's ops in the graph) for the two families that predict every position, and
# GPT-2's byte-level BPE (core TensorFlow ops only) for the Transformer.
CASES = [
    ("transformer", "char"),
    ("lstm", "char"),
    ("documented_lstm", "char"),
    ("transformer", "bpe"),
    ("lstm", "unigram"),
    ("transformer", "gpt2_bpe"),
]
# The default suite: every family, characters, SentencePiece (the LSTM's unigram) and GPT-2's
# byte-level BPE; the other cases repeat those code paths (slow).
DEFAULT_CASES = [
    ("transformer", "char"),
    ("documented_lstm", "char"),
    ("lstm", "unigram"),
    ("transformer", "gpt2_bpe"),
]


def case_params(cases, default):
    return [pytest.param(c, id="-".join(c), marks=() if c in default else pytest.mark.slow) for c in cases]


NEEDS_TENSORFLOW_TEXT = ("bpe", "unigram")
TIMEOUT = 600


def run_session_loader(exports, tmp_path, tensorflow_text):
    """Runs `exports` ([{"path", "calls"}]) in a bare process; returns its results.

    Without `tensorflow_text` the process cannot import it, as a stock TensorFlow or
    TF Serving build has none of its ops.
    """
    request = tmp_path / f"session_request_{tensorflow_text}.json"
    request.write_text(json.dumps({"tensorflow_text": tensorflow_text, "exports": exports}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [sys.executable, "-S", CHECK, sysconfig.get_paths()["purelib"], SESSION_MODEL, request],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["lm_keras_loaded"] is False and answer["tensorflow_text_loaded"] is tensorflow_text
    return answer["results"]


def tokenizer_of(kind):
    from lm_keras.tokenizers import train

    text = corpus_text()
    return train(kind, text, vocab_size=None if kind == "char" else 320)


def calls(token_ids, stops=None):
    """The calls the session loader makes; with `stops` (a row of stop strings per prompt), a last
    greedy `generate` call with them."""
    n = len(PROMPTS)
    stopped = (
        []
        if stops is None
        else [
            {
                "signature": "generate",
                "inputs": {
                    "prompt": PROMPTS,
                    "max_new_tokens": [NEW_TOKENS],
                    "temperature": [0.0],
                    "top_k": [0],
                    "top_p": [1.0],
                    "seed": [1],
                    "stop": stops,
                },
            }
        ]
    )
    return [
        {"signature": "serving_default", "inputs": {"prompt": PROMPTS}},
        {
            "signature": "generate",
            "inputs": {
                "prompt": PROMPTS,
                "max_new_tokens": [NEW_TOKENS + 2] * n,
                "temperature": [0.9] * n,
                "top_k": [0] * n,
                "top_p": [1.0] * n,
                "seed": SEEDS,
                "stop": [[]],
            },
        },
        {"signature": "next_token_logits", "inputs": {"token_ids": token_ids}},
        {"signature": "tokenize", "inputs": {"text": PROMPTS}},
        {"signature": "detokenize", "inputs": {"token_ids": token_ids}},
        {"signature": "serving_default", "inputs": {"prompt": ["bad \udcff"]}},  # invalid UTF-8
    ] + stopped


class Exports(dict):
    """{case: (model, tokenizer, version folder, token ids to send)}, each case exported when a
    test first asks for it; `answer(case)` runs it through the session loader, once."""

    def __init__(self, root, jit_compile=False, signatures=None):
        super().__init__()
        self.root, self.jit_compile, self.signatures = root, jit_compile, signatures
        self.answers = {}

    def answer(self, case):
        """The session loader's answers to `calls` for the case's export, in a bare process."""
        if case not in self.answers:
            model, tokenizer, path, sent = self[case]
            # Character and gpt2_bpe exports need core TensorFlow ops only (the stock
            # tensorflow/serving image); SentencePiece exports need tensorflow_text's ops too.
            request = [
                {"path": str(path), "calls": calls(sent, stops_for(model, tokenizer))[: self.signatures]}
            ]
            needs_text = case[1] in NEEDS_TENSORFLOW_TEXT
            (self.answers[case],) = run_session_loader(request, self.root, tensorflow_text=needs_text)
        return self.answers[case]

    def __missing__(self, case):
        from lm_keras.serving.generation_module import GenerationModule
        from lm_keras.serving.saved_model_export import save_version

        family, kind = case
        tokenizer = tokenizer_of(kind)
        model = random_model(family, tokenizer.vocab_size, seed=CASES.index(case))
        module = GenerationModule(
            model, tokenizer, temperature=0.0, max_new_tokens=NEW_TOKENS, jit_compile=self.jit_compile
        )
        path = save_version(module, self.root / f"{family}_{kind}")
        ids = tokenizer.encode("To be, or not")
        self[case] = (model, tokenizer, path, [ids.tolist(), ids[::-1].tolist()])
        return self[case]


def stops_for(model, tokenizer):
    """A row of stop strings per prompt, padded with "": row 0 stops at the last character of its
    greedy text (so it stops), row 1 has none, row 2 one it never writes, row 3 two."""
    from lm_keras.generation import generate

    free = generate(model, tokenizer, PROMPTS, max_new_tokens=NEW_TOKENS, temperature=0.0)
    last = free[0].rstrip("\ufffd")[-1:]  # not U+FFFD, which stands for part of a character
    return [[last, ""], ["", ""], ["\u00a7\u00a7", ""], [free[3][1:3] or "x", "e"]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return Exports(tmp_path_factory.mktemp("session_exports"))


@pytest.mark.parametrize("case", case_params(CASES, DEFAULT_CASES))
def test_text_equals_generate(exported, case):
    from lm_keras.generation import generate

    model, tokenizer, _, _ = exported[case]
    default, sampled = exported.answer(case)[:2]
    assert default["continuation"] == generate(
        model, tokenizer, PROMPTS, max_new_tokens=NEW_TOKENS, temperature=0.0
    )
    # Seeded sampling through `generate` draws what in-process generate draws (prompt i: seed 7 + i).
    assert sampled["continuation"] == generate(
        model, tokenizer, PROMPTS, max_new_tokens=NEW_TOKENS + 2, temperature=0.9, top_k=0, seed=SEEDS[0]
    )


# Characters, and GPT-2's bytes (a token may end inside a character) in the default suite.
@pytest.mark.parametrize("case", case_params(CASES, [("transformer", "char"), ("transformer", "gpt2_bpe")]))
def test_per_row_stop_strings_equal_generate(exported, case):
    """The session loader stops each row at its own stop strings, as generate_details does alone."""
    from lm_keras.generation import generate_details

    model, tokenizer, _, _ = exported[case]
    answer = exported.answer(case)[6]
    expected = [
        generate_details(
            model,
            tokenizer,
            [prompt],
            max_new_tokens=NEW_TOKENS,
            temperature=0.0,
            stop=[s for s in row if s] or None,
        )[0]
        for prompt, row in zip(PROMPTS, stops_for(model, tokenizer))
    ]
    assert answer["continuation"] == [c.text for c in expected]
    assert answer["finish_reason"] == [c.finish_reason for c in expected]
    assert answer["completion_tokens"] == [c.completion_tokens for c in expected]
    assert answer["finish_reason"][0] == "stop"


@pytest.mark.parametrize("case", case_params(CASES, DEFAULT_CASES))
def test_every_other_signature(exported, case):
    from lm_keras.generation import decoder_for

    model, tokenizer, _, token_ids = exported[case]
    logits, tokens, texts, invalid = exported.answer(case)[2:6]
    expected = decoder_for(model, pad_id=int(tokenizer.encode("\n")[-1])).next_token_logits(
        np.array(token_ids, np.int32)
    )
    # The same function traced in another graph: equal up to float32 rounding.
    np.testing.assert_allclose(logits["logits"], expected, rtol=0, atol=50 * np.finfo(np.float32).eps)
    for row, prompt, length in zip(tokens["token_ids"], PROMPTS, tokens["lengths"]):
        ids = tokenizer.encode(prompt).tolist()
        assert length == len(ids) and row[:length] == ids and set(row[length:]) <= {-1}
    assert texts["text"] == [tokenizer.decode(row) for row in token_ids]
    assert invalid["error"] == "InvalidArgumentError" and "not valid UTF-8" in invalid["message"]


@pytest.mark.slow  # the same session loading as run_session_loader's and the C API's, from Python
def test_saved_model_cli_runs_the_export(exported, tmp_path):
    """TensorFlow's own session-loading tool, as the issue's reproduction ran it."""
    from lm_keras.generation import generate

    model, tokenizer, path, _ = exported["transformer", "char"]
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(path),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            'prompt=["ROMEO:"]',
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = generate(model, tokenizer, ["ROMEO:"], max_new_tokens=NEW_TOKENS, temperature=0.0)[0]
    assert f"[{expected.encode('utf-8')!r}]" in result.stdout


@pytest.mark.parametrize("case", [("transformer", "char"), ("lstm", "unigram")], ids=["char", "unigram"])
def test_c_api_runs_the_export(exported, case, tmp_path):
    """TF_LoadSessionFromSavedModel and TF_SessionRun, in a process that never imports TensorFlow's
    Python package: the C++ loader that TF Serving's model server runs. tensorflow_text's SentencePiece
    op library is loaded with TF_LoadLibrary, as a TF Serving build that links those ops has them."""
    import tensorflow_text

    from lm_keras.generation import generate

    model, tokenizer, path, _ = exported[case]
    sentencepiece_ops = pathlib.Path(tensorflow_text.__file__).parent / "python" / "ops"
    op_libraries = [] if case[1] == "char" else [str(sentencepiece_ops / "_sentencepiece_tokenizer.so")]
    answer = run_c_api(path, tmp_path, xla=False, op_libraries=op_libraries)  # TF Serving's default: no XLA
    assert answer.get("tensorflow_imported") is False, answer
    assert answer["continuations"] == generate(
        model, tokenizer, PROMPTS, max_new_tokens=NEW_TOKENS, temperature=0.0
    )


# The XLA export (`jit_compile=True`): the families whose loops differ (the cache in phases, the
# LSTM's state), through the same loaders. Character tokenizers: the stock ops around the loop.
XLA_CASES = [("transformer", "char"), ("lstm", "char")]


@pytest.fixture(scope="module")
def xla_exported(tmp_path_factory):
    """As `exported`, for XLA exports, through serving_default and generate."""
    return Exports(tmp_path_factory.mktemp("xla_session_exports"), jit_compile=True, signatures=2)


# TF Serving's C++ loader runs the XLA export in the default suite (the C API test below); this
# Python session loader repeats it (slow).
@pytest.mark.parametrize("case", case_params(XLA_CASES, []))
def test_xla_export_text_equals_generate(xla_exported, case):
    """A TF1 session runs the XLA loop (TensorFlow compiles it on its first request) to the same text."""
    from lm_keras.generation import generate

    model, tokenizer, _, _ = xla_exported[case]
    default, sampled = xla_exported.answer(case)
    assert default["continuation"] == generate(
        model, tokenizer, PROMPTS, max_new_tokens=NEW_TOKENS, temperature=0.0
    )
    assert sampled["continuation"] == generate(
        model, tokenizer, PROMPTS, max_new_tokens=NEW_TOKENS + 2, temperature=0.9, top_k=0, seed=SEEDS[0]
    )


def test_xla_export_holds_only_the_loop_in_xla_functions(xla_exported):
    """Only the decoding loop is XLA; the tokenizer and the checks around it stay stock ops."""
    from tests.test_export_cli import must_compile, saved_model_proto

    graph = saved_model_proto(xla_exported["transformer", "char"][2])
    compiled = must_compile(graph)  # one trace for each generating signature
    assert len(compiled) == 2 and all("_decode_buckets" in name for name in compiled), compiled
    ops = {node.op for function in graph.graph_def.library.function for node in function.node_def}
    assert "XlaDynamicUpdateSlice" in ops and not {op for op in ops if "PyFunc" in op}


def run_c_api(path, tmp_path, xla, op_libraries=()):
    """serving_default through the C API's session loader; with `xla` false XLA compilation is
    disabled first, as in TF Serving started without --xla_cpu_compilation_enabled=true."""
    from tests.test_export_cli import saved_model_proto

    signature = saved_model_proto(path).signature_def["serving_default"]
    request = tmp_path / f"c_api_request_{xla}.json"
    request.write_text(
        json.dumps(
            {
                "export": str(path),
                "op_libraries": list(op_libraries),
                "prompts": PROMPTS,
                "input": signature.inputs["prompt"].name,
                "output": signature.outputs["continuation"].name,
                "xla": xla,
            }
        ),
        encoding="utf-8",
    )
    library = pathlib.Path(sysconfig.get_paths()["purelib"]) / "tensorflow" / "libtensorflow_cc.so.2"
    result = subprocess.run(
        [sys.executable, "-S", C_API_CHECK, library, request],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_c_api_runs_the_xla_export_only_where_xla_compiles(xla_exported, tmp_path):
    """TF Serving's C++ loader runs the XLA export with XLA compilation on, and refuses it on its
    first request with XLA compilation off (TF Serving's default): why the default export is a plain
    graph."""
    from lm_keras.generation import generate

    model, tokenizer, path, _ = xla_exported["transformer", "char"]
    answer = run_c_api(path, tmp_path, xla=True)
    assert answer.get("tensorflow_imported") is False, answer
    assert answer["continuations"] == generate(
        model, tokenizer, PROMPTS, max_new_tokens=NEW_TOKENS, temperature=0.0
    )
    refused = run_c_api(path, tmp_path, xla=False)
    assert "continuations" not in refused and refused["error"] != 0, refused
