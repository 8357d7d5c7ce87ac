"""Commands on a converted GPT-2: convert, train --init_from, generate, evaluate, export in both formats."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.test_export_cli import run_bare

REPO = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT = 600
PROMPTS = ["ROMEO:", "First Citizen:\nBefore we proceed", "naïve 🙂"]


def run(module, *flags):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", f"lm_keras.{module}", *flags],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
        env=env,
    )


@pytest.fixture(scope="module")
def model_dir(sources, tmp_path_factory):
    """A model directory written by `python -m lm_keras.convert` from the Hugging Face folder."""
    model_dir = tmp_path_factory.mktemp("cli") / "gpt2"
    result = run("convert", f"--source={sources['huggingface']}", f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "huggingface GPT-2: 2 layers, 2 heads, 32 wide, context 64, vocab 400, 40,320 parameters"
        in result.stdout
    )
    assert f"--init_from={model_dir}" in result.stdout
    return model_dir


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    from tests.generation.tiny_models import corpus_text

    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text(corpus_text()[:20_000], encoding="utf-8")
    return path


def test_generate_and_evaluate_run_on_the_converted_directory(model_dir, converted, corpus_file):
    from lm_keras.generation import generate

    result = run(
        "generate", f"--model_dir={model_dir}", "--prompt=ROMEO:", "--max_new_tokens=10", "--temperature=0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trained = converted["huggingface"]
    expected = generate(trained.model, trained.tokenizer, ["ROMEO:"], max_new_tokens=10, temperature=0.0)[0]
    assert result.stdout.rstrip("\n") == "ROMEO:" + expected
    result = run(
        "evaluate",
        f"--model_dir={model_dir}",
        f"--corpus={corpus_file}",
        "--batch_size=8",
        "--jit_compile=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    # Random weights: a loss near or above the uniform one, ln(400) = 6.0 nats per token.
    assert figures["val_loss"] > 4.0 and figures["val_bits_per_char"] > 0


def test_attention_maps_of_the_converted_model(converted):
    from lm_keras.interpret import attention_maps

    trained = converted["huggingface"]
    tokens, maps = attention_maps(trained.model, trained.tokenizer, PROMPTS[1])
    assert "".join(tokens) == PROMPTS[1]
    assert maps.shape == (2, 2, len(tokens), len(tokens))
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(maps, 1)).max() == 0.0


@pytest.mark.slow  # fine-tuning, export and serving are tested on native runs; this chains them on GPT-2
def test_fine_tune_export_and_serve(model_dir, corpus_file, tmp_path):
    from lm_keras.generation import generate
    from lm_keras.model_dir import load_trained
    from lm_keras.serving.saved_model_export import export_saved_model

    tuned = tmp_path / "tuned"
    result = run(
        "train",
        f"--model_dir={tuned}",
        f"--init_from={model_dir}",
        f"--corpus={corpus_file}",
        "--max_steps=4",
        "--batch_size=2",
        "--eval_every=4",
        "--eval_batches=1",
        "--checkpoint_every=4",
        "--log_every=2",
        "--warmup_steps=1",
        "--sample_tokens=0",
        "--learning_rate=1e-4",
        "--min_learning_rate=1e-5",
        "--jit_compile=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"fine-tuning from {model_dir}" in result.stdout
    config = json.loads((tuned / "config.json").read_text(encoding="utf-8"))
    assert (config["data"]["tokenizer"], config["model"]["mlp"], config["model"]["seq_len"]) == (
        "gpt2_bpe",
        "gelu_tanh",
        64,
    )

    exports = tmp_path / "exports"
    export_saved_model(tuned, exports, temperature=0.0, max_new_tokens=8)
    answer = run_bare(exports / "1", tmp_path, prompts=PROMPTS)
    assert not answer["lm_keras_loaded"]
    run_ = load_trained(tuned)
    expected = generate(run_.model, run_.tokenizer, PROMPTS, max_new_tokens=8, temperature=0.0)
    assert answer["serving_default"] == expected


def test_huggingface_export_then_convert_back_gives_identical_weights(
    sources, converted, model_dir, tmp_path
):
    from safetensors.numpy import load_file

    from lm_keras.conversion import convert

    export = tmp_path / "hf"
    result = run("export", f"--model_dir={model_dir}", f"--export_dir={export}", "--format=huggingface")
    assert result.returncode == 0, result.stderr[-3000:]
    source_tensors = load_file(str(sources["huggingface"] / "model.safetensors"))
    exported = load_file(str(export / "model.safetensors"))
    assert sorted(exported) == sorted(source_tensors)
    for name, tensor in source_tensors.items():
        np.testing.assert_array_equal(exported[name], tensor, err_msg=name)
    for name in ("vocab.json", "merges.txt"):
        assert _tokenizer_file(export / name) == _tokenizer_file(sources["huggingface"] / name), name
    config = json.loads((export / "config.json").read_text(encoding="utf-8"))
    assert (config["model_type"], config["activation_function"], config["n_embd"]) == ("gpt2", "gelu_new", 32)

    back = convert(export, tmp_path / "back", log=lambda line: None)
    first = converted["huggingface"].model
    assert [v.path.split("/", 1)[1] for v in back.model.weights] == [
        v.path.split("/", 1)[1] for v in first.weights
    ]
    for ours, theirs in zip(back.model.weights, first.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)


def _tokenizer_file(path):
    """vocab.json as a dict, merges.txt as its merge lines."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return [line for line in text.splitlines() if line and not line.startswith("#version")]
