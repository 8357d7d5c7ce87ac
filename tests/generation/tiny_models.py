"""Tiny models for generation and serving tests: random-weight ones, and trained model directories.

Trained directories come from the real trainer on a 30,000-character slice of tiny
Shakespeare, once per test process (`trained_model_dir` memoizes them).
"""

import pathlib
import tempfile

import numpy as np

CORPUS_CHARS = 30_000
SEQ_LEN = 16
# Two float32 computations of one model's logits (batched or not, cached or not, XLA or not)
# agree to some tens of ulps of the largest logit; a greedy choice decided by more than this
# many is the same in every correct computation, so the tests may compare ids exactly.
GREEDY_MARGIN_ULPS = 1000

_TRAINED = {}
_ROOT = []


def corpus_text():
    from lm_keras.data import load_corpus

    return load_corpus("tiny_shakespeare").text[:CORPUS_CHARS]


def char_tokenizer():
    from lm_keras.tokenizers import CharTokenizer

    return CharTokenizer.train(corpus_text())


def random_model(kind, vocab_size, seed=0):
    """A small model of `kind` (transformer, lstm, documented_lstm) with seeded random weights."""
    import keras

    from lm_keras.config import ModelConfig
    from lm_keras.models import build_model

    keras.utils.set_random_seed(seed)
    config = ModelConfig(
        model=kind,
        vocab_size=vocab_size,
        seq_len=SEQ_LEN,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        embedding_dim=8,
        dense_units=16,
    )
    model = build_model(config)
    # Random init gives nearly flat logits; larger weights make greedy choices clear-cut.
    for w in model.weights:
        if len(w.shape) >= 2:
            w.assign(w.numpy() * 3.0)
    return model


def trained_model_dir(kind="transformer", tokenizer="char", steps=20):
    """A model directory trained by `Trainer` for `steps` steps (built once per process)."""
    key = (kind, tokenizer, steps)
    if key not in _TRAINED:
        from lm_keras.config import preset
        from lm_keras.training.trainer import train

        if not _ROOT:
            _ROOT.append(pathlib.Path(tempfile.mkdtemp(prefix="lm_keras_generation_tests_")))
        corpus = _ROOT[0] / "corpus.txt"
        if not corpus.exists():
            corpus.write_text(corpus_text(), encoding="utf-8")
        overrides = dict(
            model=kind,
            corpus=str(corpus),
            tokenizer=tokenizer,
            seq_len=SEQ_LEN,
            num_layers=1,
            num_heads=2,
            hidden_dim=32,
            embedding_dim=16,
            dense_units=32,
            batch_size=8,
            max_steps=steps,
            eval_every=steps,
            checkpoint_every=steps,
            eval_batches=1,
            log_every=steps,
            warmup_steps=2,
            sample_tokens=8,
            dropout=0.0,
            jit_compile="false",  # compiling would be most of 20 steps
        )
        if tokenizer != "char":
            overrides["vocab_size"] = 320
        config = preset("shakespeare_char_cpu").replace(**overrides)
        model_dir = _ROOT[0] / "_".join(map(str, key))
        train(model_dir, config, log=lambda line: None)
        _TRAINED[key] = model_dir
    return _TRAINED[key]


def stops_of(tokenizer):
    """What `generate` does with a tokenizer's ids, as `reference_greedy`'s keyword arguments:
    it never writes the unknown id and stops at the end-of-text id."""
    return dict(unknown_id=getattr(tokenizer, "unknown_id", None), eot_id=getattr(tokenizer, "eot_id", None))


def reference_greedy(model, kind, prompt_ids, max_new_tokens, context, pad_id, unknown_id=None, eot_id=None):
    """Greedy decoding one token at a time the plain way (nanoGPT's loop): run the model
    on the context it may see, take the argmax, append. Every argmax must lead the runner-up
    by GREEDY_MARGIN_ULPS, so that other computations of the same logits pick it too.
    `unknown_id` is never chosen; at `eot_id` the loop stops (the id is not returned)."""
    import tensorflow as tf

    # One trace for every length (eager Keras calls are slow on a busy CPU).
    run = tf.function(
        lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, None], tf.int32)]
    )
    ids = list(prompt_ids)
    for _ in range(max_new_tokens):
        if kind == "transformer":
            logits = run(np.array([ids[-context:]], np.int32))[0, -1]
        elif kind == "lstm":
            logits = run(np.array([ids], np.int32))[0, -1]
        else:  # the documented LSTM: a window of `context` tokens, left-padded
            window = ([pad_id] * context + ids)[-context:]
            logits = run(np.array([window], np.int32))[0]
        logits = logits.numpy()
        if unknown_id is not None:
            logits[unknown_id] = -np.inf
        runner_up, best = np.sort(logits)[-2:]
        ulp = np.finfo(np.float32).eps * np.abs(logits[np.isfinite(logits)]).max()
        assert best - runner_up > GREEDY_MARGIN_ULPS * ulp, f"a near-tie at {len(ids)}: pick another seed"
        if int(np.argmax(logits)) == eot_id:
            break
        ids.append(int(np.argmax(logits)))
    return ids[len(prompt_ids) :]
