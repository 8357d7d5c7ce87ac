"""The model directory: the contract between train, evaluate, generate and export.

    MODEL_DIR/
      config.json     resolved config, corpus name and sha256, the dataset's manifest hash,
                      library versions
      tokenizer/      the tokenizer's own files
      data/           the prepared dataset, when --corpus named text rather than a dataset
      checkpoints/    tf.train.CheckpointManager: weights, optimizer, step, RNG state
      metrics.jsonl   one JSON object per log or eval line
      results.json    final figures
      logs/           TensorBoard events
      samples.txt     text sampled at the end of training

Every file is written atomically (a temporary file renamed into place), so a run
killed at any moment leaves either the old file or the new one, never half of one.
"""

import dataclasses
import json
import pathlib

from lm_keras.config import Config
from lm_keras.errors import UserError
from lm_keras.files import replace_dir_atomic

CONFIG = "config.json"
TOKENIZER = "tokenizer"
CHECKPOINTS = "checkpoints"
DATA = "data"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
LOGS = "logs"
SAMPLES = "samples.txt"


def save_tokenizer_atomic(tokenizer, model_dir):
    """Writes `tokenizer/` through a temporary folder renamed into place."""
    replace_dir_atomic(tokenizer.save, pathlib.Path(model_dir) / TOKENIZER)


def read_config(model_dir):
    """(Config, the whole config.json as a dict) of a model directory."""
    path = pathlib.Path(model_dir) / CONFIG
    if not path.is_file():
        raise UserError(
            f"--model_dir={model_dir} holds no {CONFIG}: train a model there first "
            "(python -m lm_keras.train --model_dir=...)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Config.from_dict(raw), raw
    except (ValueError, TypeError, AttributeError) as e:  # bad JSON, bad values, wrong types
        raise UserError(
            f"{path} is not a config this lm_keras can read ({e}); the file is damaged or was "
            "edited: restore it, or train again in a new --model_dir"
        ) from None


@dataclasses.dataclass
class TrainedModel:
    """A model restored from a model directory's latest checkpoint."""

    config: Config
    tokenizer: object
    model: object
    step: int
    model_dir: str


def latest_checkpoint(model_dir):
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(pathlib.Path(model_dir) / CHECKPOINTS))


def load_trained(model_dir):
    """Builds the model of `model_dir` and restores its latest weights (not the optimizer)."""
    import tensorflow as tf

    from lm_keras import tokenizers
    from lm_keras.models import build_model

    config, _ = read_config(model_dir)
    checkpoint = latest_checkpoint(model_dir)
    if checkpoint is None:
        raise UserError(
            f"--model_dir={model_dir} holds no checkpoint yet: let training reach "
            "its first checkpoint (--checkpoint_every) first"
        )
    tokenizer = tokenizers.load(pathlib.Path(model_dir) / TOKENIZER)
    model = build_model(config.model)
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(model=model, step=step).restore(checkpoint).expect_partial()
    return TrainedModel(config, tokenizer, model, int(step.numpy()), str(model_dir))
