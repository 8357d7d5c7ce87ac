"""`--jit_compile=auto`: XLA where benchmarks/RESULTS.md measured it faster."""

import pytest

from lm_keras.training.distribution import resolve_jit


@pytest.mark.parametrize(
    "model, device, expected",
    [
        ("transformer", "CPU", True),
        ("lstm", "CPU", True),  # LSTMLM: about 1.4x faster with XLA on this CPU
        ("documented_lstm", "CPU", False),  # the Sequential LSTM: about 2x slower with XLA
        ("transformer", "GPU", True),
        ("lstm", "GPU", False),  # cuDNN's LSTM kernels run only outside XLA
        ("documented_lstm", "GPU", False),
        ("lstm", "TPU", True),
        ("documented_lstm", "TPU", True),
    ],
)
def test_auto_follows_the_measurements(model, device, expected):
    assert resolve_jit("auto", model, device) is expected


@pytest.mark.parametrize("flag, expected", [("true", True), ("false", False)])
def test_explicit_flag_wins(flag, expected):
    for model in ("transformer", "lstm", "documented_lstm"):
        for device in ("CPU", "GPU", "TPU"):
            assert resolve_jit(flag, model, device) is expected
