import numpy as np
import pytest

from lm_keras.layers import PositionEmbedding
from tests.layer_test_case import run_layer_test


def test_returns_the_table_rows_of_the_positions():
    layer = PositionEmbedding(sequence_length=10)
    x = np.zeros((3, 4, 6), "float32")
    outputs = np.asarray(layer(x))
    table = layer.embeddings.numpy()
    assert table.shape == (10, 6) and layer.count_params() == 60
    np.testing.assert_array_equal(outputs, np.broadcast_to(table[:4], (3, 4, 6)))
    shifted = np.asarray(layer(x[:, :2], start_index=np.int32(7)))
    np.testing.assert_array_equal(shifted, np.broadcast_to(table[7:9], (3, 2, 6)))


def test_config_round_trip():
    layer = PositionEmbedding(sequence_length=16, initializer="zeros", name="positions")
    config = layer.get_config()
    assert config["sequence_length"] == 16 and config["name"] == "positions"
    clone = PositionEmbedding.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(clone(np.ones((1, 5, 4), "float32")), 0.0)


def test_rejects_bad_length():
    with pytest.raises(
        ValueError, match="sequence_length must be a positive int; received sequence_length=0"
    ):
        PositionEmbedding(sequence_length=0)


def test_layer_contract(tmp_path):
    run_layer_test(
        PositionEmbedding,
        init_kwargs=dict(sequence_length=5),
        input_data=np.zeros((2, 5, 6), "float32"),
        expected_output_shape=(2, 5, 6),
        expected_num_weights=1,
        expected_num_params=5 * 6,
        tmp_path=tmp_path,
    )
