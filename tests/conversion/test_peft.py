"""LoRA on a converted GPT-2: trained from the command line, exported merged (Hugging Face) and as
PEFT's adapter (adapter_config.json, adapter_model.safetensors), whose update is exactly ours."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lm_keras import model_dir as md
from lm_keras.conversion import gpt2, peft

REPO = md.pathlib.Path(__file__).resolve().parents[2]
PREFIX = "base_model.model.transformer."


def _run(module, *flags):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", f"lm_keras.{module}", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )


def _peft_merged(base, tensors, settings):
    """Hugging Face GPT-2 weights with PEFT's LoRA merged as PEFT merges a Conv1D (fan_in_fan_out):
    W + (alpha / R) (B A)^T, alpha and R from rank_pattern and alpha_pattern where they name the module."""
    merged = dict(base)
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key.removeprefix(PREFIX).removesuffix(".lora_A.weight")  # h.0.attn.c_attn
        b = tensors[key.replace("lora_A", "lora_B")]
        short = module.split(".", 1)[1].split(".", 1)[1]  # attn.c_attn
        pattern = next((p for p in settings["rank_pattern"] if short.endswith(p)), None)
        rank = settings["rank_pattern"][pattern] if pattern else settings["r"]
        alpha = settings["alpha_pattern"][pattern] if pattern else settings["lora_alpha"]
        assert a.shape[0] == rank == b.shape[1]
        merged[module + ".weight"] = base[module + ".weight"] + alpha / rank * (b @ a).T
    return merged


@pytest.mark.parametrize(
    "targets, modules",
    [
        ("attention", ["attn.c_attn"]),
        ("attention_mlp", ["attn.c_attn", "mlp.c_fc", "mlp.c_proj"]),
        ("all", ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]),
    ],
)
def test_peft_tensors_give_exactly_the_merged_model(converted, targets, modules):
    model_dir = converted["huggingface"].model_dir
    base = gpt2.weights(md.load_trained(model_dir).model)
    model = md.load_trained(model_dir).model
    model.enable_lora(2, 3.0, targets)
    rng = np.random.default_rng(0)
    for v in model.lora_variables:
        v.assign(rng.normal(0.0, 0.3, v.shape).astype("float32"))
    tensors = peft.adapter_tensors(model)
    settings = peft.adapter_config(model, "gpt2")
    assert sorted(tensors) == sorted(
        f"{PREFIX}h.{i}.{m}.lora_{x}.weight" for i in range(2) for m in modules for x in "AB"
    )
    fused = 3 if targets == "all" else 2  # q, v (and k): one stacked pair of rank fused * r
    a, b = (
        tensors[f"{PREFIX}h.0.attn.c_attn.lora_A.weight"],
        tensors[f"{PREFIX}h.0.attn.c_attn.lora_B.weight"],
    )
    assert a.shape == (fused * 2, 32) and b.shape == (3 * 32, fused * 2)
    if targets != "all":
        assert not b[32:64].any()  # the keys' rows: q + v exactly
    assert settings["rank_pattern"] == {"c_attn": fused * 2} and settings["alpha_pattern"] == {
        "c_attn": fused * 3.0
    }
    assert (settings["r"], settings["lora_alpha"], settings["fan_in_fan_out"]) == (2, 3.0, True)
    merged = gpt2.weights(model.merge_lora())
    expected = _peft_merged(base, tensors, settings)
    assert expected.keys() == merged.keys()
    for name in merged:
        np.testing.assert_allclose(expected[name], merged[name], atol=2e-6, err_msg=name)
    changed = {n for n in merged if not np.array_equal(merged[n], base[n])}
    assert changed == {f"h.{i}.{m}.weight" for i in range(2) for m in modules}


@pytest.fixture(scope="module")
def lora_gpt2(sources, tmp_path_factory):
    """A converted GPT-2 (context 64) LoRA-trained from the command line on 32-token windows."""
    from tests.generation.tiny_models import corpus_text

    root = tmp_path_factory.mktemp("lora_gpt2")
    base = root / "gpt2"
    result = _run("convert", f"--source={sources['huggingface']}", f"--model_dir={base}")
    assert result.returncode == 0, result.stderr[-3000:]
    corpus = root / "corpus.txt"
    corpus.write_text(corpus_text()[:20_000], encoding="utf-8")
    run = root / "lora"
    result = _run(
        "train",
        f"--model_dir={run}",
        f"--init_from={base}",
        f"--corpus={corpus}",
        "--lora_rank=2",
        "--lora_alpha=4",
        "--lora_targets=all",
        "--seq_len=32",
        "--max_steps=3",
        "--batch_size=2",
        "--eval_every=3",
        "--eval_batches=1",
        "--checkpoint_every=3",
        "--learning_rate=3e-2",
        "--warmup_steps=0",
        "--min_learning_rate=3e-3",
        "--sample_tokens=0",
        "--jit_compile=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # d = 32, m = 128, r = 2, 2 blocks: 4 attention pairs of 2 r d, the MLP's 2 r (d + m).
    assert f"{2 * (4 * 2 * 2 * 32 + 2 * 2 * (32 + 128)):,} adapter parameters" in result.stdout
    return base, run


def test_export_of_a_lora_gpt2_as_peft_and_merged_huggingface(lora_gpt2, tmp_path):
    from safetensors.numpy import load_file

    base, run = lora_gpt2
    result = _run("export", f"--model_dir={run}", f"--export_dir={tmp_path / 'peft'}", "--format=peft")
    assert result.returncode == 0, result.stderr[-3000:]
    settings = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert settings["peft_type"] == "LORA" and settings["target_modules"] == [
        "c_attn",
        "attn.c_proj",
        "mlp.c_fc",
        "mlp.c_proj",
    ]
    assert (
        settings["base_model_name_or_path"]
        == json.loads((base / "config.json").read_text())["converted_from"]["source"]
    )
    tensors = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
    trained = md.load_trained(run)
    for name, value in peft.adapter_tensors(trained.model).items():
        np.testing.assert_array_equal(tensors[name], value)

    result = _run("export", f"--model_dir={run}", f"--export_dir={tmp_path / 'hf'}", "--format=huggingface")
    assert result.returncode == 0, result.stderr[-3000:]
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf_config["n_positions"] == 64  # the model's context, not the 32-token windows
    exported = load_file(str(tmp_path / "hf" / "model.safetensors"))
    expected = _peft_merged(gpt2.weights(md.load_trained(base).model), tensors, settings)
    for name, value in expected.items():
        np.testing.assert_allclose(exported[name], value, atol=2e-6, err_msg=name)
    # A run without adapters is refused in one line.
    result = _run("export", f"--model_dir={base}", f"--export_dir={tmp_path / 'none'}", "--format=peft")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: --model_dir={base} is not a LoRA run (no --lora_rank): --format=peft writes adapters; "
        "use --format=huggingface for the whole model"
    )


# PEFT's side runs in its own process: torch and TensorFlow in one process can crash at import.
PEFT_LOGITS = """
import sys, numpy as np, torch, transformers, peft
hf = transformers.GPT2LMHeadModel.from_pretrained(sys.argv[1])
adapted = peft.PeftModel.from_pretrained(hf, sys.argv[2]).eval()
ids = np.load(sys.argv[3])
with torch.no_grad():
    np.save(sys.argv[4], adapted(torch.tensor(ids, dtype=torch.long)).logits.numpy())
"""


@pytest.mark.slow
def test_peft_loads_the_adapter_into_transformers_gpt2(lora_gpt2, tmp_path):
    for module in ("torch", "transformers", "peft"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the peft extra)")
    base, run = lora_gpt2
    for args in ([base, tmp_path / "hf_base", "huggingface"], [run, tmp_path / "adapter", "peft"]):
        result = _run("export", f"--model_dir={args[0]}", f"--export_dir={args[1]}", f"--format={args[2]}")
        assert result.returncode == 0, result.stderr[-3000:]
    ids = np.arange(24, dtype="int32").reshape(2, 12) % 400
    np.save(tmp_path / "ids.npy", ids)
    command = [sys.executable, "-c", PEFT_LOGITS, str(tmp_path / "hf_base"), str(tmp_path / "adapter")]
    result = subprocess.run(
        command + [str(tmp_path / "ids.npy"), str(tmp_path / "theirs.npy")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = np.load(tmp_path / "theirs.npy")
    ours = np.asarray(md.load_trained(run).model(ids))
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
