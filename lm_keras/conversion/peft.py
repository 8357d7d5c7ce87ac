"""A LoRA run of GPT-2 as PEFT's adapter: `adapter_config.json` and `adapter_model.safetensors`.

PEFT adapts Hugging Face GPT-2's `Conv1D` projections (`fan_in_fan_out`): a module's pair is
`lora_A.weight` `(R, in)` and `lora_B.weight` `(out, R)`, and it adds `(alpha / R) x A^T B^T`.

Our pairs map onto it exactly:
- `mlp.c_fc`, `mlp.c_proj` (Keras's `Dense` pairs `a (in, r)`, `b (r, out)`) and `attn.c_proj`
  (`A (H, D, r)` -> `(H D, r)`, `B (r, d)`): `lora_A = a^T`, `lora_B = b^T`, the same rank and alpha.
- `attn.c_attn` is one fused `(d, 3 d)` projection (queries, keys, values side by side), so PEFT
  gives it one pair for all three. Our query and value pairs (and the key's, for `"all"`) are
  stacked into it: `lora_A` `(k r, d)` holds each `A^T`, `lora_B` `(3 d, k r)` is block-diagonal,
  each `B^T` in its own rows and rank columns and zeros elsewhere (the keys' rows are all zero
  when the keys are not adapted). `B A` is then exactly the sum of our updates, so the fused
  adapter is sound: a rank-`k r` pair with alpha `k alpha` (PEFT's `rank_pattern` and
  `alpha_pattern` for `c_attn`), which keeps the scale `alpha / r`. The reverse is not: a PEFT
  `c_attn` adapter shares one `A` across q, k and v, so lm_keras writes these files, it does not
  read them.
"""

import json
import pathlib

import numpy as np

from lm_keras import model_dir as md
from lm_keras.conversion import gpt2, huggingface
from lm_keras.errors import UserError
from lm_keras.files import replace_dir_atomic

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PREFIX = "base_model.model.transformer.h"
_QKV = ("query", "key", "value")


def _stacked_qkv(attention):
    """(lora_A (k r, d), lora_B (3 d, k r)) of the fused `c_attn`, from the query, key and value pairs."""
    targets = [t for t in _QKV if t in attention.lora_targets]
    r, d = attention.lora_rank, attention.qkv_kernel.shape[0]
    width = attention.num_heads * attention.key_dim
    a = np.zeros((len(targets) * r, d), np.float32)
    b = np.zeros((3 * width, len(targets) * r), np.float32)
    for slot, target in enumerate(targets):
        rows = slice(_QKV.index(target) * width, (_QKV.index(target) + 1) * width)
        ranks = slice(slot * r, (slot + 1) * r)
        a[ranks] = getattr(attention, f"lora_{target}_a").numpy().T  # (r, d)
        b[rows, ranks] = getattr(attention, f"lora_{target}_b").numpy().reshape(r, width).T  # (H D, r)
    return a, b


def adapter_tensors(model):
    """{PEFT tensor name: float32 array} of a LoRA-enabled, GPT-2-compatible `TransformerLM`."""
    tensors = {}
    for i, block in enumerate(model.blocks):
        attention = block.attention
        pairs = {}
        if set(attention.lora_targets) & set(_QKV):
            pairs["attn.c_attn"] = _stacked_qkv(attention)
        if "output" in attention.lora_targets:
            a = attention.lora_output_a.numpy()
            pairs["attn.c_proj"] = (a.reshape(-1, a.shape[-1]).T, attention.lora_output_b.numpy().T)
        for name, layer in (("mlp.c_fc", block.mlp_in), ("mlp.c_proj", block.mlp_out)):
            if layer.lora_enabled:
                pairs[name] = (layer.lora_kernel_a.numpy().T, layer.lora_kernel_b.numpy().T)
        for name, (a, b) in pairs.items():
            tensors[f"{_PREFIX}.{i}.{name}.lora_A.weight"] = np.ascontiguousarray(a, np.float32)
            tensors[f"{_PREFIX}.{i}.{name}.lora_B.weight"] = np.ascontiguousarray(b, np.float32)
    return tensors


def adapter_config(model, base_model_name_or_path):
    """PEFT's `adapter_config.json` (a dict) of a LoRA-enabled, GPT-2-compatible `TransformerLM`."""
    attention = model.blocks[0].attention
    rank, alpha = model.lora_rank, model.lora_alpha
    fused = len([t for t in _QKV if t in attention.lora_targets])
    modules = (["c_attn"] if fused else []) + (["attn.c_proj"] if "output" in attention.lora_targets else [])
    if model.blocks[0].mlp_in.lora_enabled:
        modules += ["mlp.c_fc", "mlp.c_proj"]
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "r": rank,
        "lora_alpha": alpha,
        "rank_pattern": {"c_attn": fused * rank} if fused > 1 else {},
        "alpha_pattern": {"c_attn": fused * alpha} if fused > 1 else {},
        "target_modules": modules,
        "fan_in_fan_out": True,
        "lora_dropout": 0.0,
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "revision": None,
    }


def export_peft(model_dir, export_dir):
    """Writes the adapters of the LoRA run `model_dir` (of a GPT-2-compatible base) as a PEFT
    adapter folder `export_dir`, complete or not at all; `base_model_name_or_path` names the base
    (a converted GPT-2's source, else the base run's folder).

    Returns:
        pathlib.Path of the folder.
    """
    md.check_new(export_dir, "--export_dir")
    config, raw = md.read_config(model_dir)
    if not config.train.lora_rank:
        raise UserError(
            f"--model_dir={model_dir} is not a LoRA run (no --lora_rank): --format=peft writes adapters; "
            "use --format=huggingface for the whole model"
        )
    base_dir = raw[md.LORA_BASE]["model_dir"]
    base_config, base_raw = md.read_config(base_dir)
    if base_config.model.vocab_size < config.model.vocab_size:
        raise UserError(
            f"--model_dir={model_dir} trained its token embedding beside the adapters (its base "
            f"{base_dir} lacked the end-of-text id, which the run appended), and PEFT's adapter holds "
            "the LoRA pairs alone: export the merged model with --format=huggingface"
        )
    gpt2.check_exportable(config)
    base_name = base_raw.get("converted_from", {}).get("source", base_dir)
    trained = md.load_trained(model_dir)
    tensors = adapter_tensors(trained.model)
    settings = adapter_config(trained.model, base_name)

    def fill(tmp):
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / CONFIG_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        huggingface._import_safetensors().save_file(
            tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"}
        )

    replace_dir_atomic(fill, export_dir)
    return pathlib.Path(export_dir)
