"""A GPT-style Transformer language model."""

import math

import keras
from keras import ops

from lm_keras.layers.multi_head_self_attention import segment_positions
from lm_keras.layers.position_embedding import PositionEmbedding
from lm_keras.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from lm_keras.layers.transformer_block import TransformerBlock, make_norm
from lm_keras.model_settings import lora_problem, positive_int_problem, transformer_problem


@keras.saving.register_keras_serializable(package="lm_keras")
class TransformerLM(keras.Model):
    """GPT-style decoder-only Transformer language model (nanoGPT's `GPT`).

        x = TokenEmbedding(ids) + PositionEncoding(0 .. T - 1)
        x = TransformerBlock_N(... TransformerBlock_1(Dropout(x)))
        logits = LayerNorm(x) E^T

    The output projection is the transposed token embedding `E` (tied weights) and
    always computes in float32, so logits are float32 under `mixed_bfloat16` too.
    Weights start as in GPT-2: normal(0, 0.02), and normal(0, 0.02 / sqrt(2 N))
    for the two kernels per block that write into the residual stream.

    The defaults are the article's GPT (nanoGPT's). The other options are those of
    modern recipes (modded-nanogpt, Llama, Gemma), each independent of the others:
    `position="rope"` (rotary embeddings in every attention, no position table),
    `norm="rmsnorm"`, `use_qk_norm`, `mlp="relu2"` or `"swiglu"`, an untied head
    (`tie_embeddings=False`: its own `(d, V)` matrix, starting at zero),
    `zero_init_residual` (the kernels that write into the residual stream start
    at zero, so every block starts as the identity) and `logit_softcap=C`
    (logits `C tanh(logits / C)`, computed in float32).

    Parameters (`V` vocab, `d` width, `m` MLP width, `N` blocks, `S` context,
    `D = d / num_heads`): `V d` (tied embedding; untied `2 V d`) `+ S d` (learned
    positions only) `+ N (4 d^2 + 2 d m + 2 d) + d` (swiglu: `3 d m` for `2 d m`;
    `use_qk_norm`: `+ N 2 D`), plus biases with `use_bias=True`: `N (7 d + m) + d` with
    layer norms, `N (5 d + m)` with RMS norms (no shifts), and `N m` more for swiglu.

    The model is built on construction, so its weights exist at once.

    Args:
        vocab_size: int, the number of tokens `V`.
        num_layers: int, the number of blocks `N`.
        num_heads: int, attention heads per block.
        hidden_dim: int, the width `d`; divisible by `num_heads`.
        mlp_dim: int, the MLP's hidden width `m`.
        seq_len: int, the context `S`: the longest input, and the cache length.
        dropout: float in [0, 1): embedding, attention and residual dropout.
        use_bias: bool, whether projections and layer norms have biases.
        position: `"learned"` (`PositionEmbedding`), `"sinusoidal"`
            (`SinusoidalPositionEncoding`) or `"rope"` (`RotaryEmbedding` on queries
            and keys; the heads must be of even width).
        layer_norm_epsilon: float, the epsilon of every norm.
        mlp: the MLP, `"gelu"` (exact), `"gelu_tanh"` (GPT-2's), `"relu2"` or
            `"swiglu"`; see `TransformerBlock`.
        norm: `"layernorm"` or `"rmsnorm"`, every norm of the model.
        use_qk_norm: bool, RMS-normalise queries and keys in every attention.
        tie_embeddings: bool; `False` gives the model its own output projection,
            which starts at zero.
        zero_init_residual: bool, start the residual-writing kernels at zero.
        logit_softcap: float; `C > 0` caps the logits smoothly at `+-C`, 0 is off.
        **kwargs: base model arguments (`name`, `dtype`, ...).

    Call arguments:
        token_ids: `(B, T)` int32 token ids, `T <= seq_len`.
        training: bool, whether dropout is active.

    Returns:
        `(B, T, V)` float32 logits of the next token at every position.

    Example:

    >>> model = TransformerLM(vocab_size=65, num_layers=4, num_heads=4,
    ...                       hidden_dim=128, mlp_dim=512, seq_len=64)
    >>> model(np.zeros((2, 64), "int32")).shape
    (2, 64, 65)
    >>> model.count_params()
    804096
    """

    def __init__(
        self,
        vocab_size,
        num_layers=4,
        num_heads=4,
        hidden_dim=128,
        mlp_dim=512,
        seq_len=64,
        dropout=0.0,
        use_bias=False,
        position="learned",
        layer_norm_epsilon=1e-5,
        mlp="gelu",
        norm="layernorm",
        use_qk_norm=False,
        tie_embeddings=True,
        zero_init_residual=False,
        logit_softcap=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # The rules `lm_keras.config.ModelConfig` checks too, so a flag fails as its argument does.
        problem = positive_int_problem("vocab_size", vocab_size) or transformer_problem(
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            mlp_dim=mlp_dim,
            seq_len=seq_len,
            dropout=dropout,
            position=position,
            mlp=mlp,
            norm=norm,
            logit_softcap=logit_softcap,
            layer_norm_epsilon=layer_norm_epsilon,
        )
        if problem:
            raise ValueError(problem)
        self.vocab_size = vocab_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.mlp_dim = mlp_dim
        self.seq_len = seq_len
        self.dropout = dropout
        self.use_bias = use_bias
        self.position = position
        self.layer_norm_epsilon = layer_norm_epsilon
        self.mlp = mlp
        self.norm = norm
        self.use_qk_norm = use_qk_norm
        self.tie_embeddings = tie_embeddings
        self.zero_init_residual = zero_init_residual
        self.logit_softcap = logit_softcap

        # An unseeded Keras initializer draws the same values at every call, so each
        # weight gets its own clone (a fresh seed); one shared instance would start
        # every block identical.
        initializer = keras.initializers.RandomNormal(stddev=0.02)
        residual_initializer = keras.initializers.RandomNormal(stddev=0.02 / math.sqrt(2 * num_layers))
        if zero_init_residual:
            residual_initializer = keras.initializers.Zeros()
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocab_size,
            hidden_dim,
            tie_weights=tie_embeddings,
            embeddings_initializer=initializer.clone(),
            reverse_dtype="float32",
            logit_soft_cap=logit_softcap or None,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        if position == "learned":
            self.position_embedding = PositionEmbedding(
                seq_len, initializer=initializer.clone(), dtype=self.dtype_policy, name="position_embedding"
            )
        elif position == "sinusoidal":
            self.position_embedding = SinusoidalPositionEncoding(
                dtype=self.dtype_policy, name="position_embedding"
            )
        else:  # rope: the attention layers rotate queries and keys
            self.position_embedding = None
        self.embedding_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="embedding_dropout"
        )
        self.blocks = [
            TransformerBlock(
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                mlp=mlp,
                dropout=dropout,
                use_bias=use_bias,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=initializer.clone(),
                output_kernel_initializer=residual_initializer.clone(),
                norm=norm,
                use_qk_norm=use_qk_norm,
                use_rope=position == "rope",
                dtype=self.dtype_policy,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        # tf.train.Checkpoint does not see layers held only in a list (Keras's tracked
        # lists are not TensorFlow trackables), so each block is an attribute too.
        for i, block in enumerate(self.blocks):
            setattr(self, f"block_{i}", block)
        self.final_norm = make_norm(norm, layer_norm_epsilon, use_bias, self.dtype_policy, "final_norm")
        self.build((None, seq_len))
        if not tie_embeddings:
            # ReversibleEmbedding draws its own head with the embeddings' initializer;
            # the untied head starts at zero (modded-nanogpt), so the first logits are uniform.
            self.token_embedding.reverse_embeddings.assign(
                ops.zeros(self.token_embedding.reverse_embeddings.shape)
            )

    @classmethod
    def from_model_config(cls, model_config, **kwargs):
        """The model of a `lm_keras.config.ModelConfig` (`model="transformer"`)."""
        return cls(
            vocab_size=model_config.vocab_size,
            num_layers=model_config.num_layers,
            num_heads=model_config.num_heads,
            hidden_dim=model_config.hidden_dim,
            mlp_dim=model_config.resolved_mlp_dim,
            seq_len=model_config.resolved_context,
            dropout=model_config.dropout,
            use_bias=model_config.use_bias,
            position=model_config.position,
            layer_norm_epsilon=model_config.layer_norm_epsilon,
            mlp=model_config.mlp,
            norm=model_config.norm,
            use_qk_norm=model_config.use_qk_norm,
            tie_embeddings=model_config.tie_embeddings,
            zero_init_residual=model_config.zero_init_residual,
            logit_softcap=model_config.logit_softcap,
            **kwargs,
        )

    def build(self, input_shape):
        hidden_shape = (*input_shape, self.hidden_dim)
        self.token_embedding.build(input_shape)
        if self.position_embedding is not None:
            self.position_embedding.build(hidden_shape)
        for block in self.blocks:
            block.build(hidden_shape)
        self.final_norm.build(hidden_shape)
        self.built = True

    def _embed(self, token_ids, start_index=0, training=None, positions=None):
        length = token_ids.shape[1]
        if length is not None and length > self.seq_len:
            raise ValueError(
                f"token_ids must be at most seq_len={self.seq_len} long; received length {length}"
            )
        x = self.token_embedding(token_ids)  # (B, T, d)
        if self.position_embedding is not None:
            x = x + self.position_embedding(x, start_index=start_index, positions=positions)
        return self.embedding_dropout(x, training=training)

    def _logits(self, x):
        return self.token_embedding(self.final_norm(x), reverse=True)  # (B, T, V) float32

    def call(self, token_ids, training=None, segment_ids=None):
        """`(B, T, V)` float32 logits of `token_ids` `(B, T)`.

        `segment_ids` `(B, T)` (optional: which example each token is, numbered from 0 in
        order, as `lm_keras.data.example_train_dataset(segments=True)` gives them) packs
        several examples in a row: each token attends only within its example and
        its position restarts at 0 there, so a packed example computes what it computes
        alone from position 0.
        """
        positions = None if segment_ids is None else segment_positions(segment_ids)  # (B, T)
        x = self._embed(token_ids, training=training, positions=positions)
        for block in self.blocks:
            x = block(x, training=training, segment_ids=segment_ids, positions=positions)
        return self._logits(x)

    def enable_lora(self, rank, alpha=None, targets="attention", train_embeddings=False):
        """Parameter-efficient fine-tuning (LoRA, Hu et al., 2021): freezes every weight of the
        model and adds a trainable float32 low-rank pair `A (in, r)`, `B (r, out)` to each adapted
        projection of every block, which then computes `x W + (alpha / r) x A B`. `B` starts at
        zero, so the model computes what it did before until the pairs train.

        `targets` (`model_settings.LORA_TARGETS`): `"attention"`, the query and value projections
        (keras-hub's and the LoRA paper's choice), `N 4 r d` trainable parameters;
        `"attention_mlp"`, those and the MLP's dense layers (Keras's `Dense.enable_lora`),
        `N (4 r d + 2 r (d + m))` (swiglu: `3 r (d + m)`); `"all"`, the query, key, value,
        attention output and MLP projections, `N (8 r d + 2 r (d + m))` (swiglu: `3 r (d + m)`).
        The embeddings, position table, norms and biases stay frozen, but with `train_embeddings`
        the token embedding (and an untied head) trains whole beside the pairs: what PEFT's
        `modules_to_save` does when tokens were added to a vocabulary, whose new rows would
        otherwise never learn (a run on examples appends the end-of-text id). `get_config` stays
        the base model's: the adapters are enabled on a built model, and `merge_lora` folds them away.

        Args:
            rank: int, the rank `r` of every pair.
            alpha: float, the update's scale is `alpha / r`; None or 0 means `r` (PEFT's default).
            targets: `"attention"`, `"attention_mlp"` or `"all"`.
            train_embeddings: bool, whether the token embedding (and an untied head) trains too.

        Example:

        >>> model = TransformerLM(vocab_size=65, num_layers=2, num_heads=4, hidden_dim=32,
        ...                       mlp_dim=128, seq_len=16)
        >>> model.enable_lora(4)
        >>> sum(int(np.prod(v.shape)) for v in model.trainable_variables)  # 2 * 4 * 4 * 32
        1024
        """
        problem = lora_problem(rank, alpha, targets)
        if problem:
            raise ValueError(problem)
        for variable in self.weights:
            variable.trainable = False
        for block in self.blocks:
            block.enable_lora(rank, alpha, targets)
        if train_embeddings:
            for variable in self.token_embedding.weights:
                variable.trainable = True
        self.lora_rank, self.lora_alpha, self.lora_targets = rank, float(alpha or rank), targets

    @property
    def lora_variables(self):
        """The LoRA pairs' variables (empty before `enable_lora`), in the model's weight order."""
        return [v for v in self.weights if v.name.startswith("lora_")]

    def merge_lora(self):
        """A plain `TransformerLM` (same config, no adapters) whose kernels have the LoRA pairs
        folded in, `W + (alpha / r) A B` in float32: it computes what this model computes, at a
        plain model's cost. This model is left as it is.
        """
        plain = type(self).from_config(self.get_config())
        merged = {}
        for block in self.blocks:
            merged.update(block.merged_kernels())
        base = [v for v in self.weights if not v.name.startswith("lora_")]
        for mine, theirs in zip(base, plain.weights, strict=True):
            if mine.path.split("/", 1)[-1] != theirs.path.split("/", 1)[-1]:
                raise ValueError(f"merge_lora: {mine.path} and {theirs.path} do not correspond")
            theirs.assign(merged.get(mine.path, mine))
        return plain

    def attention_maps(self, token_ids):
        """The attention weights of every block and head.

        Args:
            token_ids: `(B, T)` int32 token ids, `T <= seq_len`.

        Returns:
            `(B, L, H, T, T)` float32: `[b, l, h, i, j]` is how much position `i`
            attends to position `j` in head `h` of block `l`.
        """
        x = self._embed(token_ids)
        maps = []
        for block in self.blocks:
            x, weights = block(x, return_attention_scores=True)
            maps.append(weights)  # (B, H, T, T)
        return ops.stack(maps, axis=1)  # (B, L, H, T, T)

    def init_cache(self, batch_size, length=None):
        """An empty key/value cache: a tuple of `num_layers` pairs `(keys, values)` of zero
        tensors `(batch_size, num_heads, length, hidden_dim / num_heads)` in the compute dtype.

        Args:
            batch_size: int or scalar tensor.
            length: int or scalar tensor, the positions the cache holds, at most
                `seq_len` (the default). A shorter cache costs less to attend over;
                a decoding loop can start short and grow it (see
                `lm_keras.generation.TransformerDecoder`).
        """
        length = self.seq_len if length is None else length
        shape = (batch_size, self.num_heads, length, self.hidden_dim // self.num_heads)
        return tuple(
            (ops.zeros(shape, dtype=self.compute_dtype), ops.zeros(shape, dtype=self.compute_dtype))
            for _ in self.blocks
        )

    def call_with_cache(self, token_ids, cache, cache_index):
        """Runs `token_ids` at positions `cache_index .. cache_index + t - 1` against a cache.

        Prefill a prompt with `t > 1` from `cache_index=0`, then step one token at
        a time; the logits equal those of a full causal pass over the sequence.
        Shapes are static, so this runs inside `tf.function` / `tf.while_loop` / XLA.

        Args:
            token_ids: `(B, t)` int32 token ids.
            cache: the cache from `init_cache` or a previous call.
            cache_index: scalar int32 tensor, the position of `token_ids[:, 0]`;
                `cache_index + t <=` the cache's length.

        Returns:
            `(logits, new_cache)`: `(B, t, V)` float32 logits and the cache with
            this call's keys and values written in.
        """
        cache_index = ops.convert_to_tensor(cache_index, dtype="int32")
        x = self._embed(token_ids, start_index=cache_index)
        new_cache = []
        for block, block_cache in zip(self.blocks, cache):
            x, block_cache = block(x, cache=block_cache, cache_index=cache_index)
            new_cache.append(block_cache)
        return self._logits(x), tuple(new_cache)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "mlp_dim": self.mlp_dim,
                "seq_len": self.seq_len,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "position": self.position,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "mlp": self.mlp,
                "norm": self.norm,
                "use_qk_norm": self.use_qk_norm,
                "tie_embeddings": self.tie_embeddings,
                "zero_init_residual": self.zero_init_residual,
                "logit_softcap": self.logit_softcap,
            }
        )
        return config
