"""Train a language model: `python -m lm_keras.train --model_dir=DIR [--preset=NAME] [flags]`.

Flags override the preset. Rerunning the same command resumes from the latest
checkpoint. `--init_from=DIR` fine-tunes another run's weights on a new corpus.
`--print_config` prints the resolved config (the preset, then the flags) and exits.
One process trains in a model directory at a time: a second is refused in one line.
"""

import dataclasses

from absl import flags

from lm_keras import config as config_lib
from lm_keras.commands import cli

FLAGS = flags.FLAGS
_TYPES = {
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    str: flags.DEFINE_string,
    bool: flags.DEFINE_bool,
}
_CHOICES = {
    "model": config_lib.MODELS,
    "tokenizer": config_lib.TOKENIZERS,
    "position": config_lib.POSITIONS,
    "mlp": config_lib.MLPS,
    "norm": config_lib.NORMS,
    "jit_compile": config_lib.JIT_CHOICES,
    "mixed_precision": config_lib.PRECISIONS,
    "strategy": config_lib.STRATEGIES,
    "optimizer": config_lib.OPTIMIZERS,
    "schedule": config_lib.SCHEDULES,
    "packing": config_lib.PACKINGS,
    "loss_on": config_lib.LOSS_ON,
    "lora_targets": tuple(config_lib.LORA_TARGETS),
}
_HELP = {
    "model": "model family: transformer, lstm (efficient LSTM LM) or documented_lstm "
    "(the article's Sequential)",
    "vocab_size": "subword vocabulary size (bpe, unigram, gpt2_bpe)",
    "seq_len": "context length T (the documented LSTM's max_length): the training window",
    "context": "a Transformer's positions, its longest input when generating; 0 means --seq_len. "
    "Fine-tuning keeps --init_from's and may train on shorter windows (--seq_len)",
    "num_layers": "Transformer blocks / LSTM layers",
    "num_heads": "attention heads",
    "hidden_dim": "Transformer width / LSTM units",
    "mlp_dim": "Transformer MLP width; 0 means 4 * hidden_dim",
    "embedding_dim": "LSTM embedding width; 0 means hidden_dim",
    "dense_units": "documented LSTM: units of its Dense relu layer",
    "dropout": "dropout rate",
    "use_bias": "biases in dense and norm layers (nanoGPT's bias=True)",
    "position": "Transformer positions: learned, sinusoidal or rope (rotary, on queries and keys)",
    "mlp": "Transformer MLP: gelu (exact, nanoGPT's), gelu_tanh (GPT-2's tanh approximation), "
    "relu2 (squared ReLU) or swiglu",
    "layer_norm_epsilon": "epsilon of every Transformer norm",
    "norm": "Transformer norms: layernorm or rmsnorm",
    "use_qk_norm": "RMS-normalise each head's queries and keys",
    "tie_embeddings": "the output projection is the token embedding; false: its own matrix, starting at zero",
    "zero_init_residual": "start the kernels that write into the residual stream at zero",
    "logit_softcap": "cap the logits smoothly at +-C (C tanh(logits / C)); 0 is off",
    "corpus": "a prepared dataset's folder, or tiny_shakespeare, python_docs, a path/dir/glob of UTF-8 "
    "text, tfds:NAME[/CONFIG][:SPLIT] (prepared into MODEL_DIR/data first)",
    "tfds_data_dir": "where TFDS datasets live (for --corpus=tfds:...)",
    "tokenizer": "char, SentencePiece bpe/unigram, or gpt2_bpe (GPT-2's byte-level BPE)",
    "val_fraction": "the last fraction of the text that validates (of a .jsonl corpus: of its examples)",
    "validation_data": "with --corpus=FILE.jsonl: a .jsonl file of validation examples (default: the last "
    "--val_fraction of the examples)",
    "packing": "examples (--corpus=FILE.jsonl): packed (each window from an example's start, the examples "
    "after it following) or padded (one example per window)",
    "loss_on": "examples: completion (the loss on completions and assistant replies only) or all (every "
    "token)",
    "batch_size": "windows per forward/backward pass, all replicas together (split across them); a step "
    "trains on batch_size * --grad_accum_steps",
    "grad_accum_steps": "N: each optimizer step sums the gradients of N micro-batches of --batch_size "
    "windows (nanoGPT's gradient_accumulation_steps), so it trains on batch_size * N windows: the same "
    "windows and gradient as --batch_size=batch_size*N --grad_accum_steps=1, in one micro-batch's memory",
    "max_steps": "optimizer steps to train to (a rerun resumes to here)",
    "optimizer": "adamw (decoupled weight decay on matrices), adam (no weight decay), or muon "
    "(Newton-Schulz-orthogonalised momentum on the hidden matrices, AdamW on the rest)",
    "learning_rate": "peak learning rate",
    "min_learning_rate": "learning rate at the end of the cosine decay",
    "warmup_steps": "steps of linear warm-up",
    "schedule": "cosine (warm-up, then cosine decay to --min_learning_rate at --max_steps), wsd "
    "(warm-up, stable, then linear decay over the last --decay_fraction of the steps) or constant "
    "(--learning_rate throughout, no warm-up)",
    "decay_fraction": "--schedule=wsd: the fraction of --max_steps its final decay takes",
    "beta1": "Adam beta1",
    "beta2": "Adam beta2",
    "weight_decay": "AdamW weight decay",
    "grad_clip": "clip the global gradient norm to this; 0 turns clipping off",
    "eval_every": "steps between validation estimates",
    "eval_batches": "batches per periodic validation estimate (fixed random windows)",
    "eval_tokens": "validation targets the final evaluation scores, from the split's start; 0 for all",
    "checkpoint_every": "steps between checkpoints",
    "log_every": "steps between progress lines",
    "keep_checkpoints": "checkpoints kept on disk",
    "seed": "seed of weights, data order and dropout",
    "deterministic": "deterministic ops: a resumed run ends with the same weights",
    "jit_compile": "XLA: auto picks what is faster for the model and device",
    "mixed_precision": "float32, bfloat16 (mixed, float32 variables and loss) or float16 (with loss scaling)",
    "strategy": "tf.distribute strategy; multi_worker reads TF_CONFIG",
    "tpu": "TPU name or address (--strategy=tpu)",
    "init_from": "fine-tune from this model directory's weights (keeps its architecture and tokenizer)",
    "lora_rank": "R > 0: LoRA fine-tuning of --init_from: its weights frozen, rank-R adapters train "
    "(0: every weight trains)",
    "lora_alpha": "LoRA's scale is alpha / rank; 0 means the rank (PEFT's default)",
    "lora_targets": "what LoRA adapts in every block: attention (query and value), attention_mlp (and the "
    "MLP's dense layers) or all (query, key, value, attention output and MLP)",
    "sample_tokens": "tokens sampled into samples.txt at the end; 0 for none",
}


# --help lists the flags under these headings, in this order.
_OPTIMISATION = (
    "batch_size",
    "grad_accum_steps",
    "max_steps",
    "optimizer",
    "learning_rate",
    "min_learning_rate",
    "warmup_steps",
    "schedule",
    "decay_fraction",
    "beta1",
    "beta2",
    "weight_decay",
    "grad_clip",
)
_DEVICES = ("jit_compile", "mixed_precision", "strategy", "tpu", "deterministic")
GROUPS = {
    "run": ["model_dir", "preset", "print_config", "init_from", "lora_rank", "lora_alpha", "lora_targets"],
    "model": [f.name for f in dataclasses.fields(config_lib.ModelConfig) if f.name != "vocab_size"],
    "data": [f.name for f in dataclasses.fields(config_lib.DataConfig)],
    "optimisation": list(_OPTIMISATION),
    "devices": list(_DEVICES),
    "evaluation, checkpoints and logs": [
        f.name
        for f in dataclasses.fields(config_lib.TrainConfig)
        if f.name not in (*_OPTIMISATION, *_DEVICES, "init_from", "lora_rank", "lora_alpha", "lora_targets")
    ],
}


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each).
    Returns the headings --help lists them under."""
    flags.DEFINE_string("model_dir", None, "where the run lives (config, tokenizer, checkpoints, metrics)")
    flags.DEFINE_enum("preset", config_lib.DEFAULT_PRESET, list(config_lib.PRESETS), "starting configuration")
    flags.DEFINE_bool("print_config", False, "print the resolved config (preset, then flags) and exit")
    for name, kind in config_lib.FLAG_TYPES.items():
        help_text = _HELP[name] + " (default: the preset's)"
        if name in _CHOICES:
            flags.DEFINE_enum(name, None, list(_CHOICES[name]), help_text)
        else:
            _TYPES[kind](name, None, help_text)
    return GROUPS


def main(argv):
    cli.reject_arguments(argv)
    if not FLAGS.model_dir:
        cli.fail(
            "--model_dir is required: the directory the run writes to (and resumes from)", cli.EXIT_USAGE
        )
    from lm_keras.errors import UserError
    from lm_keras.training.run_config import resolve_config

    overrides = cli.explicit_flags(config_lib.FLAG_SECTIONS)
    try:
        config, preset = resolve_config(FLAGS.model_dir, FLAGS.preset, overrides, FLAGS["preset"].present)
    except (UserError, ValueError) as e:
        cli.fail(str(e), cli.EXIT_USAGE)
    if FLAGS.print_config:
        print(config.to_json(preset=preset))
        return

    cli.quiet_tensorflow()
    from lm_keras.training.trainer import train

    try:
        train(FLAGS.model_dir, config, preset=preset)
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
