"""An LSTM language model that predicts every position and decodes with carried state."""

import keras
from keras import ops

from lm_keras.model_settings import lstm_problem, positive_int_problem


@keras.saving.register_keras_serializable(package="lm_keras")
class LSTMLM(keras.Model):
    """Stacked-LSTM language model.

        x = Dropout(Embedding(ids))
        x = Dropout(LSTM_i(x))            for i = 1 .. num_layers
        logits = Dense(vocab_size)(x)     float32

    Unlike the documented many-to-one model (`documented_lstm`), which reads a
    window and predicts the one token after it, this model predicts the next token
    at every position of the window, so a window of `T` tokens gives `T` training
    targets for one pass. Generation carries each layer's `(h, c)` state from token
    to token (`call_with_cache`), so each new token costs one LSTM step instead of
    a pass over the whole window.

    The output layer computes in float32, so logits are float32 under
    `mixed_bfloat16` too. Parameters (`V` vocab, `E` embedding, `U` units, `N`
    layers): `V E + 4 U (E + U + 1) + (N - 1) 4 U (2 U + 1) + (U + 1) V`.
    The model is built on construction.

    Args:
        vocab_size: int, the number of tokens `V`.
        embedding_dim: int, the embedding width `E`.
        hidden_dim: int, the units `U` of every LSTM layer.
        num_layers: int, the number of stacked LSTM layers `N`.
        dropout: float in [0, 1): dropout on the embedding and on each LSTM's output.
        **kwargs: base model arguments (`name`, `dtype`, ...).

    Call arguments:
        token_ids: `(B, T)` int32 token ids.
        training: bool, whether dropout is active.

    Returns:
        `(B, T, V)` float32 logits of the next token at every position.

    Example:

    >>> model = LSTMLM(vocab_size=65, embedding_dim=64, hidden_dim=256, num_layers=2)
    >>> model(np.zeros((2, 40), "int32")).shape
    (2, 40, 65)
    """

    def __init__(self, vocab_size, embedding_dim=128, hidden_dim=256, num_layers=2, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        # The rules `lm_keras.config.ModelConfig` checks too, so a flag fails as its argument does.
        problem = positive_int_problem("vocab_size", vocab_size) or lstm_problem(
            embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout
        )
        if problem:
            raise ValueError(problem)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout

        self.token_embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, dtype=self.dtype_policy, name="token_embedding"
        )
        self.lstm_layers = [
            keras.layers.LSTM(
                hidden_dim,
                return_sequences=True,
                return_state=True,
                dtype=self.dtype_policy,
                name=f"lstm_{i}",
            )
            for i in range(num_layers)
        ]
        # tf.train.Checkpoint does not see layers held only in a list (Keras's tracked
        # lists are not TensorFlow trackables), so each LSTM is an attribute too.
        for i, lstm in enumerate(self.lstm_layers):
            setattr(self, f"lstm_{i}", lstm)
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")
        self.output_projection = keras.layers.Dense(vocab_size, dtype="float32", name="output_projection")
        self.build((None, None))

    @classmethod
    def from_model_config(cls, model_config, **kwargs):
        """The model of a `lm_keras.config.ModelConfig` (`model="lstm"`)."""
        return cls(
            vocab_size=model_config.vocab_size,
            embedding_dim=model_config.resolved_embedding_dim,
            hidden_dim=model_config.hidden_dim,
            num_layers=model_config.num_layers,
            dropout=model_config.dropout,
            **kwargs,
        )

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        width = self.embedding_dim
        for lstm in self.lstm_layers:
            lstm.build((*input_shape, width))
            width = self.hidden_dim
        self.output_projection.build((*input_shape, self.hidden_dim))
        self.built = True

    def call(self, token_ids, training=None):
        x = self.dropout_layer(self.token_embedding(token_ids), training=training)  # (B, T, E)
        for lstm in self.lstm_layers:
            x = lstm(x, training=training)[0]  # (B, T, U)
            x = self.dropout_layer(x, training=training)
        return self.output_projection(x)  # (B, T, V) float32

    def init_cache(self, batch_size):
        """The zero state: a tuple of `num_layers` pairs `(h, c)`, each
        `(batch_size, hidden_dim)` in the compute dtype."""
        return tuple(
            (
                ops.zeros((batch_size, self.hidden_dim), dtype=self.compute_dtype),
                ops.zeros((batch_size, self.hidden_dim), dtype=self.compute_dtype),
            )
            for _ in self.lstm_layers
        )

    def call_with_cache(self, token_ids, cache, cache_index=None):
        """Runs `token_ids` from the carried state; the same interface as `TransformerLM`.

        Args:
            token_ids: `(B, t)` int32 token ids that follow the tokens the state has seen.
            cache: the state from `init_cache` or a previous call.
            cache_index: unused: the state already holds the position. Accepted so
                that decoding loops call both model families alike.

        Returns:
            `(logits, new_cache)`: `(B, t, V)` float32 logits and the state after
            the last token.
        """
        del cache_index
        x = self.token_embedding(token_ids)  # (B, t, E)
        new_cache = []
        if x.shape[1] == 1:
            # One step: call the cell directly rather than a length-1 loop.
            x = x[:, 0]  # (B, E)
            for lstm, state in zip(self.lstm_layers, cache):
                x, state = lstm.cell(x, list(state))  # (B, U)
                new_cache.append(tuple(state))
            x = x[:, None]  # (B, 1, U)
        else:
            for lstm, state in zip(self.lstm_layers, cache):
                x, h, c = lstm(x, initial_state=list(state))  # (B, t, U)
                new_cache.append((h, c))
        return self.output_projection(x), tuple(new_cache)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "dropout": self.dropout,
            }
        )
        return config
