"""`python -m lm_keras.evaluate`: the run's figures over a split, --eval_tokens, other corpora and
datasets; bad input is one line."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from lm_keras.data.prepare import prepare
from tests.generation.tiny_models import SEQ_LEN, trained_model_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
BATCH_SIZE = 32


def run_evaluate(*flags):
    return subprocess.run(
        [sys.executable, "-m", "lm_keras.evaluate", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


def test_scores_the_validation_split_as_the_trainer_did():
    model_dir = trained_model_dir("transformer")
    result = run_evaluate(f"--model_dir={model_dir}", f"--batch_size={BATCH_SIZE}")
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    trained = json.loads((model_dir / "results.json").read_text())
    assert (figures["step"], figures["split"]) == (trained["steps"], "val")
    assert (figures["val_tokens"], figures["val_chars"]) == (trained["val_tokens"], trained["val_chars"])
    # The trainer summed the same per-target losses in batches of another size: each batch's
    # float32 sum of up to BATCH_SIZE * SEQ_LEN terms is off by at most that many ulps.
    rel = 2 * BATCH_SIZE * SEQ_LEN * float(np.finfo(np.float32).eps)
    assert figures["val_loss"] == pytest.approx(trained["val_loss"], rel=rel)
    assert figures["val_bits_per_char"] == pytest.approx(trained["val_bits_per_char"], rel=rel)


# The tests below score without XLA: the one above runs the default (XLA on this CPU).
def test_eval_tokens_caps_the_targets_and_all_scores_both_splits():
    model_dir = trained_model_dir("transformer")
    capped = json.loads(
        run_evaluate(f"--model_dir={model_dir}", "--eval_tokens=1000", "--jit_compile=false").stdout
    )
    assert capped["dataset"] == f"{model_dir}/data" and capped["val_tokens"] == 1000
    assert capped["eval_tokens"] == 1000 and capped["val_split_targets"] > 1000
    both = json.loads(run_evaluate(f"--model_dir={model_dir}", "--split=all", "--jit_compile=false").stdout)
    splits = json.loads((model_dir / "data" / "manifest.json").read_text())["splits"]
    # each split's figures under its own name: no loss over the two splits together
    assert (both["train_tokens"], both["val_tokens"]) == (
        splits["train"]["tokens"] - 1,
        splits["val"]["tokens"] - 1,
    )
    assert both["train_loss"] > 0 and both["train_bits_per_char"] > 0


def test_another_corpus_and_another_dataset(tmp_path, shakespeare):
    model_dir = trained_model_dir("transformer")
    other = tmp_path / "other.txt"
    other.write_text(shakespeare.text[-30_000:])
    result = run_evaluate(f"--model_dir={model_dir}", f"--corpus={other}", "--jit_compile=false")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["dataset"] is None and figures["corpus"] == "other.txt" and figures["val_tokens"] > 2000
    assert "prepare | done" in result.stderr  # prepared with the run's tokenizer, out of the way
    dataset = prepare(str(other), tmp_path / "bpe", tokenizer="bpe", vocab_size=400, log=lambda line: None)
    refused = run_evaluate(f"--model_dir={model_dir}", f"--corpus={dataset.path}")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: the dataset {dataset.path} was prepared with another tokenizer than {model_dir}'s: "
        f"prepare it with --tokenizer_from={model_dir}"
    )


@pytest.mark.parametrize(
    "flags, code, message",
    [
        (["--batch_size=0"], 2, "error: --batch_size must be > 0; received batch_size=0"),
        (["--eval_tokens=-1"], 2, "error: --eval_tokens must be >= 0; received eval_tokens=-1"),
        (["--model_dir="], 2, "error: --model_dir is required: the trained run to evaluate"),
        (["--split=test"], 2, "error: flag --split=test: value should be one of <val|all>"),
    ],
)
def test_bad_flags_are_one_line(flags, code, message):
    result = run_evaluate("--model_dir=/nonexistent", *flags)
    assert result.returncode == code
    assert result.stderr.strip().startswith(message), result.stderr[-2000:]
