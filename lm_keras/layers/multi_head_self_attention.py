"""Multi-head self-attention, written out from the formula."""

import math

import keras
from keras import ops

from lm_keras.layers.rotary_embedding import RotaryEmbedding
from lm_keras.model_settings import (
    LORA_ATTENTION_PROJECTIONS,
    fraction_problem,
    lora_problem,
    positive_int_problem,
)

# Added to masked scores before the softmax (computed in float32); exp() of it is exactly 0.
_MASKED_SCORE = -1e9


@keras.saving.register_keras_serializable(package="lm_keras")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention.

        Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V
        head_i = Attention(X W_i^Q, X W_i^K, X W_i^V)
        MultiHead(X) = Concat(head_1, ..., head_h) W^O

    The three input projections are one fused kernel `qkv_kernel` of shape
    `(d, 3, H, D)` (index 0, 1, 2 on the second axis: W^Q, W^K, W^V; `d` the input
    width, `H` heads of `D = key_dim` each), so one matmul computes Q, K and V.
    `output_kernel` is `W^O`, `(H, D, d)`: concatenating the heads and projecting is
    one contraction over (H, D). `keras.layers.MultiHeadAttention`'s query, key and
    value kernels `(d, H, D)` stack into `qkv_kernel` on axis 1 and its output kernel
    is `output_kernel` unchanged, so the two layers compute the same function.
    The biases are vectors (`qkv_bias` is `(3 H D,)`, the QKV biases flattened), so
    optimizers that exempt rank-1 variables from weight decay exempt them.

    Scores are computed, masked and normalised in float32 whatever the compute
    dtype, so the softmax is stable under `mixed_bfloat16`.

    Two options change Q and K before the scores (both leave V alone, and the cache
    holds the keys as changed):
    - `use_qk_norm`: each head's query and key go through an RMS norm over `D`, with
      one learned gain vector `(D,)` for queries and one for keys (`2 D` parameters);
      it bounds the scores' scale (QK-norm, Dehghani et al., 2023).
    - `use_rope`: queries and keys are rotated by their positions (`RotaryEmbedding`),
      `0 .. T - 1`, or `cache_index ..` with a cache; `D` must be even.

    LoRA (Hu et al., 2021; `enable_lora`): a low-rank pair `A (d, r)`, `B (r, H, D)`
    per adapted projection adds `(alpha / r) x A B` to the query, key or value, and
    `A (H, D, r)`, `B (r, d)` adds `(alpha / r) heads A B` to the output. The layer
    holds raw kernels, not `Dense`/`EinsumDense` sublayers, so Keras's own
    `enable_lora` cannot adapt the query and the value alone inside the fused
    `qkv_kernel`: this layer has its own, which works the same way (the pairs are
    float32 whatever the dtype policy, `A` random (He uniform), `B` zeros, so an
    enabled adapter starts as the identity; the adapted kernels are frozen), and
    `merged_kernels` folds the pairs into the kernels for a plain layer.

    Args:
        num_heads: int, the number of heads `H`.
        key_dim: int, the width `D` of each head's queries, keys and values.
        dropout: float in [0, 1), dropout rate on the attention weights.
        use_bias: bool, whether the projections add biases.
        kernel_initializer: initializer of `qkv_kernel`.
        output_kernel_initializer: initializer of `output_kernel`; `None` means
            `kernel_initializer`.
        bias_initializer: initializer of the biases.
        use_qk_norm: bool, whether queries and keys are RMS-normalised per head.
        qk_norm_epsilon: float, the epsilon of those norms.
        use_rope: bool, whether queries and keys get rotary position embeddings.
        rope_max_wavelength: float, the rotary embeddings' longest wavelength.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(B, T, d)` float tensor.
        padding_mask: optional `(B, T)` bool or int tensor, true/1 for real tokens;
            keys at padded positions get zero weight.
        use_causal_mask: bool, whether position `i` attends only to positions `<= i`.
        segment_ids: optional `(B, T)` int tensor: a query attends only to keys of its own
            segment (several examples packed in one window, numbered from 0 in order).
        positions: optional `(B, T)` int32 tensor, each token's position for the rotary
            embeddings (packed examples restart at 0; see `segment_positions`).
        return_attention_scores: bool, whether to also return the attention weights.
        cache: optional key/value cache for incremental decoding, a pair `(keys,
            values)` of `(B, H, S, D)` tensors (`S` positions, at most the context).
            The layer writes this call's keys and values at positions `cache_index
            .. cache_index + T - 1`, which must be `< S`, and attends causally over
            the cache; `padding_mask` and `use_causal_mask` are then not used. A
            cache shorter than the context costs less to attend over (see
            `TransformerLM.init_cache`).
        cache_index: scalar int32 tensor, where this call's tokens go in the cache.
        training: bool, whether attention dropout is active.

    Returns:
        `(B, T, d)` output; with `return_attention_scores`, also the attention
        weights `(B, H, T, T)` (`(B, H, T, S)` with a cache), before dropout;
        with a cache, also the updated cache: `(output, [weights,] new_cache)`.

    Example:

    >>> layer = MultiHeadSelfAttention(num_heads=4, key_dim=32)
    >>> x = keras.random.normal((2, 10, 128))
    >>> y, weights = layer(x, use_causal_mask=True, return_attention_scores=True)
    >>> y.shape, weights.shape
    ((2, 10, 128), (2, 4, 10, 10))
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        output_kernel_initializer=None,
        bias_initializer="zeros",
        use_qk_norm=False,
        qk_norm_epsilon=1e-5,
        use_rope=False,
        rope_max_wavelength=10000.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        problem = (
            positive_int_problem("num_heads", num_heads)
            or positive_int_problem("key_dim", key_dim)
            or fraction_problem("dropout", dropout, "[0, 1)")
        )
        if problem:
            raise ValueError(problem)
        # TransformerLM checks this with its own arguments' names (model_settings.transformer_problem).
        if use_rope and key_dim % 2:
            raise ValueError(f"use_rope needs an even key_dim; received key_dim={key_dim}")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.output_kernel_initializer = keras.initializers.get(output_kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.use_qk_norm = use_qk_norm
        self.qk_norm_epsilon = qk_norm_epsilon
        self.use_rope = use_rope
        self.rope_max_wavelength = rope_max_wavelength
        # LoRA is off until `enable_lora` (not a constructor argument: it adapts a built layer).
        self.lora_rank, self.lora_alpha, self.lora_targets = 0, 0.0, ()

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim is None:
            raise ValueError(f"the last axis of the input must be known; received shape {input_shape}")
        self.qkv_kernel = self.add_weight(
            name="qkv_kernel",
            shape=(hidden_dim, 3, self.num_heads, self.key_dim),
            initializer=self.kernel_initializer.clone(),  # a fresh seed per weight
        )
        self.output_kernel = self.add_weight(
            name="output_kernel",
            shape=(self.num_heads, self.key_dim, hidden_dim),
            initializer=(self.output_kernel_initializer or self.kernel_initializer).clone(),
        )
        if self.use_bias:
            self.qkv_bias = self.add_weight(
                name="qkv_bias",
                shape=(3 * self.num_heads * self.key_dim,),
                initializer=self.bias_initializer,
            )
            self.output_bias = self.add_weight(
                name="output_bias", shape=(hidden_dim,), initializer=self.bias_initializer
            )
        else:
            self.qkv_bias = None
            self.output_bias = None
        self.attention_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="attention_dropout"
        )
        head_shape = (None, None, self.num_heads, self.key_dim)
        if self.use_qk_norm:
            self.query_norm = keras.layers.RMSNormalization(
                epsilon=self.qk_norm_epsilon, dtype=self.dtype_policy, name="query_norm"
            )
            self.key_norm = keras.layers.RMSNormalization(
                epsilon=self.qk_norm_epsilon, dtype=self.dtype_policy, name="key_norm"
            )
            self.query_norm.build(head_shape)
            self.key_norm.build(head_shape)
        if self.use_rope:
            self.rotary_embedding = RotaryEmbedding(
                self.rope_max_wavelength, dtype=self.dtype_policy, name="rotary_embedding"
            )
            self.rotary_embedding.build(head_shape)

    def call(
        self,
        inputs,
        padding_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        cache=None,
        cache_index=None,
        training=None,
        segment_ids=None,
        positions=None,
    ):
        if cache is not None and cache_index is None:
            raise ValueError("cache_index is required with a cache")
        qkv = ops.einsum("btd,dshk->btshk", inputs, self.qkv_kernel)  # (B, T, 3, H, D)
        if self.use_bias:
            qkv = qkv + ops.reshape(self.qkv_bias, (3, self.num_heads, self.key_dim))  # (3, H, D)
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # 3 x (B, T, H, D)
        if self.lora_rank:
            query, key, value = (
                p + self._lora_delta(name, inputs) if name in self.lora_targets else p
                for name, p in (("query", query), ("key", key), ("value", value))
            )
        if self.use_qk_norm:
            query, key = self.query_norm(query), self.key_norm(key)
        if self.use_rope:
            start = 0 if cache is None else ops.cast(cache_index, "int32")
            query = self.rotary_embedding(query, start_index=start, positions=positions)
            key = self.rotary_embedding(key, start_index=start, positions=positions)
        # Scaling the queries is cheaper than scaling the (B, H, T, S) scores.
        query = query * ops.cast(1.0 / math.sqrt(self.key_dim), query.dtype)

        scores_equation, heads_equation = "bthk,bshk->bhts", "bhts,bshk->bthk"
        if cache is not None:
            # Keys and values are two tensors (B, H, S, D): a step's two products with them
            # are then batch matmuls over (B, H) that read them where they lie. With the
            # heads after the positions, or both in one tensor, XLA would copy (and
            # transpose) the whole cache at every step.
            start = (0, 0, cache_index, 0)
            key = ops.slice_update(cache[0], start, ops.transpose(key, (0, 2, 1, 3)))  # (B, H, S, D)
            value = ops.slice_update(cache[1], start, ops.transpose(value, (0, 2, 1, 3)))  # (B, H, S, D)
            new_cache = (key, value)
            mask = _cache_mask(ops.shape(query)[1], ops.shape(key)[2], cache_index)  # (T, S)
            scores_equation, heads_equation = "bthk,bhsk->bhts", "bhts,bhsk->bthk"
        else:
            mask = _attention_mask(ops.shape(inputs)[1], padding_mask, use_causal_mask, segment_ids)

        scores = ops.einsum(scores_equation, query, key)  # (B, H, T, S)
        scores = ops.cast(scores, "float32")
        if mask is not None:
            scores = ops.where(mask, scores, _MASKED_SCORE)
        weights = ops.softmax(scores, axis=-1)  # (B, H, T, S), float32
        attention = ops.cast(weights, self.compute_dtype)
        if self.dropout > 0.0:
            attention = self.attention_dropout(attention, training=training)
        heads = ops.einsum(heads_equation, attention, value)  # (B, T, H, D)
        outputs = ops.einsum("bthk,hkd->btd", heads, self.output_kernel)  # (B, T, d)
        if "output" in self.lora_targets:
            outputs = outputs + self._lora_delta("output", heads)
        if self.use_bias:
            outputs = outputs + self.output_bias

        results = (outputs,)
        if return_attention_scores:
            results += (weights,)
        if cache is not None:
            results += (new_cache,)
        return results[0] if len(results) == 1 else results

    def enable_lora(self, rank, alpha=None, targets=("query", "value")):
        """Adds a trainable low-rank pair to each projection in `targets` and freezes the kernels.

        Args:
            rank: int, the rank `r` of every pair.
            alpha: float, the scale's numerator (the update is `alpha / r` times `A B`);
                None or 0 means `r` (a scale of 1, PEFT's default `lora_alpha=r=8`).
            targets: some of `"query"`, `"key"`, `"value"` (the three parts of
                `qkv_kernel`) and `"output"` (`output_kernel`).

        Example:

        >>> layer = MultiHeadSelfAttention(num_heads=4, key_dim=8)
        >>> layer.build((None, None, 32))
        >>> layer.enable_lora(4)
        >>> [v.name for v in layer.trainable_weights if v.name.startswith("lora_")]
        ['lora_query_a', 'lora_query_b', 'lora_value_a', 'lora_value_b']
        >>> layer.qkv_kernel.trainable
        False
        """
        if not self.built:
            raise ValueError("enable_lora needs a built layer; build it (or call it) first")
        if self.lora_rank:
            raise ValueError(f"LoRA is already enabled on {self.name} (rank {self.lora_rank})")
        problem = lora_problem(rank, alpha, "attention")
        if problem:
            raise ValueError(problem)
        targets = tuple(targets)
        unknown = [t for t in targets if t not in LORA_ATTENTION_PROJECTIONS]
        if unknown or not targets:
            raise ValueError(
                f"targets must be some of {', '.join(LORA_ATTENTION_PROJECTIONS)}; "
                f"received targets={targets!r}"
            )
        hidden_dim = self.qkv_kernel.shape[0]
        heads = (self.num_heads, self.key_dim)
        self._tracker.unlock()
        for target in targets:
            into, out_of = ((hidden_dim,), heads) if target != "output" else (heads, (hidden_dim,))
            for suffix, shape, initializer in (
                ("a", (*into, rank), keras.initializers.HeUniform()),  # a fresh seed per weight
                ("b", (rank, *out_of), "zeros"),
            ):
                name = f"lora_{target}_{suffix}"
                weight = self.add_weight(name=name, shape=shape, initializer=initializer, dtype="float32")
                setattr(self, name, weight)
        self._tracker.lock()
        if set(targets) & {"query", "key", "value"}:
            self.qkv_kernel.trainable = False
        if "output" in targets:
            self.output_kernel.trainable = False
        self.lora_rank, self.lora_alpha, self.lora_targets = rank, float(alpha or rank), targets

    def _lora_delta(self, target, x):
        """What the `target` pair adds: `(alpha / r) x A B`, `(B, T, H, D)` for the query, key and
        value (`x` the `(B, T, d)` input), `(B, T, d)` for the output (`x` the `(B, T, H, D)` heads)."""
        a = ops.cast(getattr(self, f"lora_{target}_a"), x.dtype)
        b = ops.cast(getattr(self, f"lora_{target}_b"), x.dtype)
        if target == "output":
            low = ops.einsum("bthk,hkr->btr", x, a)  # (B, T, r)
            delta = ops.einsum("btr,rd->btd", low, b)  # (B, T, d)
        else:
            low = ops.einsum("btd,dr->btr", x, a)  # (B, T, r)
            delta = ops.einsum("btr,rhk->bthk", low, b)  # (B, T, H, D)
        return delta * ops.cast(self.lora_alpha / self.lora_rank, x.dtype)

    def merged_kernels(self):
        """The kernels with the LoRA pairs folded in: `{"qkv_kernel": (d, 3, H, D), "output_kernel":
        (H, D, d)}` float32 tensors, what a plain layer (no adapters) needs to compute the same."""
        qkv = ops.convert_to_tensor(self.qkv_kernel)
        output = ops.convert_to_tensor(self.output_kernel)
        scale = self.lora_alpha / self.lora_rank if self.lora_rank else 0.0

        def product(target):
            a = ops.convert_to_tensor(getattr(self, f"lora_{target}_a"))
            b = ops.convert_to_tensor(getattr(self, f"lora_{target}_b"))
            return ops.tensordot(a, b, axes=1) * scale  # (d, H, D), or (H, D, d) for the output

        parts = [
            qkv[:, i] + product(name) if name in self.lora_targets else qkv[:, i]
            for i, name in enumerate(("query", "key", "value"))
        ]
        if set(self.lora_targets) & {"query", "key", "value"}:
            qkv = ops.stack(parts, axis=1)  # (d, 3, H, D)
        if "output" in self.lora_targets:
            output = output + product("output")
        return {"qkv_kernel": qkv, "output_kernel": output}

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(
        self,
        inputs,
        padding_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        cache=None,
        cache_index=None,
        training=None,
        segment_ids=None,
        positions=None,
    ):
        # A functional call learns its outputs here, so they follow `call`'s tuple.
        outputs = (keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype),)
        if return_attention_scores:
            batch, length = inputs.shape[:2]
            keys = length if cache is None else cache[0].shape[2]
            outputs += (keras.KerasTensor((batch, self.num_heads, length, keys), dtype="float32"),)
        if cache is not None:
            outputs += (tuple(keras.KerasTensor(c.shape, dtype=c.dtype) for c in cache),)
        return outputs[0] if len(outputs) == 1 else outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "output_kernel_initializer": keras.initializers.serialize(self.output_kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "use_qk_norm": self.use_qk_norm,
                "qk_norm_epsilon": self.qk_norm_epsilon,
                "use_rope": self.use_rope,
                "rope_max_wavelength": self.rope_max_wavelength,
            }
        )
        return config


def segment_positions(segment_ids):
    """`(B, T)` int32: each token's position inside its segment (0 at a segment's first token)."""
    same = ops.equal(segment_ids[:, :, None], segment_ids[:, None, :])  # (B, T, T)
    length = ops.shape(segment_ids)[1]
    causal = ops.arange(length)[:, None] >= ops.arange(length)[None, :]  # (T, T)
    # Segments are contiguous: the earlier tokens of a token's own segment are its position.
    return ops.sum(ops.cast(ops.logical_and(same, causal), "int32"), axis=-1) - 1  # (B, T)


def _attention_mask(length, padding_mask, use_causal_mask, segment_ids=None):
    """The bool mask, broadcastable to the scores (B, H, T, T), true where a query may attend."""
    mask = None
    if use_causal_mask:
        positions = ops.arange(length)
        mask = positions[:, None] >= positions[None, :]  # (T, T)
    if padding_mask is not None:
        keys = ops.cast(padding_mask, "bool")[:, None, None, :]  # (B, 1, 1, T)
        mask = keys if mask is None else ops.logical_and(mask, keys)  # (B, 1, T, T)
    if segment_ids is not None:
        same = ops.equal(segment_ids[:, None, :, None], segment_ids[:, None, None, :])  # (B, 1, T, T)
        mask = same if mask is None else ops.logical_and(mask, same)
    return mask


def _cache_mask(length, cache_length, cache_index):
    """(T, S): the query at position cache_index + i sees the cache slots up to it."""
    query_positions = ops.arange(length) + ops.cast(cache_index, "int32")
    return query_positions[:, None] >= ops.arange(cache_length)[None, :]  # (T, S)
