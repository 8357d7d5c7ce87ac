import math

import pytest

from lm_keras.training.warmup_cosine import WarmupCosine


def nanogpt_get_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay=2000):
    # nanoGPT train.py's get_lr, verbatim in meaning.
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return min_lr
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@pytest.mark.parametrize("it", [0, 1, 50, 99, 100, 101, 500, 1050, 1999, 2000, 2500])
def test_matches_nanogpt(it):
    schedule = WarmupCosine(1e-3, 1e-4, warmup_steps=100, decay_steps=2000)
    assert float(schedule(it)) == pytest.approx(nanogpt_get_lr(it), rel=1e-5)


def test_constant_and_config_round_trip():
    constant = WarmupCosine(3e-4, 3e-4, warmup_steps=0, decay_steps=10)
    assert [float(constant(i)) for i in (0, 5, 50)] == pytest.approx([3e-4] * 3)
    again = WarmupCosine.from_config(constant.get_config())
    assert again.get_config() == {"peak": 3e-4, "minimum": 3e-4, "warmup_steps": 0, "decay_steps": 10}


def test_run_shorter_than_warmup():
    schedule = WarmupCosine(1e-3, 1e-4, warmup_steps=100, decay_steps=10)
    assert float(schedule(9)) == pytest.approx(1e-3 * 10 / 101)
    assert float(schedule(150)) == pytest.approx(1e-4)
