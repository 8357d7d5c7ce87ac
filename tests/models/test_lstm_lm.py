import keras
import numpy as np
import pytest
import tensorflow as tf

from lm_keras.config import ModelConfig
from lm_keras.errors import UserError
from lm_keras.models import LSTMLM, build_model
from tests.layer_test_case import run_layer_test
from tests.models.helpers import VOCAB, train_with_xla

TINY = dict(vocab_size=11, embedding_dim=8, hidden_dim=16, num_layers=2)


def _tiny(**kwargs):
    return LSTMLM(**{**TINY, **kwargs})


def _ids(batch=2, length=10, vocab=11, seed=0):
    return np.random.RandomState(seed).randint(0, vocab, (batch, length)).astype("int32")


def test_parameter_count():
    # Embedding V E; first LSTM 4 U (E + U + 1); each further LSTM 4 U (2 U + 1);
    # output (U + 1) V. The lstm_char preset: V = 65, E = 64, U = 256, 2 layers.
    model = build_model(
        ModelConfig(model="lstm", vocab_size=65, embedding_dim=64, hidden_dim=256, num_layers=2)
    )
    expected = 65 * 64 + 4 * 256 * (64 + 256 + 1) + 4 * 256 * (2 * 256 + 1) + (256 + 1) * 65
    assert model.count_params() == expected == 4_160 + 328_704 + 525_312 + 16_705 == 874_881


def test_predicts_every_position():
    model = _tiny()
    ids = _ids()
    logits = model(ids)
    assert logits.shape == (2, 10, 11) and logits.dtype == "float32"
    # Causal by construction: later tokens do not change earlier logits.
    changed = ids.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % 11
    np.testing.assert_allclose(model(changed)[:, :6], logits[:, :6], atol=1e-6)


def test_carried_state_equals_full_pass():
    model = _tiny(num_layers=3)
    ids = _ids()
    full = np.asarray(model(ids))
    cache = model.init_cache(2)
    assert len(cache) == 3 and all(h.shape == c.shape == (2, 16) for h, c in cache)
    steps = []
    for t in range(10):
        logits, cache = model.call_with_cache(ids[:, t : t + 1], cache, np.int32(t))
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)

    prefill, cache = model.call_with_cache(ids[:, :6], model.init_cache(2), np.int32(0))
    step, cache = model.call_with_cache(ids[:, 6:7], cache, np.int32(6))
    np.testing.assert_allclose(prefill, full[:, :6], atol=1e-5)
    np.testing.assert_allclose(step, full[:, 6:7], atol=1e-5)


def test_carried_state_in_an_xla_while_loop():
    model = _tiny()
    ids = tf.constant(_ids())

    @tf.function(jit_compile=True)
    def decode(ids):
        first, cache = model.call_with_cache(ids[:, :3], model.init_cache(2), tf.constant(0))
        steps = tf.TensorArray(tf.float32, size=7)

        def body(i, cache, steps):
            logits, cache = model.call_with_cache(tf.slice(ids, [0, i], [2, 1]), cache, i)
            return i + 1, cache, steps.write(i - 3, logits[:, 0])

        _, _, steps = tf.while_loop(lambda i, *_: i < 10, body, (tf.constant(3), cache, steps))
        return tf.concat([first, tf.transpose(steps.stack(), (1, 0, 2))], axis=1)

    np.testing.assert_allclose(decode(ids), model(ids), atol=1e-5)


def test_config_round_trip_and_keras_file(tmp_path):
    model = _tiny(dropout=0.25, name="lstm_lm")
    config = model.get_config()
    assert {
        k: config[k] for k in ("vocab_size", "embedding_dim", "hidden_dim", "num_layers", "dropout")
    } == dict(vocab_size=11, embedding_dim=8, hidden_dim=16, num_layers=2, dropout=0.25)
    assert LSTMLM.from_config(config).get_config() == config
    path = tmp_path / "lstm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is LSTMLM
    np.testing.assert_array_equal(loaded(_ids()), model(_ids()))


def test_from_model_config_maps_the_fields():
    model = build_model(
        ModelConfig(model="lstm", vocab_size=9, embedding_dim=0, hidden_dim=12, num_layers=3, dropout=0.1)
    )
    assert isinstance(model, LSTMLM) and model.built
    assert (model.vocab_size, model.embedding_dim, model.hidden_dim, model.num_layers, model.dropout) == (
        9,
        12,
        12,
        3,
        0.1,
    )


def test_trains_under_xla():
    losses = train_with_xla(_tiny(vocab_size=len(VOCAB), num_layers=1, dropout=0.1), learning_rate=1e-2)
    assert losses[-1] < losses[0] - 0.3, losses


def test_trains_under_mixed_bfloat16_with_float32_logits(mixed_bfloat16):
    model = _tiny(vocab_size=len(VOCAB), num_layers=1)
    assert model.compute_dtype == "bfloat16" and all(w.dtype == "float32" for w in model.weights)
    assert model(_ids()).dtype == "float32"
    logits, cache = model.call_with_cache(_ids()[:, :1], model.init_cache(2), np.int32(0))
    assert logits.dtype == "float32" and cache[0][0].dtype == "bfloat16"
    losses = train_with_xla(model, learning_rate=1e-2)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.3, losses


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_dim=0), "hidden_dim must be a positive int; received hidden_dim=0"),
        (dict(num_layers=-1), "num_layers must be a positive int; received num_layers=-1"),
        (dict(dropout=-0.1), "dropout must be in [0, 1); received dropout=-0.1"),
    ],
)
def test_rejects_bad_arguments_as_its_config_does(kwargs, message):
    # The model's ValueError and the config's flag error are one rule's one line
    # (lm_keras.model_settings.lstm_problem).
    with pytest.raises(ValueError) as model_error:
        _tiny(**kwargs)
    assert str(model_error.value) == message
    with pytest.raises(UserError) as config_error:
        ModelConfig(model="lstm", **{**TINY, **kwargs})
    assert str(config_error.value) == "--" + message


def test_needs_the_embedding_width_a_config_may_derive():
    with pytest.raises(ValueError, match="^embedding_dim must be a positive int; received embedding_dim=0$"):
        _tiny(embedding_dim=0)
    # A config's embedding_dim=0 means hidden_dim.
    assert ModelConfig(model="lstm", **{**TINY, "embedding_dim": 0}).resolved_embedding_dim == 16


def test_tf_checkpoint_round_trip_restores_every_weight(tmp_path):
    # The trainer checkpoints with tf.train.Checkpoint, which sees only trackable attributes.
    model, restored = _tiny(num_layers=3), _tiny(num_layers=3)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(saved) == len(model.weights) == 1 + 3 * 3 + 2
    tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(restored(_ids()), model(_ids()))


def test_layer_contract(tmp_path):
    v, e, u, n = 11, 8, 16, 2
    run_layer_test(
        LSTMLM,
        init_kwargs=dict(vocab_size=v, embedding_dim=e, hidden_dim=u, num_layers=n, dropout=0.1),
        input_data=_ids(),
        expected_output_shape=(2, 10, v),
        expected_num_weights=1 + 3 * n + 2,  # embedding, kernel/recurrent/bias per LSTM, dense
        expected_num_params=v * e + 4 * u * (e + u + 1) + (n - 1) * 4 * u * (2 * u + 1) + (u + 1) * v,
        expected_mixed_dtypes="float32",  # the output layer computes in float32
        tmp_path=tmp_path,
    )
