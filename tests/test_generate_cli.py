"""`python -m lm_keras.generate`: the text it prints is what `generate` returns."""

import pathlib
import subprocess
import sys

import pytest

from tests.generation.tiny_models import SEQ_LEN, trained_model_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
LONG_PROMPT = "First Citizen:\nBefore we proceed any further"  # longer than the context


def run_generate(*flags):
    return subprocess.run(
        [sys.executable, "-m", "lm_keras.generate", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def model_dir():
    return trained_model_dir("transformer")


@pytest.fixture(scope="module")
def trained(model_dir):
    from lm_keras.model_dir import load_trained

    return load_trained(model_dir)


# The cached and uncached loops' equality is tested in tests/generation/test_decode.py.
@pytest.mark.parametrize("use_cache", ["true", pytest.param("false", marks=pytest.mark.slow)])
def test_greedy_text_equals_generate_with_and_without_cache(model_dir, trained, use_cache):
    from lm_keras.generation import generate

    result = run_generate(
        f"--model_dir={model_dir}",
        f"--prompt={LONG_PROMPT}",
        "--max_new_tokens=30",
        "--temperature=0",
        f"--use_cache={use_cache}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = generate(trained.model, trained.tokenizer, [LONG_PROMPT], max_new_tokens=30, temperature=0.0)[
        0
    ]
    assert result.stdout == LONG_PROMPT + expected + "\n"
    dropped = len(LONG_PROMPT) - SEQ_LEN
    assert (
        f"note: the prompt is {len(LONG_PROMPT)} tokens but the model's context holds {SEQ_LEN}: it sees "
        f"only the last {SEQ_LEN} (the first {dropped} are dropped)"
    ) in result.stderr


def test_seeded_samples(model_dir, trained):
    from lm_keras.generation import generate

    result = run_generate(
        f"--model_dir={model_dir}",
        "--prompt=ROMEO:",
        "--max_new_tokens=15",
        "--num_samples=2",
        "--seed=3",
        "--top_k=10",
        "--top_p=0.9",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    samples = generate(
        trained.model,
        trained.tokenizer,
        ["ROMEO:"] * 2,
        max_new_tokens=15,
        temperature=0.8,
        top_k=10,
        top_p=0.9,
        seed=3,
    )
    assert result.stdout == "ROMEO:" + samples[0] + "\n" + "-" * 15 + "\nROMEO:" + samples[1] + "\n"
    assert "note:" not in result.stderr


def test_stop_strings_end_each_sample(model_dir, trained):
    """--stop (repeatable): a sample ends before the first of them, as generate(stop=...) ends."""
    from lm_keras.generation import generate

    settings = dict(max_new_tokens=15, temperature=1.0, seed=3)
    free = generate(trained.model, trained.tokenizer, ["ROMEO:"], **settings)[0]
    i = next(i for i in range(1, 12) if free[i].strip() and free[i] not in free[:i])
    stop = [free[i], "\u00a7"]
    result = run_generate(
        f"--model_dir={model_dir}",
        "--prompt=ROMEO:",
        "--max_new_tokens=15",
        "--temperature=1",
        "--seed=3",
        "--stop",
        stop[0],
        f"--stop={stop[1]}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert generate(trained.model, trained.tokenizer, ["ROMEO:"], stop=stop, **settings) == [free[:i]]
    assert result.stdout == "ROMEO:" + free[:i] + "\n"


@pytest.mark.parametrize(
    "flags,code,message",
    [
        (
            ["--temperature=-1"],
            2,
            "error: --temperature must be >= 0 (0 is greedy); received temperature=-1.0",
        ),
        (["--top_p=1.5"], 2, "error: --top_p must be in (0, 1] (1 keeps every token); received top_p=1.5"),
        (["--num_samples=0"], 2, "error: --num_samples must be > 0; received num_samples=0"),
        (["--model_dir="], 2, "error: --model_dir is required: the trained run to sample from"),
        (["--stop=a", "--stop="], 2, "error: --stop strings must not be empty (an empty string would"),
    ],
)
def test_bad_flags_are_one_line_before_tensorflow_loads(flags, code, message):
    result = run_generate("--model_dir=/nonexistent", *flags)
    assert result.returncode == code
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
