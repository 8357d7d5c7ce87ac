"""Corpora and tf.data pipelines."""

from lm_keras.data.corpus import Corpus, load_corpus
from lm_keras.data.pipeline import check_windows, eval_dataset, first_eval_target, train_dataset

__all__ = ["Corpus", "load_corpus", "check_windows", "eval_dataset", "first_eval_target", "train_dataset"]
