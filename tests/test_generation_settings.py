"""The generation settings: one set of defaults, limits and checks for every user of them."""

import inspect
import re
import subprocess
import sys

import pytest

from lm_keras import generation_settings as gs


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(max_new_tokens=-1), "max_new_tokens must be an int >= 0; received max_new_tokens=-1"),
        (dict(max_new_tokens=2.0), "max_new_tokens must be an int >= 0; received max_new_tokens=2.0"),
        (dict(max_new_tokens=0, min_new_tokens=1, max_new_tokens_limit=9), "an int in [1, 9]; received"),
        (dict(max_new_tokens=10, min_new_tokens=1, max_new_tokens_limit=9), "an int in [1, 9]; received"),
        (dict(temperature=-0.5), "temperature must be >= 0 (0 is greedy); received temperature=-0.5"),
        (dict(temperature=float("nan")), "temperature must be >= 0"),
        (dict(top_k=-1), "top_k must be an int >= 0 (0 keeps every token); received top_k=-1"),
        (dict(top_k=True), "top_k must be an int >= 0"),
        (dict(top_p=0.0), "top_p must be in (0, 1] (1 keeps every token); received top_p=0.0"),
        (dict(top_p=1.5), "top_p must be in (0, 1]"),
        (dict(seed=-3), "seed must be an int in [0, 2**62); received seed=-3"),
        (dict(seed=2**62), "seed must be an int in [0, 2**62)"),
    ],
)
def test_each_setting_out_of_range_is_named(settings, message):
    assert message in gs.settings_problem(**settings)


def test_settings_in_range_have_no_problem():
    import numpy as np

    assert gs.settings_problem(0, 0.0, 0, 1.0, 0) is None
    assert gs.settings_problem(np.int32(9), np.float32(2.5), np.int64(5), 0.1, 2**62 - 1) is None
    assert gs.settings_problem(9, min_new_tokens=1, max_new_tokens_limit=9) is None


def _flag_defaults(command):
    text = subprocess.run(
        [sys.executable, "-m", f"lm_keras.{command}", "--helpshort"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    defaults = {}
    for block in text.split("\n  --")[1:]:  # one block per flag: "name: help ... (default: 'value')"
        default = re.search(r"\(default: '([^']*)'\)", block)
        if default:
            defaults[block.split(":")[0]] = default.group(1)
    return defaults


def test_every_user_takes_the_same_defaults():
    from lm_keras.generation import generate
    from lm_keras.serving.generation_module import GenerationModule

    defaults = {
        "max_new_tokens": gs.MAX_NEW_TOKENS,
        "temperature": gs.TEMPERATURE,
        "top_k": gs.TOP_K,
        "top_p": gs.TOP_P,
    }
    for function in (generate, GenerationModule.__init__):
        parameters = inspect.signature(function).parameters
        assert {name: parameters[name].default for name in defaults} == defaults
    for command in ("generate", "export"):
        flags = _flag_defaults(command)
        assert {name: float(flags[name]) for name in defaults} == defaults, command
    limits = {
        "max_prompt_bytes": gs.MAX_PROMPT_BYTES,
        "max_new_tokens_limit": gs.MAX_NEW_TOKENS_LIMIT,
        "max_prompts_per_request": gs.MAX_PROMPTS_PER_REQUEST,
    }
    parameters = inspect.signature(GenerationModule.__init__).parameters
    assert {name: parameters[name].default for name in limits} == limits
    assert {name: int(_flag_defaults("export")[name]) for name in limits} == limits


def test_the_server_and_its_command_take_the_same_defaults():
    from lm_keras.serving.model_server import ModelServer

    defaults = {
        "port": gs.SERVING_PORT,
        "max_body_bytes": gs.SERVING_MAX_BODY_BYTES,
        "request_timeout_s": gs.SERVING_REQUEST_TIMEOUT_S,
        "max_batch_size": gs.BATCHING_MAX_BATCH_SIZE,
        "batch_timeout_micros": gs.BATCHING_TIMEOUT_MICROS,
    }
    parameters = inspect.signature(ModelServer.__init__).parameters
    assert {name: parameters[name].default for name in defaults} == defaults
    flags = _flag_defaults("serve")
    assert {name: type(value)(flags[name]) for name, value in defaults.items()} == defaults


@pytest.mark.parametrize(
    "limits, message",
    [
        (dict(max_prompt_bytes=0), "max_prompt_bytes must be an int > 0; received max_prompt_bytes=0"),
        (dict(max_new_tokens_limit=2.5), "max_new_tokens_limit must be an int > 0; received"),
        (
            dict(max_prompts_per_request=-1),
            "max_prompts_per_request must be an int > 0; received max_prompts_per_request=-1",
        ),
    ],
)
def test_export_limits_out_of_range_are_named(limits, message):
    assert message in gs.export_limits_problem(**limits)
    assert gs.export_limits_problem(1, 1, 1) is None


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(model_name="a/b"), "model_name must be a name without '/' or ':'; received model_name='a/b'"),
        (dict(model_name=""), "model_name must be a name without '/' or ':'"),
        (dict(port=65536), "port must be an int in [0, 65535] (0 picks a free one); received port=65536"),
        (dict(max_body_bytes=0), "max_body_bytes must be an int > 0; received max_body_bytes=0"),
        (dict(request_timeout_s=0.0), "request_timeout_s must be > 0; received request_timeout_s=0.0"),
        (dict(max_batch_size=0), "max_batch_size must be an int >= 1 (1 runs each request alone)"),
        (dict(batch_timeout_micros=-1), "batch_timeout_micros must be an int >= 0; received"),
    ],
)
def test_server_settings_out_of_range_are_named(settings, message):
    assert message in gs.serving_problem(**settings)
    assert gs.serving_problem("model", 0, 1, 0.5, 1, 0) is None
