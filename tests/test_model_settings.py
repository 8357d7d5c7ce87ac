"""The model settings' rules: one line per problem, None when fine, and no TensorFlow."""

import doctest
import subprocess
import sys

import pytest

from lm_keras import model_settings as ms

GOOD_TRANSFORMER = dict(
    num_layers=4,
    num_heads=4,
    hidden_dim=128,
    mlp_dim=512,
    seq_len=64,
    dropout=0.0,
    position="rope",
    mlp="swiglu",
    norm="rmsnorm",
    logit_softcap=0.0,
)


@pytest.mark.parametrize(
    "problem, message",
    [
        (
            ms.positive_int_problem("num_heads", True),
            "num_heads must be a positive int; received num_heads=True",
        ),
        (ms.positive_int_problem("mlp_dim", 8.0), "mlp_dim must be a positive int; received mlp_dim=8.0"),
        (
            ms.positive_problem("layer_norm_epsilon", float("nan")),
            "layer_norm_epsilon must be > 0; received layer_norm_epsilon=nan",
        ),
        (
            ms.positive_problem("learning_rate", "1e-3"),
            "learning_rate must be > 0; received learning_rate='1e-3'",
        ),
        (ms.non_negative_problem("grad_clip", -1), "grad_clip must be >= 0; received grad_clip=-1"),
        (
            ms.fraction_problem("val_fraction", 1.0, "(0, 1)"),
            "val_fraction must be in (0, 1); received val_fraction=1.0",
        ),
        (
            ms.fraction_problem("decay_fraction", 0, "(0, 1]"),
            "decay_fraction must be in (0, 1]; received decay_fraction=0",
        ),
        (ms.fraction_problem("dropout", 1.0, "[0, 1)"), "dropout must be in [0, 1); received dropout=1.0"),
        (
            ms.heads_problem(None, 4),
            "hidden_dim must be divisible by num_heads; received hidden_dim=None, num_heads=4",
        ),
        (
            ms.transformer_problem(**{**GOOD_TRANSFORMER, "hidden_dim": 8, "num_heads": 8}),
            "position='rope' needs heads of even width (hidden_dim / num_heads); "
            "received hidden_dim=8, num_heads=8",
        ),
        (
            ms.lstm_problem(embedding_dim=0, hidden_dim=0, num_layers=1, dropout=0.0),
            "hidden_dim must be a positive int; received hidden_dim=0",
        ),
        (ms.first_problem([None, "a", "b"]), "a"),
    ],
)
def test_a_problem_is_one_line_naming_the_setting_and_the_value(problem, message):
    assert problem == message


def test_settings_in_range_have_no_problem():
    assert ms.transformer_problem(**GOOD_TRANSFORMER) is None
    assert ms.transformer_problem(**{**GOOD_TRANSFORMER, "position": "learned", "hidden_dim": 12}) is None
    assert ms.lstm_problem(embedding_dim=8, hidden_dim=16, num_layers=1, dropout=0.5) is None
    assert ms.fraction_problem("dropout", 0, "[0, 1)") is None
    assert ms.fraction_problem("decay_fraction", 1, "(0, 1]") is None
    assert ms.non_negative_problem("logit_softcap", 0.0) is None
    assert ms.first_problem([None, None]) is None


def test_the_docstring_examples_hold():
    results = doctest.testmod(ms)
    assert (results.attempted, results.failed) == (4, 0)


def test_the_rules_and_the_config_load_no_tensorflow():
    probe = (
        "import sys, lm_keras.model_settings, lm_keras.config\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
