"""The classic Keras character LSTM, exactly as documented."""

import keras

from lm_keras.model_settings import first_problem, fraction_problem, positive_int_problem


def documented_lstm(vocab_size, embedding_dim, max_length, lstm_units, dropout_rate, dense_units):
    """The documented many-to-one LSTM language model, compiled as documented.

    The article writes:

        Sequential([
            Embedding(vocab_size, embedding_dim, input_length=max_length),
            LSTM(lstm_units, return_sequences=True),
            Dropout(dropout_rate),
            LSTM(lstm_units),
            Dense(dense_units, activation='relu'),
            Dense(vocab_size, activation='softmax'),
        ])
        model.compile(optimizer='adam', loss='categorical_crossentropy',
                      metrics=['accuracy'])

    This function returns that model with the same six layers, arguments and
    compile settings, with two changes Keras 3 forces or needs:

    - `input_length` is gone: Keras 3's `Embedding` ignores it with a warning
      ("Argument `input_length` is deprecated. Just remove it."). Its job, fixing
      the window length, is done by `keras.Input(shape=(max_length,), dtype="int32")`
      at the head of the `Sequential`, which also builds the model so its weights
      exist at once. `keras.Input` is not a layer: `model.layers` is exactly the six
      documented layers.
    - Under a mixed precision policy (`mixed_bfloat16`, `mixed_float16`) the final
      softmax layer gets `dtype="float32"`, as Keras's mixed-precision guide
      prescribes, so the probabilities and the loss stay float32. Under float32
      nothing changes.

    It reads a window of `max_length` token ids and returns the probabilities of
    the one token after it (the "many-to-one" pipeline view), trained on one-hot
    targets with categorical cross-entropy.

    Args:
        vocab_size: int, the number of tokens.
        embedding_dim: int, the embedding width.
        max_length: int, the window length.
        lstm_units: int, the units of both LSTM layers.
        dropout_rate: float in [0, 1), the rate of the Dropout between the LSTMs.
        dense_units: int, the units of the relu Dense layer.

    Returns:
        A compiled `keras.Sequential` mapping `(B, max_length)` int32 ids to
        `(B, vocab_size)` softmax probabilities.

    Example:

    >>> model = documented_lstm(vocab_size=65, embedding_dim=64, max_length=40,
    ...                         lstm_units=256, dropout_rate=0.2, dense_units=256)
    >>> [type(layer).__name__ for layer in model.layers]
    ['Embedding', 'LSTM', 'Dropout', 'LSTM', 'Dense', 'Dense']
    """
    sizes = dict(
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        max_length=max_length,
        lstm_units=lstm_units,
        dense_units=dense_units,
    )
    problem = first_problem(positive_int_problem(name, value) for name, value in sizes.items()) or (
        fraction_problem("dropout_rate", dropout_rate, "[0, 1)")
    )
    if problem:
        raise ValueError(problem)
    mixed = keras.config.dtype_policy().compute_dtype != keras.config.dtype_policy().variable_dtype
    model = keras.Sequential(
        [
            keras.Input(shape=(max_length,), dtype="int32"),
            keras.layers.Embedding(vocab_size, embedding_dim),
            keras.layers.LSTM(lstm_units, return_sequences=True),
            keras.layers.Dropout(dropout_rate),
            keras.layers.LSTM(lstm_units),
            keras.layers.Dense(dense_units, activation="relu"),
            keras.layers.Dense(vocab_size, activation="softmax", dtype="float32" if mixed else None),
        ],
        name="documented_lstm",
    )
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model
