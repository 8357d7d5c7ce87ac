"""Warm-up, a stable plateau, then a linear decay: the WSD schedule as a Keras schedule."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="lm_keras")
class WarmupStableDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate at optimizer step `it` (0-based): warm-up, stable, decay (WSD).

        it <  warmup_steps:              peak * (it + 1) / (warmup_steps + 1)
        it <  total_steps - decay_steps: peak
        otherwise:                       peak + (minimum - peak) * r,
                                         r = (it - total_steps + decay_steps) / decay_steps

    so the rate falls linearly to `minimum` at `total_steps` and stays there. The
    warm-up is nanoGPT's (as `WarmupCosine`'s). Holding the peak for most of the run
    and decaying only at the end (Hu et al., 2024, MiniCPM; modded-nanogpt's
    "cooldown") trains faster than a cosine for the same steps in their measurements.

    Args:
        peak: the learning rate after warm-up.
        minimum: the learning rate at `total_steps`.
        warmup_steps: steps of linear warm-up.
        decay_steps: the length of the final decay, in steps (> 0).
        total_steps: the step where the decay ends (usually max_steps).

    Example:
        >>> lr = WarmupStableDecay(3e-3, 0.0, warmup_steps=100, decay_steps=500, total_steps=2000)
        >>> [round(float(lr(i)), 6) for i in (1000, 1750, 2000)]
        [0.003, 0.0015, 0.0]
    """

    def __init__(self, peak, minimum, warmup_steps, decay_steps, total_steps):
        if not decay_steps > 0:
            raise ValueError(f"decay_steps must be > 0; received decay_steps={decay_steps!r}")
        self.peak = peak
        self.minimum = minimum
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps
        self.total_steps = total_steps

    def __call__(self, step):
        it = tf.cast(step, tf.float32)
        warm = self.peak * (it + 1.0) / (self.warmup_steps + 1.0)
        ratio = tf.clip_by_value((it - (self.total_steps - self.decay_steps)) / self.decay_steps, 0.0, 1.0)
        decayed = self.peak + (self.minimum - self.peak) * ratio
        return tf.where(it < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "peak": self.peak,
            "minimum": self.minimum,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "total_steps": self.total_steps,
        }
