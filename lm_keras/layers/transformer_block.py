"""A pre-layer-norm Transformer decoder block."""

import keras

from lm_keras.layers.multi_head_self_attention import MultiHeadSelfAttention


@keras.saving.register_keras_serializable(package="lm_keras")
class TransformerBlock(keras.layers.Layer):
    """Pre-layer-norm causal Transformer block (GPT-2, nanoGPT):

        x = x + Dropout(MultiHeadSelfAttention(LayerNorm(x)))
        x = x + Dropout(W_2 GELU(W_1 LayerNorm(x)))

    Attention is always causal. The width `d` comes from the input; the heads are
    `d / num_heads` wide. With `use_bias=False` neither the projections nor the
    layer norms have biases (nanoGPT's `bias=False`), so the block has
    `4 d^2 + 2 d mlp_dim + 2 d` parameters.

    Args:
        num_heads: int, the number of attention heads.
        mlp_dim: int, the width of the MLP's hidden layer.
        dropout: float in [0, 1), the rate of the attention-weight dropout and of
            the dropout on each residual branch.
        use_bias: bool, whether projections and layer norms have biases.
        layer_norm_epsilon: float, the layer norms' epsilon.
        kernel_initializer: initializer of the attention's QKV kernel and of the
            MLP's first kernel.
        output_kernel_initializer: initializer of the two kernels that write into
            the residual stream (attention output, MLP second); `None` means
            `kernel_initializer`. GPT-2 scales these by `1 / sqrt(2 * num_layers)`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(B, T, d)` float tensor.
        padding_mask: optional `(B, T)` bool or int tensor, true/1 for real tokens.
        return_attention_scores: bool, whether to also return the attention
            weights `(B, H, T, T)`.
        cache: optional `(B, 2, S, H, d / H)` key/value cache of this block's
            attention; see `MultiHeadSelfAttention`.
        cache_index: scalar int32 tensor, the position of the first input token.
        training: bool, whether dropout is active.

    Returns:
        `(B, T, d)`; with `return_attention_scores`, also the weights; with a
        cache, also the updated cache: `(outputs, [weights,] new_cache)`.

    Example:

    >>> block = TransformerBlock(num_heads=4, mlp_dim=512)
    >>> block(keras.random.normal((2, 10, 128))).shape
    (2, 10, 128)
    """

    def __init__(
        self,
        num_heads,
        mlp_dim,
        dropout=0.0,
        use_bias=False,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        output_kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(f"num_heads must be a positive int; received num_heads={num_heads!r}")
        if not isinstance(mlp_dim, int) or mlp_dim <= 0:
            raise ValueError(f"mlp_dim must be a positive int; received mlp_dim={mlp_dim!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received dropout={dropout!r}")
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim is None or hidden_dim % self.num_heads:
            raise ValueError(
                "hidden_dim must be divisible by num_heads; received "
                f"hidden_dim={hidden_dim}, num_heads={self.num_heads}"
            )
        output_initializer = self.output_kernel_initializer or self.kernel_initializer

        def layer_norm(name):
            return keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon,
                center=self.use_bias,
                dtype=self.dtype_policy,
                name=name,
            )

        def dense(units, initializer, name):
            return keras.layers.Dense(
                units,
                use_bias=self.use_bias,
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.attention_norm = layer_norm("attention_norm")
        self.attention = MultiHeadSelfAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer.clone(),
            output_kernel_initializer=output_initializer.clone(),
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="attention_residual_dropout"
        )
        self.mlp_norm = layer_norm("mlp_norm")
        # Clones: an unseeded initializer repeats its values at every call.
        self.mlp_in = dense(self.mlp_dim, self.kernel_initializer.clone(), "mlp_in")
        self.mlp_out = dense(hidden_dim, output_initializer.clone(), "mlp_out")
        self.mlp_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="mlp_residual_dropout"
        )
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build((*input_shape[:-1], self.mlp_dim))

    def call(
        self,
        inputs,
        padding_mask=None,
        return_attention_scores=False,
        cache=None,
        cache_index=None,
        training=None,
    ):
        results = self.attention(
            self.attention_norm(inputs),
            padding_mask=padding_mask,
            use_causal_mask=True,
            return_attention_scores=return_attention_scores,
            cache=cache,
            cache_index=cache_index,
            training=training,
        )
        if isinstance(results, tuple):
            attended, extras = results[0], results[1:]
        else:
            attended, extras = results, ()
        x = inputs + self.attention_dropout(attended, training=training)
        hidden = keras.activations.gelu(self.mlp_in(self.mlp_norm(x)), approximate=False)  # (B, T, mlp_dim)
        x = x + self.mlp_dropout(self.mlp_out(hidden), training=training)
        return (x, *extras) if extras else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(
        self,
        inputs,
        padding_mask=None,
        return_attention_scores=False,
        cache=None,
        cache_index=None,
        training=None,
    ):
        # The residual stream has the attention output's shape and dtype, so the block's
        # outputs are its attention's (with the scores and cache when asked for).
        return self.attention.compute_output_spec(
            inputs, return_attention_scores=return_attention_scores, cache=cache
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "output_kernel_initializer": keras.initializers.serialize(self.output_kernel_initializer),
            }
        )
        return config
