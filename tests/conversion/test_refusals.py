"""Unsupported architectures, missing files and shape mismatches: one clear line each, nothing written."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lm_keras.conversion import convert, export_huggingface
from lm_keras.errors import UserError
from tests.conversion.test_convert_cli import REPO, run


def damaged(sources, tmp_path, config=None, tensors=None, remove=()):
    """A copy of the Hugging Face source with config.json or the tensors changed."""
    folder = tmp_path / "source"
    shutil.copytree(sources["huggingface"], folder)
    if config:
        path = folder / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}), encoding="utf-8")
    if tensors:
        save_file(tensors(load_file(str(folder / "model.safetensors"))), str(folder / "model.safetensors"))
    for name in remove:
        (folder / name).unlink()
    return folder


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(config={"model_type": "llama"}), r"holds a 'llama' model .* converts GPT-2 only"),
        (
            dict(config={"activation_function": "relu"}),
            r"activation_function='relu'; lm_keras supports gelu_new",
        ),
        (dict(config={"scale_attn_by_inverse_layer_idx": True}), r"scale_attn_by_inverse_layer_idx=True"),
        (
            dict(config={"n_embd": 48}),
            r"'wte\.weight' has shape \(400, 32\), but config\.json asks for \(400, 48\)",
        ),
        (dict(config={"vocab_size": 500}), r"vocab_size=500 but vocab\.json has 400 tokens"),
        (dict(remove=["merges.txt"]), r"has no merges\.txt: a Hugging Face GPT-2 folder holds"),
        (dict(remove=["model.safetensors"]), r"has no model\.safetensors.*convert pytorch_model\.bin"),
        (
            dict(tensors=lambda t: {k: v for k, v in t.items() if k != "h.1.mlp.c_fc.bias"}),
            r"has no tensor 'h\.1\.mlp\.c_fc\.bias'",
        ),
        (
            dict(tensors=lambda t: {**t, "lm_head.weight": t["wte.weight"] + 1}),
            r"lm_head\.weight that differs from wte\.weight",
        ),
        (
            dict(tensors=lambda t: {**t, "h.0.attn.q_norm.weight": np.ones(32, np.float32)}),
            r"tensors GPT-2 does not, e\.g\. 'h\.0\.attn\.q_norm\.weight'",
        ),
    ],
    ids=[
        "llama",
        "relu",
        "inverse_layer_scaling",
        "width_mismatch",
        "vocab_mismatch",
        "no_merges",
        "no_weights",
        "missing_tensor",
        "untied_head",
        "extra_tensor",
    ],
)
def test_bad_sources_get_one_line_and_leave_nothing(sources, tmp_path, change, message):
    source = damaged(sources, tmp_path, **change)
    with pytest.raises(UserError, match=message) as error:
        convert(source, tmp_path / "out", log=lambda line: None)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_a_tied_lm_head_and_old_mask_buffers_are_accepted(sources, tmp_path):
    def add(tensors):
        mask = np.tril(np.ones((1, 1, 64, 64), np.float32))
        return {**tensors, "lm_head.weight": tensors["wte.weight"], "h.0.attn.bias": mask}

    source = damaged(sources, tmp_path, tensors=add)
    assert convert(source, tmp_path / "out", log=lambda line: None).model.count_params() == 40_320


def test_existing_directories_are_never_overwritten(sources, converted, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists and is not empty"):
        convert(sources["huggingface"], tmp_path / "taken", log=lambda line: None)
    with pytest.raises(UserError, match="already exists and is not empty"):
        export_huggingface(converted["huggingface"].model_dir, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (dict(use_bias=False), r"this model has --use_bias=False; .* needs --use_bias=True"),
        (dict(model="lstm"), r"this model has --model=lstm; .* needs --model=transformer"),
        (dict(position="rope"), r"--position=rope; .* needs --position=learned"),
        (dict(norm="rmsnorm"), r"--norm=rmsnorm; .* needs --norm=layernorm"),
        (dict(use_qk_norm=True), r"--use_qk_norm=True; .* needs --use_qk_norm=False"),
        (dict(tie_embeddings=False), r"--tie_embeddings=False; .* needs --tie_embeddings=True"),
        (dict(logit_softcap=30.0), r"--logit_softcap=30\.0; .* needs --logit_softcap=0\.0"),
        (dict(mlp="relu2"), r"--mlp=relu2; .* needs --mlp=gelu_tanh or --mlp=gelu"),
        (dict(tokenizer="char"), r"--tokenizer=char; .* needs --tokenizer=gpt2_bpe"),
    ],
)
def test_models_gpt2_cannot_express_are_refused_naming_the_option(converted, tmp_path, flags, message):
    # The refusal comes from config.json alone, before any weights load.
    config = converted["huggingface"].config.replace(**flags)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(config.to_json(), encoding="utf-8")
    with pytest.raises(UserError, match=message):
        export_huggingface(model_dir, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_command_lines_exit_2_for_flags_and_1_for_inputs(converted, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lm_keras.convert", f"--model_dir={tmp_path}/x"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --source is required: a Hugging Face GPT-2 folder or a keras-hub preset folder"
    ]
    result = run("convert", f"--source={tmp_path}", f"--model_dir={tmp_path}/x")
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: --source={tmp_path} is neither a Hugging Face GPT-2 folder"
    )
    result = run(
        "export", "--model_dir=m", f"--export_dir={tmp_path}/hf", "--format=huggingface", "--version=2"
    )
    assert result.returncode == 2 and "--version is for --format=saved_model" in result.stderr
    result = run("train", f"--model_dir={converted['huggingface'].model_dir}", "--max_steps=1")
    assert result.returncode == 2
    assert "holds a converted model, not a training run: fine-tune it with --init_from=" in result.stderr
