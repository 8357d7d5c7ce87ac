"""python -m lm_keras.evaluate: the run's own data, --eval_tokens, other corpora and datasets."""

import json
import subprocess
import sys

import pytest

from lm_keras.data.prepare import prepare
from tests.training.helpers import REPO, TINY, run_train


def evaluate(*flags):
    return subprocess.run(
        [sys.executable, "-m", "lm_keras.evaluate", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shakespeare):
    root = tmp_path_factory.mktemp("evaluate")
    corpus = root / "head.txt"
    corpus.write_text(shakespeare.text[:50_000])
    model_dir = root / "run"
    result = run_train(
        model_dir, *TINY, f"--corpus={corpus}", "--max_steps=2", "--eval_every=2", "--checkpoint_every=2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, corpus


def test_the_runs_own_validation_split_as_training_scored_it(trained):
    model_dir, _ = trained
    result = evaluate(f"--model_dir={model_dir}", "--batch_size=8")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    final = json.loads((model_dir / "results.json").read_text())
    assert figures["dataset"] == str(model_dir / "data") and figures["step"] == 2
    assert figures["val_tokens"] == final["val_tokens"] == figures["val_split_targets"]  # all of it
    # The same targets and weights, other batches: float32 sums agree to a few epsilons.
    assert figures["val_loss"] == pytest.approx(final["val_loss"], rel=1e-5)

    capped = json.loads(evaluate(f"--model_dir={model_dir}", "--eval_tokens=1000").stdout)
    assert capped["val_tokens"] == 1000 and capped["eval_tokens"] == 1000
    both = json.loads(evaluate(f"--model_dir={model_dir}", "--split=all").stdout)
    data = json.loads((model_dir / "data" / "manifest.json").read_text())["splits"]
    assert both["val_tokens"] == data["train"]["tokens"] - 1 + data["val"]["tokens"] - 1


def test_another_corpus_and_another_dataset(trained, tmp_path, shakespeare):
    model_dir, _ = trained
    other = tmp_path / "other.txt"
    other.write_text(shakespeare.text[-30_000:])
    result = evaluate(f"--model_dir={model_dir}", f"--corpus={other}")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["dataset"] is None and figures["corpus"] == "other.txt" and figures["val_tokens"] > 2000
    assert "prepare | done" in result.stderr  # prepared with the run's tokenizer, out of the way
    dataset = prepare(str(other), tmp_path / "bpe", tokenizer="bpe", vocab_size=400, log=lambda line: None)
    refused = evaluate(f"--model_dir={model_dir}", f"--corpus={dataset.path}")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: the dataset {dataset.path} was prepared with another tokenizer than {model_dir}'s: "
        f"prepare it with --tokenizer_from={model_dir}"
    )


def test_bad_flags_exit_2():
    result = evaluate("--model_dir=/tmp/x", "--eval_tokens=-1")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --eval_tokens must be >= 0; received eval_tokens=-1"
