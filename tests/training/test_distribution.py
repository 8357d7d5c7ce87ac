"""`--jit_compile=auto`: XLA where benchmarks/RESULTS.md measured it faster."""

import re

import pytest

from lm_keras.families import resolve_jit
from tests.training.helpers import REPO

MODELS = ("transformer", "lstm", "documented_lstm")
# The rows of benchmarks/RESULTS.md that time each model's training step with and without XLA
# on CPU, and the column that is its speed (higher is faster).
MEASURED = {
    "transformer": ("ours_xla_float32", "ours_graph_float32"),
    "lstm": ("lstm_lm_xla", "lstm_lm_graph"),
    "documented_lstm": ("documented_xla", "documented_graph"),
}


def _measured_speed(variant):
    text = (REPO / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    match = re.search(rf"^\| `{variant}` \| ([\d,]+) \|", text, re.MULTILINE)
    assert match, f"benchmarks/RESULTS.md has no row for {variant}"
    return float(match.group(1).replace(",", ""))


@pytest.mark.parametrize("model", MODELS)
def test_auto_on_cpu_follows_the_measured_speeds(model):
    xla, graph = (_measured_speed(variant) for variant in MEASURED[model])
    assert resolve_jit("auto", model, "CPU") is (xla > graph), (model, xla, graph)


def test_auto_on_accelerators():
    # TPUs run only XLA programs; on GPUs Keras runs LSTMs on cuDNN's kernels only outside XLA.
    assert [resolve_jit("auto", model, "TPU") for model in MODELS] == [True, True, True]
    assert [resolve_jit("auto", model, "GPU") for model in MODELS] == [True, False, False]


def test_auto_finds_this_machines_device():
    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    assert [resolve_jit("auto", model) for model in MODELS] == [
        resolve_jit("auto", model, device) for model in MODELS
    ]


@pytest.mark.parametrize("flag, expected", [("true", True), ("false", False)])
def test_explicit_flag_wins(flag, expected):
    for model in MODELS:
        for device in ("CPU", "GPU", "TPU"):
            assert resolve_jit(flag, model, device) is expected
