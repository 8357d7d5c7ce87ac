"""Train a language model: `python -m lm_keras.train --model_dir=DIR [--preset=NAME] [flags]`.

Flags override the preset. Rerunning the same command resumes from the latest
checkpoint. `--init_from=DIR` fine-tunes another run's weights on a new corpus.
"""

from absl import app, flags

from lm_keras import cli
from lm_keras import config as config_lib

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
    "jit_compile": config_lib.JIT_CHOICES,
    "mixed_precision": config_lib.PRECISIONS,
    "strategy": config_lib.STRATEGIES,
    "optimizer": config_lib.OPTIMIZERS,
    "schedule": config_lib.SCHEDULES,
}
_HELP = {
    "model": "model family: transformer, lstm (efficient LSTM LM) or documented_lstm "
    "(the article's Sequential)",
    "vocab_size": "SentencePiece vocabulary size (bpe/unigram)",
    "seq_len": "context length T (the documented LSTM's max_length)",
    "num_layers": "Transformer blocks / LSTM layers",
    "num_heads": "attention heads",
    "hidden_dim": "Transformer width / LSTM units",
    "mlp_dim": "Transformer MLP width; 0 means 4 * hidden_dim",
    "embedding_dim": "LSTM embedding width; 0 means hidden_dim",
    "dense_units": "documented LSTM: units of its Dense relu layer",
    "dropout": "dropout rate",
    "use_bias": "biases in dense and norm layers (nanoGPT's bias=True)",
    "position": "Transformer positions: learned or sinusoidal",
    "corpus": "a prepared dataset's folder, or tiny_shakespeare, python_docs, a path/dir/glob of UTF-8 "
    "text, tfds:NAME[/CONFIG][:SPLIT] (prepared into MODEL_DIR/data first)",
    "tfds_data_dir": "where TFDS datasets live (for --corpus=tfds:...)",
    "tokenizer": "char, or SentencePiece bpe/unigram",
    "val_fraction": "the last fraction of the text that validates",
    "batch_size": "global batch size (split across replicas)",
    "max_steps": "optimizer steps to train to (a rerun resumes to here)",
    "optimizer": "adamw (decoupled weight decay on matrices) or adam",
    "learning_rate": "peak learning rate",
    "min_learning_rate": "learning rate at the end of the cosine decay",
    "warmup_steps": "steps of linear warm-up",
    "schedule": "cosine (decay to --min_learning_rate at --max_steps) or constant",
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
    "sample_tokens": "tokens sampled into samples.txt at the end; 0 for none",
}

flags.DEFINE_string("model_dir", None, "where the run lives (config, tokenizer, checkpoints, metrics)")
flags.DEFINE_enum("preset", config_lib.DEFAULT_PRESET, list(config_lib.PRESETS), "starting configuration")
for _name, _type in config_lib.FLAG_TYPES.items():
    _help = _HELP[_name] + " (default: the preset's)"
    if _name in _CHOICES:
        flags.DEFINE_enum(_name, None, list(_CHOICES[_name]), _help)
    else:
        _TYPES[_type](_name, None, _help)


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

    cli.quiet_tensorflow()
    from lm_keras.training.trainer import Trainer

    try:
        Trainer(config, FLAGS.model_dir, preset=preset).run()
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)


def run():
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
