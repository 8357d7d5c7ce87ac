"""Model settings: the families' choices and the rules of their arguments. TensorFlow-free.

Each rule is written once, here, as a function that returns a one-line message naming the
setting and the value received, or None when it is fine (the pattern of
`lm_keras.generation_settings.settings_problem`). The Keras classes raise
`ValueError(problem)` and `lm_keras.config` raises `UserError("--" + problem)`, so a
constructor argument and the flag of the same name fail with the same message. The models
and layers import this module rather than `lm_keras.config`, so a Keras user builds them
without a config, and the commands check their flags with it before TensorFlow loads.

The phrasing helpers (`positive_int_problem`, `fraction_problem`, ...) are the rules of a
single value; `lm_keras.config` writes the data and training settings' rules with them too.
"""

import numbers

from lm_keras.families import FAMILIES

MODELS = tuple(FAMILIES)  # ("transformer", "lstm", "documented_lstm")
POSITIONS = ("learned", "sinusoidal", "rope")
MLPS = ("gelu", "gelu_tanh", "relu2", "swiglu")
NORMS = ("layernorm", "rmsnorm")
# What `--lora_targets` adapts in every block (`TransformerLM.enable_lora`): "attention" is the
# query and value projections (keras-hub's `enable_lora`, the LoRA paper's choice); "attention_mlp"
# adds the MLP's dense layers; "all" adapts every projection of the block (query, key, value, the
# attention output and the MLP's). The embeddings, the norms and the head stay frozen in all three.
LORA_TARGETS = {
    "attention": (("query", "value"), False),
    "attention_mlp": (("query", "value"), True),
    "all": (("query", "key", "value", "output"), True),
}
# The attention projections an adapter can target (`MultiHeadSelfAttention.enable_lora`).
LORA_ATTENTION_PROJECTIONS = ("query", "key", "value", "output")

# The intervals `fraction_problem` knows, each with its test.
_FRACTIONS = {
    "[0, 1)": lambda x: 0.0 <= x < 1.0,
    "(0, 1)": lambda x: 0.0 < x < 1.0,
    "(0, 1]": lambda x: 0.0 < x <= 1.0,
}


def transformer_problem(
    num_layers,
    num_heads,
    hidden_dim,
    mlp_dim,
    seq_len,
    dropout,
    position,
    mlp,
    norm,
    logit_softcap,
    layer_norm_epsilon=1e-5,
):
    """The first problem of `TransformerLM`'s arguments (but `vocab_size`), or None.

    `vocab_size` is not here because its rule differs: the model needs one > 0, while a
    config holds 0 until the tokenizer sets it.

    Example:

    >>> transformer_problem(4, 4, 130, 520, 64, 0.0, "learned", "gelu", "layernorm", 0.0)
    'hidden_dim must be divisible by num_heads; received hidden_dim=130, num_heads=4'
    """
    return (
        positive_int_problem("num_layers", num_layers)
        or positive_int_problem("num_heads", num_heads)
        or positive_int_problem("hidden_dim", hidden_dim)
        or positive_int_problem("mlp_dim", mlp_dim)
        or positive_int_problem("seq_len", seq_len)
        or fraction_problem("dropout", dropout, "[0, 1)")
        or choice_problem("position", position, POSITIONS)
        or choice_problem("mlp", mlp, MLPS)
        or choice_problem("norm", norm, NORMS)
        or non_negative_problem("logit_softcap", logit_softcap, note=" (0 is off)")
        or positive_problem("layer_norm_epsilon", layer_norm_epsilon)
        or heads_problem(hidden_dim, num_heads)
        or _rope_problem(position, hidden_dim, num_heads)
    )


def lora_problem(rank, alpha, targets):
    """The first problem of a LoRA setting (`TransformerLM.enable_lora`'s arguments), or None.

    `alpha=0` (or None) means the rank, PEFT's default scale of 1.

    >>> lora_problem(8, 16.0, "mlp")
    "lora_targets must be one of attention, attention_mlp, all; received lora_targets='mlp'"
    """
    return (
        positive_int_problem("lora_rank", rank)
        or non_negative_problem("lora_alpha", 0.0 if alpha is None else alpha, note=" (0 means the rank)")
        or choice_problem("lora_targets", targets, tuple(LORA_TARGETS))
    )


def lstm_problem(embedding_dim, hidden_dim, num_layers, dropout):
    """The first problem of `LSTMLM`'s arguments (but `vocab_size`, as in `transformer_problem`), or None.

    `hidden_dim` is checked first: a config's `embedding_dim=0` means hidden_dim.
    """
    return (
        positive_int_problem("hidden_dim", hidden_dim)
        or positive_int_problem("embedding_dim", embedding_dim)
        or positive_int_problem("num_layers", num_layers)
        or fraction_problem("dropout", dropout, "[0, 1)")
    )


def heads_problem(hidden_dim, num_heads):
    """Whether a width of `hidden_dim` splits into `num_heads` heads (a positive int) of equal width."""
    if not _is_int(hidden_dim) or hidden_dim % num_heads:
        return (
            "hidden_dim must be divisible by num_heads; received "
            f"hidden_dim={hidden_dim!r}, num_heads={num_heads!r}"
        )
    return None


def _rope_problem(position, hidden_dim, num_heads):
    # Rotary embeddings rotate pairs of a head's dimensions.
    if position == "rope" and (hidden_dim // num_heads) % 2:
        return (
            "position='rope' needs heads of even width (hidden_dim / num_heads); received "
            f"hidden_dim={hidden_dim!r}, num_heads={num_heads!r}"
        )
    return None


def first_problem(problems):
    """The first problem of an iterable of problems (None where fine), or None."""
    return next((problem for problem in problems if problem), None)


def choice_problem(name, value, choices):
    """`value` must be one of `choices`.

    >>> choice_problem("norm", "rms", NORMS)
    "norm must be one of layernorm, rmsnorm; received norm='rms'"
    """
    if value not in choices:
        return f"{name} must be one of {', '.join(choices)}; received {name}={value!r}"
    return None


def positive_int_problem(name, value):
    """`value` must be an int > 0 (a bool is not an int here)."""
    if not _is_int(value) or value <= 0:
        return f"{name} must be a positive int; received {name}={value!r}"
    return None


def positive_problem(name, value):
    """`value` must be a number > 0."""
    if not _is_real(value) or not value > 0:
        return f"{name} must be > 0; received {name}={value!r}"
    return None


def non_negative_problem(name, value, note=""):
    """`value` must be a number >= 0; `note` follows the bound (" (0 is off)")."""
    if not _is_real(value) or not value >= 0:
        return f"{name} must be >= 0{note}; received {name}={value!r}"
    return None


def fraction_problem(name, value, interval):
    """`value` must be a number in `interval`: "[0, 1)", "(0, 1)" or "(0, 1]".

    >>> fraction_problem("dropout", 1.5, "[0, 1)")
    'dropout must be in [0, 1); received dropout=1.5'
    """
    if not _is_real(value) or not _FRACTIONS[interval](value):
        return f"{name} must be in {interval}; received {name}={value!r}"
    return None


def _is_int(value):
    # Python ints only, so a model's get_config() holds plain JSON values.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
