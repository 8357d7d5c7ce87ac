"""Rotary position embeddings (RoPE), applied to queries and keys."""

import keras
from keras import ops

from lm_keras.model_settings import positive_problem


@keras.saving.register_keras_serializable(package="lm_keras")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embeddings (Su et al., 2021, RoFormer), GPT-NeoX's half-split form.

    Each head vector `x` of width `D` is cut into halves `x_1, x_2` (`D / 2` each),
    and pair `j` is rotated by the angle `p * theta_j` of its position `p`:

        theta_j = max_wavelength^(-2 j / D)
        RoPE(x, p) = concat(x_1 cos(p theta) - x_2 sin(p theta),
                            x_2 cos(p theta) + x_1 sin(p theta))

    A rotated query at position `p` and key at position `s` have a dot product that
    depends only on `p - s`, so attention sees relative positions. It has no weights,
    works at any position (a cache's included) and adds no parameters.

    Args:
        max_wavelength: float, the longest wavelength (10000 in RoFormer and Llama).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(B, T, H, D)` queries or keys, `D` even.
        start_index: int or scalar int32 tensor, the position of the first token
            (nonzero when decoding with a cache).
        positions: optional `(B, T)` int32 tensor, each token's own position (packed
            examples restart at 0); it replaces `start_index`.

    Returns:
        `(B, T, H, D)`, rotated: the angles in float32, the result in the input's dtype.

    Example:

    >>> q = keras.random.normal((2, 10, 4, 32))
    >>> RotaryEmbedding()(q).shape
    (2, 10, 4, 32)
    """

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        problem = positive_problem("max_wavelength", max_wavelength)
        if problem:
            raise ValueError(problem)
        self.max_wavelength = max_wavelength

    def build(self, input_shape):
        if input_shape[-1] is None or input_shape[-1] % 2:
            raise ValueError(
                f"the last axis (the head width) must be known and even; received shape {input_shape}"
            )

    def call(self, inputs, start_index=0, positions=None):
        length, half = ops.shape(inputs)[1], inputs.shape[-1] // 2
        if positions is None:
            positions = ops.arange(length) + start_index  # (T,)
        positions = ops.cast(positions, "float32")  # (T,) or (B, T)
        exponents = ops.cast(ops.arange(half), "float32") * (-2.0 / inputs.shape[-1])  # (D/2,)
        inverse_frequencies = ops.power(float(self.max_wavelength), exponents)  # (D/2,)
        # (T, 1, D/2) or (B, T, 1, D/2): one angle per head too
        angles = ops.expand_dims(ops.expand_dims(positions, -1), -1) * inverse_frequencies
        cos = ops.cast(ops.cos(angles), inputs.dtype)
        sin = ops.cast(ops.sin(angles), inputs.dtype)
        first, second = inputs[..., :half], inputs[..., half:]  # 2 x (B, T, H, D/2)
        return ops.concatenate((first * cos - second * sin, second * cos + first * sin), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
