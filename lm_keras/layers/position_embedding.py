"""Learned absolute position embeddings."""

import keras
from keras import ops

from lm_keras.model_settings import positive_int_problem


@keras.saving.register_keras_serializable(package="lm_keras")
class PositionEmbedding(keras.layers.Layer):
    """Learned position embeddings: one trained vector per position (GPT-2, nanoGPT).

    The table has `sequence_length` rows of the input's width `d`, so it adds
    `sequence_length * d` parameters.

    Args:
        sequence_length: int, the number of positions (the context length).
        initializer: initializer of the table.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(B, T, d)` tensor, the token embeddings the positions will be
            added to; only its shape is used.
        start_index: int or scalar int32 tensor, the position of the first token
            (nonzero when decoding with a cache).
        positions: optional `(B, T)` int32 tensor, each token's own position (packed
            examples restart at 0); it replaces `start_index`.

    Returns:
        `(B, T, d)` position embeddings of positions `start_index .. start_index + T - 1`
        (or of `positions`), in the compute dtype.

    Example:

    >>> x = keras.random.normal((2, 10, 128))
    >>> x = x + PositionEmbedding(sequence_length=64)(x)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        problem = positive_int_problem("sequence_length", sequence_length)
        if problem:
            raise ValueError(problem)
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, inputs, start_index=0, positions=None):
        shape = ops.shape(inputs)
        if positions is not None:
            return ops.cast(ops.take(self.embeddings, positions, axis=0), self.compute_dtype)  # (B, T, d)
        if isinstance(start_index, int) and start_index == 0:
            positions = self.embeddings[: shape[1]]  # (T, d)
        else:
            positions = ops.slice(self.embeddings, (start_index, 0), (shape[1], shape[2]))  # (T, d)
        return ops.broadcast_to(ops.cast(positions, self.compute_dtype), shape)  # (B, T, d)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
