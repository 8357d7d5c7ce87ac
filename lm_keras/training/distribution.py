"""Devices: the tf.distribute strategy (when XLA pays is each family's: `lm_keras.families`)."""

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
