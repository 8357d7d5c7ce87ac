"""Running the train command as a user does: a real subprocess, real files."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
# A model small enough that a run is a few seconds of work on two CPU cores. Without XLA: its
# compilation would be most of such a run. XLA training is tested where it is the subject: the
# demo (the default preset, as users train), the lstm_char preset, test_optimizers, tests/models,
# and the slow Muon kill -9 test (resuming under XLA).
TINY = [
    "--jit_compile=false",
    "--num_layers=1",
    "--num_heads=2",
    "--hidden_dim=32",
    "--seq_len=32",
    "--batch_size=8",
    "--eval_batches=2",
    "--log_every=5",
    "--sample_tokens=0",  # tracing the sampling loop is 5 s of such a run; tiny_run samples
]


def train_command(model_dir, *flags):
    return [sys.executable, "-m", "lm_keras.train", f"--model_dir={model_dir}", *flags]


def run_train(model_dir, *flags, timeout=600, env=None):
    return subprocess.run(
        train_command(model_dir, *flags),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def checkpoint_weights(checkpoint_dir, prefix="model/"):
    """{variable name: array} of the latest checkpoint in a directory (model variables)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint_dir))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith(prefix)
    }


def max_abs_diff(a, b):
    assert a.keys() == b.keys() and a
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def damaged_model_dir(path):
    """A model directory whose config.json asks for a vocabulary too small for any text, and
    the one line every command that reads it must print (exit 1)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"data": {"tokenizer": "bpe", "vocab_size": 100}}')
    return path, (
        f"error: {path / 'config.json'} is not a config this lm_keras can read (--vocab_size must be at "
        "least 260 for --tokenizer=bpe"
    )
