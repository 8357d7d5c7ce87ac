"""The optimizer and learning-rate schedule of a `TrainConfig`.

- `adamw`: AdamW, decaying matrices and embeddings but not biases or norm gains (nanoGPT's groups).
- `adam`: Adam, no weight decay.
- `muon`: `Muon` below on the hidden matrices, AdamW (inside it) on everything else.

Schedules: `cosine` (`WarmupCosine`, nanoGPT's), `wsd` (`WarmupStableDecay`) and
`constant` (`--learning_rate` at every step, no warm-up).
"""

import math

import keras
from keras import ops

from lm_keras.training.warmup_cosine import WarmupCosine
from lm_keras.training.warmup_stable_decay import WarmupStableDecay

ADAM_EPSILON = 1e-8  # PyTorch's default, which nanoGPT's reference figures used (Keras: 1e-7)


def make_schedule(train_config):
    """The learning rate of `train_config`: a float (constant) or a Keras schedule."""
    tc = train_config
    if tc.schedule == "constant":
        return tc.learning_rate
    if tc.schedule == "wsd":
        decay_steps = max(1, round(tc.decay_fraction * tc.max_steps))
        return WarmupStableDecay(
            tc.learning_rate, tc.min_learning_rate, tc.warmup_steps, decay_steps, tc.max_steps
        )
    return WarmupCosine(tc.learning_rate, tc.min_learning_rate, tc.warmup_steps, tc.max_steps)


def make_optimizer(train_config, variables, num_replicas=1):
    """The built optimizer of `train_config` for the trainable `variables`.

    With several replicas the gradient is clipped after the all-reduce (the
    trainer's step does it), so the optimizer itself does not clip then: Keras
    would clip each replica's partial gradient instead.
    """
    tc = train_config
    schedule = make_schedule(tc)
    clip = tc.grad_clip if tc.grad_clip > 0 and num_replicas == 1 else None
    if tc.optimizer == "adam":
        optimizer = keras.optimizers.Adam(
            schedule, beta_1=tc.beta1, beta_2=tc.beta2, epsilon=ADAM_EPSILON, global_clipnorm=clip
        )
    else:
        if tc.optimizer == "muon":
            optimizer = Muon(
                schedule,
                adam_beta_1=tc.beta1,
                adam_beta_2=tc.beta2,
                epsilon=ADAM_EPSILON,
                weight_decay=tc.weight_decay,
                adam_weight_decay=tc.weight_decay,
                global_clipnorm=clip,
            )
        else:
            optimizer = keras.optimizers.AdamW(
                schedule,
                weight_decay=tc.weight_decay,
                beta_1=tc.beta1,
                beta_2=tc.beta2,
                epsilon=ADAM_EPSILON,
                global_clipnorm=clip,
            )
        # As nanoGPT: decay matrices and embeddings, not biases or norm gains.
        optimizer.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) < 2])
    if tc.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(variables)
    return optimizer


def matrix_view(variable):
    """The matrices Muon orthogonalises in a variable: `(rows, cols)` or `(n, rows, cols)`, or None.

    - 2-D kernels (Dense layers, the MLP) are one matrix, as in Keras's Muon.
    - The attention's fused `qkv_kernel` `(d, 3, H, D)` is three matrices
      `(3, d, H D)`: W^Q, W^K and W^V, each orthogonalised on its own, as
      modded-nanogpt does with its fused QKV weight.
    - Its `output_kernel` `(H, D, d)` is W^O, one `(H D, d)` matrix.

    Embeddings, the untied head (`reverse_embeddings`), gains and biases have none:
    they take AdamW, as Muon's authors prescribe.
    """
    shape, path = tuple(variable.shape), variable.path
    if "embedding" in path.lower():
        return None
    if len(shape) == 2:
        return shape
    if len(shape) == 4 and path.endswith("qkv_kernel"):
        return (shape[1], shape[0], shape[2] * shape[3])
    if len(shape) == 3 and path.endswith("output_kernel"):
        return (shape[0] * shape[1], shape[2])
    return None


class Muon(keras.optimizers.Muon):
    """`keras.optimizers.Muon` that also updates the attention's fused kernels as matrices.

    Keras's Muon gives every variable that is not 2-D to AdamW. Our attention
    stores W^Q, W^K, W^V as one `(d, 3, H, D)` kernel and W^O as `(H, D, d)`
    (`MultiHeadSelfAttention`), so they would silently fall back to AdamW. Here
    each variable's update is computed on its `matrix_view`: the momentum is
    reshaped to the matrices, orthogonalised by Newton-Schulz (batched over Q, K,
    V) and reshaped back. Variables with no matrix view (embeddings, the head,
    gains, biases) take the AdamW step, as in Keras's Muon.

    The update of each matrix is scaled by `sqrt(max(rows, cols)) * rms_rate`
    (Keras's default, Moonlight's rule), which gives it about AdamW's RMS, so one
    learning rate serves both parts.
    """

    def _should_use_adamw(self, variable):
        return matrix_view(variable) is None

    def build(self, var_list):
        if self.built:
            return
        # Views are found by the variables' paths, which the update step (given the
        # backend's variables) cannot see: keep them by variable index.
        self._matrix_views = [matrix_view(v) for v in var_list]
        super().build(var_list)

    def _muon_update_step(self, gradient, variable, lr, m):
        self.assign_add(m, ops.add(gradient, m * (self.momentum - 1)))  # m = momentum m + g
        g = ops.add(gradient, self.momentum * m) if self.nesterov else m
        view = self._matrix_views[self._get_variable_index(variable)]
        fused_qkv = len(variable.shape) == 4
        if fused_qkv:  # (d, 3, H, D) -> (3, d, H, D): Q, K, V first
            g = ops.transpose(g, (1, 0, 2, 3))
        update = self.zeropower_via_newtonschulz5(ops.reshape(g, view), self.ns_steps)  # the view's shape
        if self.rms_rate is not None:
            update = update * (math.sqrt(max(view[-2:])) * self.rms_rate)
        update = ops.reshape(update, g.shape)  # (3, d, H, D), or the variable's shape
        if fused_qkv:
            update = ops.transpose(update, (1, 0, 2, 3))  # (d, 3, H, D)
        self.assign_sub(variable, ops.cast(lr, variable.dtype) * update)
