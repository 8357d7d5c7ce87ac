import warnings

import keras
import numpy as np
import pytest

from lm_keras.config import ModelConfig
from lm_keras.models import build_model, documented_lstm
from tests.models.helpers import VOCAB, corpus_ids


def _model(**kwargs):
    args = dict(
        vocab_size=30, embedding_dim=8, max_length=10, lstm_units=16, dropout_rate=0.2, dense_units=12
    )
    args.update(kwargs)
    return documented_lstm(**args)


def test_is_the_documented_model():
    model = _model()
    assert isinstance(model, keras.Sequential)
    assert [type(layer) for layer in model.layers] == [
        keras.layers.Embedding,
        keras.layers.LSTM,
        keras.layers.Dropout,
        keras.layers.LSTM,
        keras.layers.Dense,
        keras.layers.Dense,
    ]
    embedding, lstm_1, dropout, lstm_2, dense, output = model.layers
    assert (embedding.input_dim, embedding.output_dim) == (30, 8)
    assert (lstm_1.units, lstm_1.return_sequences) == (16, True)
    assert dropout.rate == 0.2
    assert (lstm_2.units, lstm_2.return_sequences) == (16, False)
    assert (dense.units, dense.activation) == (12, keras.activations.relu)
    assert (output.units, output.activation) == (30, keras.activations.softmax)
    # input_length=max_length lives on as the model's input shape.
    assert model.input_shape == (None, 10) and model.output_shape == (None, 30)
    # Keras defaults elsewhere, as the text leaves them.
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    assert model.count_params() == (
        30 * 8 + 4 * 16 * (8 + 16 + 1) + 4 * 16 * (16 + 16 + 1) + (16 + 1) * 12 + (12 + 1) * 30
    )


def test_is_compiled_as_documented():
    compile_config = _model().get_compile_config()
    assert compile_config["optimizer"]["class_name"] == "Adam"
    assert compile_config["optimizer"]["config"]["learning_rate"] == pytest.approx(1e-3)
    assert compile_config["loss"] == "categorical_crossentropy"
    assert compile_config["metrics"] == ["accuracy"]


def test_no_input_length_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model()


def test_returns_next_token_probabilities():
    probabilities = np.asarray(_model()(np.zeros((3, 10), "int32")))
    assert probabilities.shape == (3, 30) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def _many_to_one(length=10):
    ids, vocab = corpus_ids(), VOCAB
    starts = np.arange(0, len(ids) - length)[:1152]  # 1152 windows: 72 whole batches of 16
    x = np.stack([ids[s : s + length] for s in starts])
    y = keras.utils.to_categorical(ids[starts + length], len(vocab))
    return x, y, len(vocab)


def test_one_epoch_lowers_the_loss():
    keras.utils.set_random_seed(0)
    x, y, vocab = _many_to_one()
    model = _model(vocab_size=vocab)
    before = model.evaluate(x, y, batch_size=128, verbose=0)[0]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    after = model.evaluate(x, y, batch_size=128, verbose=0)[0]
    assert before == pytest.approx(np.log(vocab), abs=0.05)  # uniform predictions at the start
    assert after < before - 0.1, (before, after)


def test_trains_under_xla_and_mixed_bfloat16(mixed_bfloat16):
    x, y, vocab = _many_to_one()
    model = _model(vocab_size=vocab)
    assert [layer.dtype_policy.name for layer in model.layers] == ["mixed_bfloat16"] * 5 + ["float32"]
    assert model(x[:2]).dtype == "float32"
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    losses = model.fit(x[:512], y[:512], epochs=2, batch_size=32, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_build_model_maps_the_config():
    cfg = ModelConfig(
        model="documented_lstm",
        vocab_size=65,
        seq_len=40,
        embedding_dim=64,
        hidden_dim=256,
        dense_units=128,
        dropout=0.2,
    )
    model = build_model(cfg)
    embedding, lstm_1, dropout, lstm_2, dense, output = model.layers
    assert model.input_shape == (None, 40)
    assert (embedding.output_dim, lstm_1.units, lstm_2.units, dropout.rate, dense.units, output.units) == (
        64,
        256,
        256,
        0.2,
        128,
        65,
    )


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_length must be a positive int; received max_length=0"):
        _model(max_length=0)
