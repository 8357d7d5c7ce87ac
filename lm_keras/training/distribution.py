"""Devices: the tf.distribute strategy, which worker is chief, and when XLA pays."""

import json
import os

import tensorflow as tf

from lm_keras.errors import UserError

# Seconds a collective may wait for a peer before the run fails instead of hanging.
COLLECTIVE_TIMEOUT_SECONDS = 300


def make_strategy(name, tpu=""):
    """The strategy for `--strategy` (auto, default, mirrored, multi_worker, tpu)."""
    if name == "auto":
        if tpu:
            name = "tpu"
        elif len(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [])) > 1:
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError(
                "--strategy=multi_worker needs TF_CONFIG (cluster and task) in the environment "
                "of every worker; see README.md, 'Training on several machines'"
            )
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise UserError(
        f"--strategy must be one of auto, default, mirrored, multi_worker, tpu; received {name!r}"
    )


def worker_id(strategy):
    """(is_chief, task_id) of this process; a one-process run is chief 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, 0
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True, 0
    return (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster,
        resolver.task_id,
    )


def device_kind():
    if tf.config.list_logical_devices("TPU"):
        return "TPU"
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def resolve_jit(flag, model_kind, device=None):
    """XLA on or off for `--jit_compile` (auto, true, false).

    `auto` follows what benchmarks/RESULTS.md measured rather than habit. On CPU the
    Transformer and the efficient LSTMLM train faster with XLA (about 1.4x each),
    while the documented `Sequential` LSTM trains about 2x slower with it. On GPU
    only the Transformer gets XLA: Keras runs its LSTM layers on cuDNN's fused
    kernels only outside XLA. TPUs need XLA for everything.
    """
    if flag in ("true", "false"):
        return flag == "true"
    device = device or device_kind()
    if device == "TPU":
        return True
    if device == "GPU":
        return model_kind == "transformer"
    return model_kind in ("transformer", "lstm")
