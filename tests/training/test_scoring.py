"""Exact match and token F1 with SQuAD's normalisation, and the evaluate command on a task."""

import json

import pytest

from lm_keras import model_dir as md
from lm_keras import tasks
from lm_keras.generation.text_generation import generate_details
from lm_keras.training.scoring import exact_match, normalize_answer, token_f1
from tests.test_evaluate_cli import run_evaluate
from tests.training.helpers import TINY, run_train


@pytest.mark.parametrize(
    "text, normal",
    [
        ("The Duke of York!", "duke of york"),
        ("  an  apple, a PEAR and the fig. ", "apple pear and fig"),
        ("theatre", "theatre"),  # an article only as a whole word
        ("", ""),
    ],
)
def test_normalize_answer_follows_squad(text, normal):
    assert normalize_answer(text) == normal


def test_exact_match_and_f1_numbers():
    assert exact_match("the Duke of York", "duke of York.") == 1.0
    assert exact_match("Duke", "York") == 0.0
    # SQuAD's token F1: 1 common word of 3 predicted and 1 expected: P 1/3, R 1, F1 0.5.
    assert token_f1("duke of york", "york") == pytest.approx(0.5)
    assert token_f1("york york", "york") == pytest.approx(2 * 0.5 * 1 / 1.5)  # a bag of words
    assert token_f1("", "") == 1.0 and token_f1("", "york") == 0.0 and token_f1("a", "york") == 0.0


@pytest.fixture(scope="module")
def task_run(tmp_path_factory):
    """A tiny model trained a few steps on addition examples, and the task's files."""
    root = tmp_path_factory.mktemp("task")
    splits, info = tasks.make_splits("addition", seed=2, counts={"train": 200, "validation": 20, "test": 12})
    tasks.write_splits(root / "task", splits, info)
    model_dir = root / "run"
    result = run_train(
        model_dir,
        *TINY,
        "--hidden_dim=16",
        "--seq_len=16",
        "--max_steps=5",
        f"--corpus={root / 'task' / 'train.jsonl'}",
        f"--validation_data={root / 'task' / 'validation.jsonl'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, root / "task"


def test_evaluate_scores_a_task_by_greedy_answers(task_run, tmp_path):
    model_dir, task = task_run
    predictions = tmp_path / "predictions.jsonl"
    flags = [
        f"--model_dir={model_dir}",
        f"--corpus={task / 'test.jsonl'}",
        "--batch_size=12",
        "--jit_compile=false",
    ]
    result = run_evaluate(*flags, f"--predictions={predictions}")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["examples"] == 12 and figures["prompts_cut"] == 0
    # 12 answers of 3 digits and the end-of-text id each.
    assert figures["completion_tokens"] == 12 * 4 and figures["completion_loss"] > 0
    assert "score | 12/12 examples" in result.stderr  # progress
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    expected = [json.loads(line) for line in (task / "test.jsonl").read_text().splitlines()]
    assert [(r["prompt"], r["reference"]) for r in rows] == [(e["prompt"], e["completion"]) for e in expected]
    # Each output is the greedy answer of the prompt alone, stopped at end-of-text.
    trained = md.load_trained(model_dir)
    alone = generate_details(
        trained.model, trained.tokenizer, [rows[3]["prompt"]], max_new_tokens=11, temperature=0.0
    )
    assert rows[3]["output"] == alone[0].text
    assert figures["exact_match"] == pytest.approx(sum(r["exact_match"] for r in rows) / 12)
    assert figures["f1"] == pytest.approx(sum(r["f1"] for r in rows) / 12)


def test_evaluate_without_corpus_scores_the_runs_validation_examples(task_run):
    model_dir, task = task_run
    result = run_evaluate(f"--model_dir={model_dir}", "--jit_compile=false")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["corpus"] == str(task / "validation.jsonl") and figures["examples"] == 20


def test_predictions_need_examples_before_tensorflow_loads(task_run):
    model_dir, _ = task_run
    result = run_evaluate(f"--model_dir={model_dir}", "--predictions=/tmp/p.jsonl")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --predictions needs --corpus=FILE.jsonl, the examples whose answers it writes"
    )
