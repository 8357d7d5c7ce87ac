import math

import keras
import numpy as np
import pytest

from lm_keras.layers import SinusoidalPositionEncoding
from tests.layer_test_case import run_layer_test


def test_values_follow_the_formula():
    width = 6
    encoding = np.asarray(SinusoidalPositionEncoding()(np.zeros((2, 5, width), "float32")))
    assert encoding.shape == (2, 5, width)
    np.testing.assert_array_equal(encoding[0], encoding[1])
    # Position 0: sin(0) = 0 on even dimensions, cos(0) = 1 on odd ones.
    np.testing.assert_allclose(encoding[0, 0], [0, 1, 0, 1, 0, 1], atol=1e-7)
    # PE(pos, 2i) = sin(pos / 10000^(2i / d)), PE(pos, 2i + 1) = cos(pos / 10000^(2i / d)).
    pos, i = 3, 1
    angle = pos / 10000 ** (2 * i / width)
    np.testing.assert_allclose(encoding[0, pos, 2 * i], math.sin(angle), rtol=1e-6)
    np.testing.assert_allclose(encoding[0, pos, 2 * i + 1], math.cos(angle), rtol=1e-6)
    np.testing.assert_allclose(encoding[0, 4, :2], [math.sin(4), math.cos(4)], rtol=1e-6)
    expected = np.array(
        [
            [
                f(p / 10000 ** (2 * (j // 2) / width))
                for j, f in zip(range(width), [math.sin, math.cos] * (width // 2))
            ]
            for p in range(5)
        ]
    )
    np.testing.assert_allclose(encoding[0], expected, atol=1e-6)


def test_start_index_shifts_positions_and_has_no_weights():
    layer = SinusoidalPositionEncoding()
    full = np.asarray(layer(np.zeros((1, 10, 8), "float32")))
    shifted = np.asarray(layer(np.zeros((1, 3, 8), "float32"), start_index=np.int32(6)))
    np.testing.assert_allclose(shifted, full[:, 6:9], atol=1e-6)
    assert layer.weights == [] and layer.count_params() == 0


def test_config_round_trip_and_dtype():
    layer = SinusoidalPositionEncoding(max_wavelength=100.0, dtype="mixed_bfloat16")
    clone = SinusoidalPositionEncoding.from_config(layer.get_config())
    assert clone.max_wavelength == 100.0
    assert clone(keras.ops.zeros((1, 4, 8))).dtype == "bfloat16"
    with pytest.raises(ValueError, match="max_wavelength must be > 0; received max_wavelength=0"):
        SinusoidalPositionEncoding(max_wavelength=0)


def test_layer_contract(tmp_path):
    run_layer_test(
        SinusoidalPositionEncoding,
        init_kwargs=dict(max_wavelength=100.0),
        input_data=np.zeros((2, 5, 6), "float32"),
        expected_output_shape=(2, 5, 6),
        expected_num_weights=0,
        expected_num_params=0,
        run_training_check=False,  # no weights
        tmp_path=tmp_path,
    )
