"""Corpora, prepared datasets (token shards) and the tf.data pipelines that read them.

Importing this package does not import TensorFlow (so `prepare` runs without it); the
pipeline functions import it when first used.
"""

from lm_keras.data.corpus import Corpus, load_corpus, resolve
from lm_keras.data.examples import check_example_lengths, is_jsonl
from lm_keras.data.shards import PreparedDataset, TokenSplit, is_prepared

_PIPELINE = (
    "check_windows",
    "eval_dataset",
    "first_eval_target",
    "train_dataset",
    "example_train_dataset",
    "example_eval_dataset",
)

__all__ = [
    "Corpus",
    "load_corpus",
    "resolve",
    "PreparedDataset",
    "TokenSplit",
    "is_prepared",
    "check_example_lengths",
    "is_jsonl",
    *_PIPELINE,
]


def __getattr__(name):
    if name in _PIPELINE:
        from lm_keras.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'lm_keras.data' has no attribute {name!r}")
