"""Linear warm-up then cosine decay, nanoGPT's `get_lr` as a Keras schedule."""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="lm_keras")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate at optimizer step `it` (0-based), as nanoGPT computes it.

        it <  warmup_steps:  peak * (it + 1) / (warmup_steps + 1)
        it >  decay_steps:   minimum
        otherwise:           minimum + 0.5 * (1 + cos(pi * r)) * (peak - minimum),
                             r = (it - warmup_steps) / (decay_steps - warmup_steps)

    With `minimum == peak` and `warmup_steps == 0` it is a constant rate. A run shorter
    than its warm-up (`decay_steps <= warmup_steps`) drops to `minimum` after warm-up.

    Args:
        peak: the learning rate at the end of warm-up.
        minimum: the learning rate after `decay_steps`.
        warmup_steps: steps of linear warm-up.
        decay_steps: the step where the cosine reaches `minimum` (usually max_steps).

    Example:
        >>> lr = WarmupCosine(1e-3, 1e-4, warmup_steps=100, decay_steps=2000)
        >>> round(float(lr(2000)), 6)
        0.0001
    """

    def __init__(self, peak, minimum, warmup_steps, decay_steps):
        self.peak = peak
        self.minimum = minimum
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps

    def __call__(self, step):
        it = tf.cast(step, tf.float32)
        warm = self.peak * (it + 1.0) / (self.warmup_steps + 1.0)
        span = max(self.decay_steps - self.warmup_steps, 1)
        ratio = tf.clip_by_value((it - self.warmup_steps) / span, 0.0, 1.0)
        cosine = self.minimum + 0.5 * (1.0 + tf.cos(math.pi * ratio)) * (self.peak - self.minimum)
        return tf.where(it < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {
            "peak": self.peak,
            "minimum": self.minimum,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
        }
