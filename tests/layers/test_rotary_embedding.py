import keras
import numpy as np
import pytest

from lm_keras.layers import RotaryEmbedding
from tests.layer_test_case import run_layer_test

EPS = float(np.finfo(np.float32).eps)


def _heads(length=9, heads=2, width=8, seed=0):
    return np.random.RandomState(seed).randn(2, length, heads, width).astype("float32")


def _reference(x, start=0, max_wavelength=10000.0):
    """RoFormer's rotation of pairs (j, j + D/2) by the angle p * max_wavelength^(-2j/D), in NumPy."""
    half = x.shape[-1] // 2
    theta = max_wavelength ** (-2.0 * np.arange(half) / x.shape[-1])  # (D/2,)
    angles = (np.arange(x.shape[1]) + start)[:, None, None] * theta  # (T, 1, D/2)
    first, second = x[..., :half], x[..., half:]
    return np.concatenate(
        [first * np.cos(angles) - second * np.sin(angles), second * np.cos(angles) + first * np.sin(angles)],
        -1,
    )


def test_matches_the_formula_at_any_start():
    x = _heads()
    np.testing.assert_allclose(RotaryEmbedding()(x), _reference(x), atol=1e2 * EPS)
    np.testing.assert_allclose(RotaryEmbedding()(x, start_index=5), _reference(x, 5), atol=1e3 * EPS)
    # Position 0 is not rotated; a rotation keeps every vector's length.
    np.testing.assert_array_equal(RotaryEmbedding()(x)[:, 0], x[:, 0])
    np.testing.assert_allclose(
        np.linalg.norm(RotaryEmbedding()(x), axis=-1), np.linalg.norm(x, axis=-1), rtol=1e2 * EPS
    )


def test_scores_depend_only_on_the_distance():
    rope = RotaryEmbedding()
    q, k = _heads(length=1, seed=1), _heads(length=1, seed=2)

    def score(query_position, key_position):
        return float(
            np.sum(
                np.asarray(rope(q, start_index=query_position))
                * np.asarray(rope(k, start_index=key_position))
            )
        )

    assert score(7, 3) == pytest.approx(score(4, 0), abs=1e3 * EPS)
    assert score(30, 26) == pytest.approx(score(4, 0), abs=1e3 * EPS)
    assert abs(score(7, 3) - score(7, 4)) > 1e-3


def test_a_slice_at_an_offset_equals_the_same_positions_of_the_whole():
    x = _heads(length=12)
    whole = np.asarray(RotaryEmbedding()(x))
    np.testing.assert_allclose(RotaryEmbedding()(x[:, 5:8], start_index=5), whole[:, 5:8], atol=1e2 * EPS)


def test_config_round_trip_dtype_and_errors():
    layer = RotaryEmbedding(max_wavelength=500.0, name="rope")
    clone = RotaryEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.max_wavelength == 500.0
    layer(_heads())
    assert layer.weights == []
    bf16 = RotaryEmbedding(dtype="mixed_bfloat16")(keras.ops.cast(_heads(), "bfloat16"))
    assert bf16.dtype == "bfloat16"
    with pytest.raises(ValueError, match="max_wavelength must be > 0; received max_wavelength=0"):
        RotaryEmbedding(max_wavelength=0)
    with pytest.raises(ValueError, match=r"the last axis \(the head width\) must be known and even"):
        RotaryEmbedding()(_heads(width=7))


def test_layer_contract(tmp_path):
    run_layer_test(
        RotaryEmbedding,
        init_kwargs=dict(max_wavelength=500.0),
        input_data=_heads(),
        expected_output_shape=(2, 9, 2, 8),
        expected_num_weights=0,
        expected_num_params=0,
        tmp_path=tmp_path,
        run_training_check=False,  # no weights
    )
