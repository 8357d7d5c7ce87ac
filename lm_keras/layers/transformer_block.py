"""A pre-norm Transformer decoder block."""

import keras
from keras import ops

from lm_keras.layers.multi_head_self_attention import MultiHeadSelfAttention
from lm_keras.model_settings import (
    LORA_TARGETS,
    MLPS,
    NORMS,
    choice_problem,
    fraction_problem,
    heads_problem,
    lora_problem,
    positive_int_problem,
)


@keras.saving.register_keras_serializable(package="lm_keras")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm causal Transformer block (GPT-2, nanoGPT):

        x = x + Dropout(MultiHeadSelfAttention(Norm(x)))
        x = x + Dropout(MLP(Norm(x)))

    with the MLP one of

        gelu, gelu_tanh:  W_2 GELU(W_1 h)          (exact / tanh-approximated GELU)
        relu2:            W_2 ReLU(W_1 h)^2         (So et al., 2021, Primer)
        swiglu:           W_2 (SiLU(W_g h) * W_1 h) (Shazeer, 2020; three matrices)

    Attention is always causal. The width `d` comes from the input; the heads are
    `D = d / num_heads` wide. With `use_bias=False` neither the projections nor the
    norms have biases (nanoGPT's `bias=False`), so the block has
    `4 d^2 + 2 d m + 2 d` parameters (`m = mlp_dim`; swiglu: `3 d m` for the MLP),
    plus `2 D` with `use_qk_norm`. Biases add `7 d + m` (layer norm) or `5 d + m`
    (RMS norm, which has no shift), and `m` more for swiglu's gate.

    Args:
        num_heads: int, the number of attention heads.
        mlp_dim: int, the width `m` of the MLP's hidden layer.
        mlp: the MLP, one of `"gelu"` (exact, erf; nanoGPT's), `"gelu_tanh"` (the
            tanh approximation; GPT-2's), `"relu2"`, `"swiglu"`.
        dropout: float in [0, 1), the rate of the attention-weight dropout and of
            the dropout on each residual branch.
        use_bias: bool, whether projections and layer norms have biases.
        layer_norm_epsilon: float, the epsilon of every norm (QK-norm's too).
        kernel_initializer: initializer of the attention's QKV kernel and of the
            MLP's first kernels.
        output_kernel_initializer: initializer of the two kernels that write into
            the residual stream (attention output, MLP second); `None` means
            `kernel_initializer`. GPT-2 scales these by `1 / sqrt(2 * num_layers)`.
        norm: `"layernorm"` or `"rmsnorm"` (no mean subtraction, no shift).
        use_qk_norm: bool, RMS-normalise each head's queries and keys; see
            `MultiHeadSelfAttention`.
        use_rope: bool, rotary position embeddings on queries and keys.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(B, T, d)` float tensor.
        padding_mask: optional `(B, T)` bool or int tensor, true/1 for real tokens.
        return_attention_scores: bool, whether to also return the attention
            weights `(B, H, T, T)`.
        cache: optional key/value cache of this block's attention, a pair `(keys,
            values)` of `(B, H, S, d / H)` tensors; see `MultiHeadSelfAttention`.
        cache_index: scalar int32 tensor, the position of the first input token.
        training: bool, whether dropout is active.
        segment_ids, positions: optional `(B, T)` int tensors for packed examples: each
            token attends within its segment, at its position there (see
            `MultiHeadSelfAttention`).

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
        mlp="gelu",
        dropout=0.0,
        use_bias=False,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        output_kernel_initializer=None,
        norm="layernorm",
        use_qk_norm=False,
        use_rope=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        problem = (
            positive_int_problem("num_heads", num_heads)
            or positive_int_problem("mlp_dim", mlp_dim)
            or choice_problem("mlp", mlp, MLPS)
            or choice_problem("norm", norm, NORMS)
            or fraction_problem("dropout", dropout, "[0, 1)")
        )
        if problem:
            raise ValueError(problem)
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.mlp = mlp
        self.dropout = dropout
        self.use_bias = use_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)
        self.norm = norm
        self.use_qk_norm = use_qk_norm
        self.use_rope = use_rope

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        problem = heads_problem(hidden_dim, self.num_heads)
        if problem:
            raise ValueError(problem)
        output_initializer = self.output_kernel_initializer or self.kernel_initializer

        def dense(units, initializer, name):
            return keras.layers.Dense(
                units,
                use_bias=self.use_bias,
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.attention_norm = make_norm(
            self.norm, self.layer_norm_epsilon, self.use_bias, self.dtype_policy, "attention_norm"
        )
        self.attention = MultiHeadSelfAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer.clone(),
            output_kernel_initializer=output_initializer.clone(),
            use_qk_norm=self.use_qk_norm,
            qk_norm_epsilon=self.layer_norm_epsilon,
            use_rope=self.use_rope,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.attention_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="attention_residual_dropout"
        )
        self.mlp_norm = make_norm(
            self.norm, self.layer_norm_epsilon, self.use_bias, self.dtype_policy, "mlp_norm"
        )
        # Clones: an unseeded initializer repeats its values at every call.
        self.mlp_in = dense(self.mlp_dim, self.kernel_initializer.clone(), "mlp_in")
        if self.mlp == "swiglu":
            self.mlp_gate = dense(self.mlp_dim, self.kernel_initializer.clone(), "mlp_gate")
            self.mlp_gate.build(input_shape)
        self.mlp_out = dense(hidden_dim, output_initializer.clone(), "mlp_out")
        self.mlp_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="mlp_residual_dropout"
        )
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build((*input_shape[:-1], self.mlp_dim))

    def _mlp_hidden(self, h):
        """(B, T, d) -> (B, T, mlp_dim): the MLP before its output projection."""
        if self.mlp == "swiglu":
            return ops.silu(self.mlp_gate(h)) * self.mlp_in(h)
        hidden = self.mlp_in(h)
        if self.mlp == "relu2":
            return ops.square(ops.relu(hidden))
        return keras.activations.gelu(hidden, approximate=self.mlp == "gelu_tanh")

    def call(
        self,
        inputs,
        padding_mask=None,
        return_attention_scores=False,
        cache=None,
        cache_index=None,
        training=None,
        segment_ids=None,
        positions=None,
    ):
        results = self.attention(
            self.attention_norm(inputs),
            padding_mask=padding_mask,
            use_causal_mask=True,
            return_attention_scores=return_attention_scores,
            cache=cache,
            cache_index=cache_index,
            training=training,
            segment_ids=segment_ids,
            positions=positions,
        )
        if isinstance(results, tuple):
            attended, extras = results[0], results[1:]
        else:
            attended, extras = results, ()
        x = inputs + self.attention_dropout(attended, training=training)
        hidden = self._mlp_hidden(self.mlp_norm(x))  # (B, T, mlp_dim)
        x = x + self.mlp_dropout(self.mlp_out(hidden), training=training)
        return (x, *extras) if extras else x

    def enable_lora(self, rank, alpha=None, targets="attention"):
        """LoRA on this block (see `TransformerLM.enable_lora`): its attention's own adapters
        (`MultiHeadSelfAttention.enable_lora`) and, for `"attention_mlp"` and `"all"`, Keras's
        `Dense.enable_lora` on the MLP's dense layers.

        Args:
            rank: int, the rank `r` of every pair.
            alpha: float, the scale is `alpha / r`; None or 0 means `r`.
            targets: `"attention"`, `"attention_mlp"` or `"all"` (`model_settings.LORA_TARGETS`).
        """
        problem = lora_problem(rank, alpha, targets)
        if problem:
            raise ValueError(problem)
        attention_targets, mlp = LORA_TARGETS[targets]
        self.attention.enable_lora(rank, alpha, attention_targets)
        if mlp:
            for layer in self._mlp_dense_layers():
                layer.enable_lora(rank, lora_alpha=float(alpha or rank))

    def _mlp_dense_layers(self):
        return [self.mlp_in, self.mlp_out] + ([self.mlp_gate] if self.mlp == "swiglu" else [])

    def merged_kernels(self):
        """{path of an adapted kernel: the float32 kernel with its LoRA pair folded in}."""
        kernels = {}
        if self.attention.lora_rank:
            for name, value in self.attention.merged_kernels().items():
                kernels[getattr(self.attention, name).path] = value
        for layer in self._mlp_dense_layers():
            if layer.lora_enabled:
                product = ops.matmul(layer.lora_kernel_a, layer.lora_kernel_b)  # (d_in, d_out)
                kernels[layer._kernel.path] = layer._kernel + (layer.lora_alpha / layer.lora_rank) * product
        return kernels

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
        segment_ids=None,
        positions=None,
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
                "mlp": self.mlp,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "output_kernel_initializer": keras.initializers.serialize(self.output_kernel_initializer),
                "norm": self.norm,
                "use_qk_norm": self.use_qk_norm,
                "use_rope": self.use_rope,
            }
        )
        return config


def make_norm(kind, epsilon, use_bias, dtype, name):
    """A `"layernorm"` (with a shift if `use_bias`) or `"rmsnorm"` (gain only) over the last axis."""
    if kind == "rmsnorm":
        return keras.layers.RMSNormalization(epsilon=epsilon, dtype=dtype, name=name)
    return keras.layers.LayerNormalization(epsilon=epsilon, center=use_bias, dtype=dtype, name=name)
