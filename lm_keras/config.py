"""Configuration: dataclasses for model, data and training, named presets, JSON.

This module imports nothing heavy (no TensorFlow), so command lines can check
their flags before TensorFlow loads. Each section checks its fields with the one-line
rules of `lm_keras.model_settings` (the model's are those its Keras class checks) and
raises `UserError("--" + problem)`.

A `Config` is three sections. Every field has a flag of the same name in
`python -m lm_keras.train` (see `FLAG_SECTIONS`); a preset is a partial dict of
fields, and flags override the preset.
"""

import dataclasses
import json
import math

from lm_keras.errors import UserError
from lm_keras.model_settings import LORA_TARGETS as LORA_TARGETS
from lm_keras.model_settings import MLPS as MLPS
from lm_keras.model_settings import (
    MODELS,
    choice_problem,
    first_problem,
    fraction_problem,
    lora_problem,
    lstm_problem,
    non_negative_problem,
    positive_int_problem,
    positive_problem,
    transformer_problem,
)
from lm_keras.model_settings import NORMS as NORMS
from lm_keras.model_settings import POSITIONS as POSITIONS

# MLPS, NORMS and POSITIONS are imported for the commands, which read every flag's choices here.
TOKENIZERS = ("char", "bpe", "unigram", "gpt2_bpe")
JIT_CHOICES = ("auto", "true", "false")
PRECISIONS = ("float32", "bfloat16", "float16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
OPTIMIZERS = ("adamw", "adam", "muon")
SCHEDULES = ("cosine", "constant", "wsd")
# Task examples (a .jsonl corpus): how windows hold them, and which targets the loss scores.
PACKINGS = ("packed", "padded")
LOSS_ON = ("completion", "all")
# A SentencePiece vocabulary holds the unknown id, the newline, the 256 byte pieces, at
# least one character and the end-of-text id, so a smaller --vocab_size fails for any text;
# the text-dependent limits (one piece per distinct character, the most pieces the text
# supports) are found when the tokenizer trains.
MIN_SENTENCEPIECE_VOCAB_SIZE = 1 + 1 + 256 + 1 + 1
# The final evaluation scores the first this many validation targets: tiny Shakespeare's
# 111,537 whole, a 20-million-target split in a minute rather than in hours.
DEFAULT_EVAL_TOKENS = 1_000_000


@dataclasses.dataclass
class ModelConfig:
    """The architecture. `vocab_size` comes from the tokenizer.

    Transformer: `num_layers` blocks of `num_heads` heads, width `hidden_dim`,
    MLP width `mlp_dim` (0 means 4 * hidden_dim, and for swiglu, whose MLP has three
    matrices, 8 * hidden_dim / 3 rounded up to a multiple of 8: the same parameters),
    context `seq_len`; `mlp` the MLP (`gelu` exact, as nanoGPT; `gelu_tanh` GPT-2's
    tanh approximation; `relu2`; `swiglu`); `layer_norm_epsilon` every norm's epsilon
    (GPT-2's and PyTorch's 1e-5). The defaults are the article's GPT; `position`,
    `norm`, `use_qk_norm`, `tie_embeddings`, `zero_init_residual` and `logit_softcap`
    are the options of `lm_keras.models.TransformerLM`.
    LSTM (`lstm`): `num_layers` LSTM layers of `hidden_dim` units over an
    embedding of `embedding_dim` (0 means hidden_dim).
    Documented LSTM: Embedding(`embedding_dim`), LSTM(`hidden_dim`), Dropout(`dropout`),
    LSTM(`hidden_dim`), Dense(`dense_units`, relu), Dense(vocab, softmax) on windows
    of `seq_len` tokens (the documented `max_length`).
    """

    model: str = "transformer"
    vocab_size: int = 0
    seq_len: int = 64
    context: int = 0
    num_layers: int = 4
    num_heads: int = 4
    hidden_dim: int = 128
    mlp_dim: int = 0
    embedding_dim: int = 0
    dense_units: int = 128
    dropout: float = 0.0
    use_bias: bool = False
    position: str = "learned"
    mlp: str = "gelu"
    layer_norm_epsilon: float = 1e-5
    norm: str = "layernorm"
    use_qk_norm: bool = False
    tie_embeddings: bool = True
    zero_init_residual: bool = False
    logit_softcap: float = 0.0

    def __post_init__(self):
        # The fields every family reads (0 in the three means: set later, or derived), then
        # the rules of the model this config builds, in its constructor's words.
        problem = (
            choice_problem("model", self.model, MODELS)
            or positive_int_problem("seq_len", self.seq_len)
            or non_negative_problem("vocab_size", self.vocab_size)
            or non_negative_problem("mlp_dim", self.mlp_dim)
            or non_negative_problem("embedding_dim", self.embedding_dim)
            or non_negative_problem("context", self.context, note=" (0 means seq_len)")
            or _context_problem(self.model, self.seq_len, self.context)
            or self._family_problem()
        )
        if problem:
            raise UserError("--" + problem)

    def _family_problem(self):
        if self.model == "transformer":
            return transformer_problem(
                num_layers=self.num_layers,
                num_heads=self.num_heads,
                hidden_dim=self.hidden_dim,
                mlp_dim=self.resolved_mlp_dim,
                seq_len=self.seq_len,
                dropout=self.dropout,
                position=self.position,
                mlp=self.mlp,
                norm=self.norm,
                logit_softcap=self.logit_softcap,
                layer_norm_epsilon=self.layer_norm_epsilon,
            )
        if self.model == "lstm":
            return lstm_problem(
                embedding_dim=self.resolved_embedding_dim,
                hidden_dim=self.hidden_dim,
                num_layers=self.num_layers,
                dropout=self.dropout,
            )
        # The documented model's rules in this config's names: its max_length is seq_len,
        # its lstm_units hidden_dim, its dropout_rate dropout; it has no num_layers.
        return (
            positive_int_problem("hidden_dim", self.hidden_dim)
            or positive_int_problem("embedding_dim", self.resolved_embedding_dim)
            or fraction_problem("dropout", self.dropout, "[0, 1)")
            or positive_int_problem("dense_units", self.dense_units)
        )

    @property
    def resolved_mlp_dim(self):
        if self.mlp_dim:
            return self.mlp_dim
        if self.mlp == "swiglu":
            return math.ceil(8 * self.hidden_dim / 3 / 8) * 8  # 2 d (4 d) = 3 d m, rounded up to 8
        return 4 * self.hidden_dim

    @property
    def resolved_context(self):
        """The Transformer's positions (its longest input and its cache): `context`, 0 meaning
        `seq_len`, the training window."""
        return self.context or self.seq_len

    @property
    def resolved_embedding_dim(self):
        return self.embedding_dim or self.hidden_dim


@dataclasses.dataclass
class DataConfig:
    """The corpus and its tokenizer.

    `corpus` is a prepared dataset's folder, or a corpus spec (a name, a path, a glob,
    `tfds:NAME[/CONFIG][:SPLIT]`) that training prepares into MODEL_DIR/data first;
    `tfds_data_dir` is where TFDS datasets live. A `corpus` ending in .jsonl is a file of
    task examples; `validation_data` (another .jsonl file) is then its validation split,
    and "" splits the examples by `val_fraction`.
    """

    corpus: str = "tiny_shakespeare"
    tokenizer: str = "char"
    vocab_size: int = 0
    val_fraction: float = 0.1
    tfds_data_dir: str = ""
    validation_data: str = ""

    def __post_init__(self):
        problem = (
            choice_problem("tokenizer", self.tokenizer, TOKENIZERS)
            or fraction_problem("val_fraction", self.val_fraction, "(0, 1)")
            or _vocab_size_problem(self.tokenizer, self.vocab_size)
            or _validation_data_problem(self.corpus, self.validation_data)
        )
        if problem:
            raise UserError("--" + problem)


@dataclasses.dataclass
class TrainConfig:
    """Optimisation, evaluation, checkpointing and the device set-up.

    `batch_size` is the windows of one forward and backward pass (all replicas together), and
    `grad_accum_steps` how many such micro-batches one optimizer step sums, as nanoGPT's
    `batch_size` and `gradient_accumulation_steps`: a step trains on `batch_size *
    grad_accum_steps` windows, the very windows (in the same order) and, up to float32
    rounding, the very gradient of `batch_size * grad_accum_steps` with no accumulation,
    while memory holds one micro-batch's activations. Evaluation batches are `batch_size`.
    """

    batch_size: int = 12
    grad_accum_steps: int = 1
    max_steps: int = 2000
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 100
    schedule: str = "cosine"
    decay_fraction: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 20
    eval_tokens: int = DEFAULT_EVAL_TOKENS
    checkpoint_every: int = 250
    log_every: int = 50
    keep_checkpoints: int = 3
    seed: int = 1337
    deterministic: bool = False
    jit_compile: str = "auto"
    mixed_precision: str = "float32"
    strategy: str = "auto"
    tpu: str = ""
    init_from: str = ""
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_targets: str = "attention"
    sample_tokens: int = 500
    packing: str = "packed"
    loss_on: str = "completion"

    def __post_init__(self):
        choices = (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("jit_compile", JIT_CHOICES),
            ("mixed_precision", PRECISIONS),
            ("strategy", STRATEGIES),
            ("packing", PACKINGS),
            ("loss_on", LOSS_ON),
        )
        positive = (
            "batch_size",
            "max_steps",
            "eval_every",
            "eval_batches",
            "checkpoint_every",
            "log_every",
            "keep_checkpoints",
            "learning_rate",
        )
        non_negative = (
            "min_learning_rate",
            "weight_decay",
            "grad_clip",
            "warmup_steps",
            "sample_tokens",
            "eval_tokens",
        )
        problem = (
            first_problem(choice_problem(name, getattr(self, name), names) for name, names in choices)
            or first_problem(positive_problem(name, getattr(self, name)) for name in positive)
            or first_problem(non_negative_problem(name, getattr(self, name)) for name in non_negative)
            or positive_int_problem("grad_accum_steps", self.grad_accum_steps)
            or fraction_problem("decay_fraction", self.decay_fraction, "(0, 1]")
            or _learning_rates_problem(self.min_learning_rate, self.learning_rate)
            or _lora_problem(self.lora_rank, self.lora_alpha, self.lora_targets, self.init_from)
        )
        if problem:
            raise UserError("--" + problem)


@dataclasses.dataclass
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self, **extra):
        return json.dumps({**self.to_dict(), **extra}, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        """The `Config` of a dict (config.json's); a run written before a field was renamed is read
        under the new name (`_RENAMED`)."""
        model = {_RENAMED.get(k, k): v for k, v in d.get("model", {}).items()}
        return cls(
            model=ModelConfig(**_known(ModelConfig, model)),
            data=DataConfig(**_known(DataConfig, d.get("data", {}))),
            train=TrainConfig(**_known(TrainConfig, d.get("train", {}))),
        )

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def replace(self, **flat):
        """Returns a copy with fields replaced by their flags' names (`hidden_dim=256`).

        `vocab_size` is the tokenizer's requested size (`data.vocab_size`); the model's
        (`model.vocab_size`) is no flag: it is the tokenizer's, set when a run's dataset is ready.
        """
        d = self.to_dict()
        for name, value in flat.items():
            if name not in FLAG_SECTIONS:
                raise ValueError(f"unknown config field {name!r}")
            d[FLAG_SECTIONS[name]][name] = value
        return Config.from_dict(d)


# The model fields renamed since lm_keras first wrote config.json: old name -> new name.
_RENAMED = {"norm_epsilon": "layer_norm_epsilon", "qk_norm": "use_qk_norm"}


def _known(cls, d):
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _vocab_size_problem(tokenizer, vocab_size):
    # Flags' messages (the settings are only ever flags), so they name the other flag and the fix.
    if tokenizer != "char" and vocab_size <= 0:
        return (
            f"vocab_size is required for --tokenizer={tokenizer}; "
            "received vocab_size=0 (try --vocab_size=1024)"
        )
    if tokenizer != "char" and vocab_size < MIN_SENTENCEPIECE_VOCAB_SIZE:
        return (
            f"vocab_size must be at least {MIN_SENTENCEPIECE_VOCAB_SIZE} for "
            f"--tokenizer={tokenizer} (the unknown id, newline, 256 byte pieces, one "
            "piece per character of the text and the end-of-text id); "
            f"received vocab_size={vocab_size} (try --vocab_size=1024)"
        )
    return None


def _context_problem(model, seq_len, context):
    # A window longer than the model's positions cannot run; LSTMs have no positions to keep.
    if context and model != "transformer":
        return f"context is a Transformer's; received context={context} for --model={model} (drop it)"
    if context and seq_len > context:
        return f"seq_len must be at most the model's context; received seq_len={seq_len}, context={context}"
    return None


def _lora_problem(rank, alpha, targets, init_from):
    if rank == 0:
        return None  # LoRA off: its other two settings are not used
    problem = lora_problem(rank, alpha, targets)
    if not problem and not init_from:
        return (
            f"lora_rank={rank} needs --init_from=RUN: LoRA adapts a trained model (a run or a converted "
            "GPT-2), whose weights it keeps frozen"
        )
    return problem


def _validation_data_problem(corpus, validation_data):
    if not validation_data:
        return None
    if not validation_data.lower().endswith(".jsonl"):
        return f"validation_data must be a .jsonl file of examples; received {validation_data}"
    if not corpus.lower().endswith(".jsonl"):
        return (
            f"validation_data is the validation split of a --corpus=FILE.jsonl of examples; received "
            f"corpus={corpus} (drop --validation_data, or give the examples' .jsonl file)"
        )
    return None


def _learning_rates_problem(min_learning_rate, learning_rate):
    if min_learning_rate > learning_rate:
        return (
            "min_learning_rate must not exceed --learning_rate; received "
            f"min_learning_rate={min_learning_rate}, learning_rate={learning_rate}"
        )
    return None


# Flag name -> the section that holds its field, and its type. Each field has one flag.
FLAG_SECTIONS = {}
FLAG_TYPES = {}
for _section, _cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
    for _field in dataclasses.fields(_cls):
        if (_section, _field.name) != ("model", "vocab_size"):  # the tokenizer's, not a flag
            FLAG_SECTIONS[_field.name] = _section
            FLAG_TYPES[_field.name] = _field.type


# nanoGPT's shakespeare_char configurations (config/train_shakespeare_char.py and the
# README's CPU variant), and presets for the other model families.
PRESETS = {
    "shakespeare_char_cpu": dict(
        model="transformer",
        tokenizer="char",
        num_layers=4,
        num_heads=4,
        hidden_dim=128,
        seq_len=64,
        batch_size=12,
        max_steps=2000,
        learning_rate=1e-3,
        min_learning_rate=1e-4,
        warmup_steps=100,
        beta2=0.99,
        weight_decay=0.1,
        grad_clip=1.0,
        dropout=0.0,
        eval_every=250,
        eval_batches=20,
        checkpoint_every=250,
    ),
    "shakespeare_char": dict(
        model="transformer",
        tokenizer="char",
        num_layers=6,
        num_heads=6,
        hidden_dim=384,
        seq_len=256,
        batch_size=64,
        max_steps=5000,
        learning_rate=1e-3,
        min_learning_rate=1e-4,
        warmup_steps=100,
        beta2=0.99,
        weight_decay=0.1,
        grad_clip=1.0,
        dropout=0.2,
        eval_every=250,
        eval_batches=200,
        checkpoint_every=500,
    ),
    "shakespeare_bpe_cpu": dict(
        model="transformer",
        tokenizer="bpe",
        vocab_size=1024,
        num_layers=4,
        num_heads=4,
        hidden_dim=128,
        seq_len=64,
        batch_size=12,
        max_steps=2000,
        learning_rate=1e-3,
        min_learning_rate=1e-4,
        warmup_steps=100,
        beta2=0.99,
        weight_decay=0.1,
        grad_clip=1.0,
        dropout=0.0,
        eval_every=250,
        eval_batches=20,
        checkpoint_every=250,
    ),
    "documented_lstm": dict(
        model="documented_lstm",
        tokenizer="char",
        seq_len=40,
        embedding_dim=64,
        hidden_dim=256,
        dense_units=256,
        dropout=0.2,
        batch_size=128,
        max_steps=2000,
        optimizer="adam",
        learning_rate=1e-3,
        min_learning_rate=1e-3,
        warmup_steps=0,
        schedule="constant",
        beta2=0.999,
        weight_decay=0.0,
        grad_clip=0.0,
        eval_every=250,
        eval_batches=20,
        checkpoint_every=250,
    ),
    "lstm_char": dict(
        model="lstm",
        tokenizer="char",
        num_layers=2,
        hidden_dim=256,
        embedding_dim=64,
        seq_len=64,
        batch_size=32,
        max_steps=2000,
        optimizer="adamw",
        learning_rate=2e-3,
        min_learning_rate=2e-4,
        warmup_steps=100,
        beta2=0.99,
        weight_decay=0.0,
        grad_clip=1.0,
        dropout=0.0,
        eval_every=250,
        eval_batches=20,
        checkpoint_every=250,
    ),
    # The best validation loss in 10 minutes of training on a 2-core CPU (benchmarks/RESULTS.md):
    # nanoGPT's CPU shape, whose small steps beat wider models, longer contexts and larger
    # batches at equal time there; a higher learning rate and about 13,500 steps (~40 ms each).
    "shakespeare_char_cpu_10min": dict(
        model="transformer",
        tokenizer="char",
        num_layers=4,
        num_heads=4,
        hidden_dim=128,
        seq_len=64,
        batch_size=12,
        max_steps=13500,
        learning_rate=2e-3,
        min_learning_rate=2e-4,
        warmup_steps=100,
        beta2=0.99,
        weight_decay=0.1,
        grad_clip=1.0,
        dropout=0.0,
        eval_every=500,
        eval_batches=20,
        checkpoint_every=1000,
        log_every=100,
    ),
}
# The modern recipe, chosen by experiments/ablations.py (RESULTS.md's ablation table, 3 seeds):
# nanoGPT's CPU shape and budgets, with rotary positions, QK-norm, a SwiGLU MLP, Muon on the
# hidden matrices and the cosine schedule at 3e-3. The speedrun's other model changes (RMS
# norms, an untied zero head, zero-initialised projections, a logit soft-cap) each hurt alone
# at this size, and all of them with Muon ended 0.011 higher than this recipe.
MODERN_RECIPE = dict(
    position="rope",
    use_qk_norm=True,
    mlp="swiglu",
    optimizer="muon",
    schedule="cosine",
    learning_rate=3e-3,
    min_learning_rate=3e-4,
)
PRESETS["shakespeare_char_cpu_modern"] = {**PRESETS["shakespeare_char_cpu"], **MODERN_RECIPE}
# The wall time of shakespeare_char_cpu_10min: Muon's Newton-Schulz steps make a step of the
# recipe 1.36x slower (the ablation grid's 14,870 tokens/s against the base's 20,193; RESULTS.md),
# so 13,500 / 1.36 steps fit.
PRESETS["shakespeare_char_cpu_10min_modern"] = {
    **PRESETS["shakespeare_char_cpu_10min"],
    **MODERN_RECIPE,
    "max_steps": 9900,
}
DEFAULT_PRESET = "shakespeare_char_cpu"


def preset(name):
    """The `Config` of a named preset."""
    if name not in PRESETS:
        raise UserError(f"--preset must be one of {', '.join(PRESETS)}; received preset={name!r}")
    return Config().replace(**PRESETS[name])
