"""The original Transformer's fixed sinusoidal position encoding."""

import keras
from keras import ops

from lm_keras.model_settings import positive_problem


@keras.saving.register_keras_serializable(package="lm_keras")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding (Vaswani et al., 2017, section 3.5).

        PE(pos, 2i)     = sin(pos / max_wavelength^(2i / d))
        PE(pos, 2i + 1) = cos(pos / max_wavelength^(2i / d))

    It has no weights and works for any position, so it adds no parameters.

    Args:
        max_wavelength: float, the longest wavelength (10000 in the paper).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(B, T, d)` tensor, the token embeddings the encoding will be
            added to; only its shape is used.
        start_index: int or scalar int32 tensor, the position of the first token
            (nonzero when decoding with a cache).
        positions: optional `(B, T)` int32 tensor, each token's own position (packed
            examples restart at 0); it replaces `start_index`.

    Returns:
        `(B, T, d)` encodings of positions `start_index .. start_index + T - 1`,
        computed in float32 and cast to the compute dtype.

    Example:

    >>> x = keras.random.normal((2, 10, 128))
    >>> x = x + SinusoidalPositionEncoding()(x)
    """

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        problem = positive_problem("max_wavelength", max_wavelength)
        if problem:
            raise ValueError(problem)
        self.max_wavelength = max_wavelength

    def call(self, inputs, start_index=0, positions=None):
        shape = ops.shape(inputs)
        length, width = shape[1], shape[2]
        if positions is None:
            positions = ops.arange(length) + start_index  # (T,)
        positions = ops.cast(positions, "float32")  # (T,) or (B, T)
        dims = ops.arange(width)  # (d,)
        # Dimensions 2i and 2i + 1 share the frequency 1 / max_wavelength^(2i / d).
        exponents = ops.cast(2 * (dims // 2), "float32") / ops.cast(width, "float32")
        inverse_frequencies = ops.power(float(self.max_wavelength), -exponents)  # (d,)
        angles = ops.expand_dims(positions, -1) * inverse_frequencies  # (T, d) or (B, T, d)
        encoding = ops.where(dims % 2 == 0, ops.sin(angles), ops.cos(angles))
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)  # (B, T, d)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
