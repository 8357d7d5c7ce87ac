"""GPT-2 in Hugging Face's terms <-> `TransformerLM`: the config and the weights, both ways.

Hugging Face's GPT-2 (`transformers`' GPT2LMHeadModel, and the `model.safetensors` of
the published checkpoints) keeps its projections as `Conv1D` weights `(in, out)`:
`c_attn` `(d, 3 d)` holds W^Q, W^K and W^V side by side, each `(d, H D)` head-major,
so it is our fused `qkv_kernel` `(d, 3, H, D)` reshaped; `attn.c_proj` `(H D, d)` is
our `output_kernel` `(H, D, d)` reshaped; the MLP's `(d, m)` and `(m, d)` are our
`Dense` kernels as they are. The output projection is the token embedding (tied).
"""

import numpy as np

from lm_keras.config import ModelConfig
from lm_keras.errors import UserError

# Hugging Face activation names -> our `mlp`; "gelu_new" is GPT-2's tanh approximation.
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
# Keys of Hugging Face GPT-2 configs that change the computation, with the value that
# lm_keras computes; any other value is refused, naming the key.
_FIXED_OPTIONS = {
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "reorder_and_upcast_attn": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}
# Tensors of Hugging Face checkpoints that are not weights: the causal masks of old files.
_BUFFERS = (".attn.bias", ".attn.masked_bias")


def model_config(hf_config, source):
    """The `ModelConfig` of a Hugging Face GPT-2 `config.json` (a dict); `source` names it in errors."""
    model_type = hf_config.get("model_type")
    if model_type != "gpt2":
        raise UserError(
            f"{source} holds a {model_type!r} model (config.json model_type); lm_keras converts GPT-2 "
            "only (model_type 'gpt2')"
        )
    for key, value in _FIXED_OPTIONS.items():
        if hf_config.get(key, value) != value:
            raise UserError(
                f"{source} config.json has {key}={hf_config[key]!r}; lm_keras's GPT-2 computes "
                f"{key}={value!r} only"
            )
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise UserError(
            f"{source} config.json has activation_function={activation!r}; lm_keras supports "
            f"{', '.join(ACTIVATIONS)}"
        )
    hidden_dim = hf_config["n_embd"]
    dropouts = {hf_config.get(k, 0.1) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    return ModelConfig(
        model="transformer",
        vocab_size=hf_config["vocab_size"],
        seq_len=hf_config["n_positions"],
        num_layers=hf_config["n_layer"],
        num_heads=hf_config["n_head"],
        hidden_dim=hidden_dim,
        mlp_dim=hf_config.get("n_inner") or 4 * hidden_dim,
        # One dropout rate for all three; fine-tuning may set another with --dropout.
        dropout=max(dropouts),
        use_bias=True,
        position="learned",
        mlp=ACTIVATIONS[activation],
        layer_norm_epsilon=hf_config.get("layer_norm_epsilon", 1e-5),
    )


def check_exportable(config):
    """Raises UserError naming the first option of `config` (a `Config`) that GPT-2 does not have."""
    mc = config.model
    required = {
        "model": "transformer",
        "use_bias": True,
        "position": "learned",
        # Options of newer recipes, where this lm_keras has them.
        "norm": "layernorm",
        "use_qk_norm": False,
        "tie_embeddings": True,
        "zero_init_residual": None,  # an initialisation only: any value exports
        "logit_softcap": 0.0,
    }
    for name, value in required.items():
        if value is None or not hasattr(mc, name):
            continue
        if getattr(mc, name) != value:
            raise UserError(
                f"this model has --{name}={getattr(mc, name)}; the Hugging Face GPT-2 format needs "
                f"--{name}={value}, so it cannot be exported with --format=huggingface"
            )
    if getattr(mc, "mlp", "gelu") not in ACTIVATIONS.values():
        raise UserError(
            f"this model has --mlp={mc.mlp}; the Hugging Face GPT-2 format needs --mlp=gelu_tanh or "
            "--mlp=gelu, so it cannot be exported with --format=huggingface"
        )
    if config.data.tokenizer != "gpt2_bpe":
        raise UserError(
            f"this model has --tokenizer={config.data.tokenizer}; the Hugging Face GPT-2 format needs "
            "--tokenizer=gpt2_bpe (vocab.json and merges.txt), so it cannot be exported with "
            "--format=huggingface"
        )


def hf_config(model_config, end_of_text_id):
    """The Hugging Face `config.json` (a dict) of a GPT-2-compatible `ModelConfig`."""
    mc = model_config
    activation = {"gelu_tanh": "gelu_new", "gelu": "gelu"}[mc.mlp]
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": mc.vocab_size,
        "n_positions": mc.resolved_context,  # the model's positions, not a fine-tuning run's window
        "n_ctx": mc.resolved_context,
        "n_embd": mc.hidden_dim,
        "n_layer": mc.num_layers,
        "n_head": mc.num_heads,
        "n_inner": mc.resolved_mlp_dim,
        "activation_function": activation,
        "resid_pdrop": mc.dropout,
        "embd_pdrop": mc.dropout,
        "attn_pdrop": mc.dropout,
        "layer_norm_epsilon": mc.layer_norm_epsilon,
        "initializer_range": 0.02,
        **_FIXED_OPTIONS,
        "use_cache": True,
        "torch_dtype": "float32",
    }
    if end_of_text_id is not None:
        config.update(bos_token_id=end_of_text_id, eos_token_id=end_of_text_id)
    return config


def _variables(model):
    """[(Hugging Face name, our variable, its shape there)] of a `TransformerLM`, in checkpoint order."""
    d = model.hidden_dim
    pairs = [
        ("wte.weight", model.token_embedding.embeddings),
        ("wpe.weight", model.position_embedding.embeddings),
    ]
    for i, block in enumerate(model.blocks):
        pairs += [
            (f"h.{i}.ln_1.weight", block.attention_norm.gamma),
            (f"h.{i}.ln_1.bias", block.attention_norm.beta),
            (f"h.{i}.attn.c_attn.weight", block.attention.qkv_kernel),  # (d, 3, H, D) there (d, 3 H D)
            (f"h.{i}.attn.c_attn.bias", block.attention.qkv_bias),
            (f"h.{i}.attn.c_proj.weight", block.attention.output_kernel),  # (H, D, d) there (H D, d)
            (f"h.{i}.attn.c_proj.bias", block.attention.output_bias),
            (f"h.{i}.ln_2.weight", block.mlp_norm.gamma),
            (f"h.{i}.ln_2.bias", block.mlp_norm.beta),
            (f"h.{i}.mlp.c_fc.weight", block.mlp_in.kernel),
            (f"h.{i}.mlp.c_fc.bias", block.mlp_in.bias),
            (f"h.{i}.mlp.c_proj.weight", block.mlp_out.kernel),
            (f"h.{i}.mlp.c_proj.bias", block.mlp_out.bias),
        ]
    pairs += [("ln_f.weight", model.final_norm.gamma), ("ln_f.bias", model.final_norm.beta)]
    hf_shapes = {"c_attn.weight": (d, -1), "attn.c_proj.weight": (-1, d)}
    result = []
    for name, variable in pairs:
        shape = tuple(variable.shape)
        hf_shape = next((s for suffix, s in hf_shapes.items() if name.endswith(suffix)), shape)
        size = int(np.prod(shape))
        result.append(
            (name, variable, tuple(size // -int(np.prod(hf_shape)) if n == -1 else n for n in hf_shape))
        )
    return result


def load_weights(model, tensors, source):
    """Assigns Hugging Face GPT-2 tensors (name -> NumPy array) to a `TransformerLM` built from
    `model_config(...)`; a missing tensor or a shape that does not fit gets one line naming it."""
    tensors = {name.removeprefix("transformer."): t for name, t in tensors.items()}
    pairs = _variables(model)
    for name, variable, hf_shape in pairs:
        if name not in tensors:
            raise UserError(f"{source} has no tensor {name!r}: the checkpoint is incomplete or not GPT-2")
        tensor = np.asarray(tensors[name])
        if tensor.shape != hf_shape:
            raise UserError(
                f"{source}: tensor {name!r} has shape {tensor.shape}, but config.json asks for {hf_shape}; "
                "config.json and the weights disagree"
            )
        variable.assign(tensor.reshape(variable.shape).astype(variable.dtype))
    lm_head = tensors.get("lm_head.weight")
    if lm_head is not None and not np.array_equal(lm_head, tensors["wte.weight"]):
        raise UserError(
            f"{source} has an lm_head.weight that differs from wte.weight; lm_keras's GPT-2 ties the "
            "output projection to the token embedding"
        )
    known = {name for name, _, _ in pairs} | {"lm_head.weight"}
    extra = sorted(n for n in tensors if n not in known and not n.endswith(_BUFFERS))
    if extra:
        raise UserError(
            f"{source} has tensors GPT-2 does not, e.g. {extra[0]!r} ({len(extra)} in all): it is "
            "another architecture"
        )


def weights(model):
    """{Hugging Face name: float32 NumPy array} of a GPT-2-compatible `TransformerLM`."""
    return {
        name: np.asarray(variable.numpy(), np.float32).reshape(hf_shape)
        for name, variable, hf_shape in _variables(model)
    }
