"""README's first command, `python -m lm_keras.demo`: train, sample, export, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_demo(tmp_path, env=None):
    command = [
        sys.executable,
        "-m",
        "lm_keras.demo",
        f"--model_dir={tmp_path / 'demo'}",
        f"--export_dir={tmp_path / 'export'}",
        "--max_steps=20",
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=REPO, env={**os.environ, **(env or {})}
    )


def test_demo_trains_samples_and_exports(tmp_path, shakespeare):
    # The user's command line on a shorter tinyshakespeare.txt (its first 200,000 characters, in
    # a data folder of the test's own): the whole 1 MB would spend most of the run preparing
    # and scoring its 111,537 validation targets.
    data = tmp_path / "data"
    data.mkdir()
    (data / "tinyshakespeare.txt").write_text(shakespeare.text[:200_000], encoding="utf-8")
    result = run_demo(tmp_path, env={"LM_KERAS_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr[-3000:]
    commands = [line for line in result.stdout.splitlines() if line.startswith("$ python -m lm_keras.")]
    assert [c.split()[3] for c in commands] == ["lm_keras.train", "lm_keras.generate", "lm_keras.export"]
    assert "--corpus=tiny_shakespeare" in commands[0]
    assert "\nROMEO:" in result.stdout  # the sample printed by generate starts with its prompt
    assert (tmp_path / "export" / "1" / "saved_model.pb").is_file()
    assert json.loads((tmp_path / "demo" / "results.json").read_text())["steps"] == 20
    assert "oneDNN" not in result.stderr and "cuInit" not in result.stderr  # TensorFlow's start-up chatter


NO_LOCAL_COPY = pytest.mark.skipif(
    (REPO / "data" / "tinyshakespeare.txt").is_file(), reason="data/ holds the corpus"
)


@NO_LOCAL_COPY
def test_demo_picks_python_docs_visibly_when_offline(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "from lm_keras.commands.demo import pick_corpus; print(pick_corpus())"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "LM_KERAS_DATA_DIR": str(empty)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Falling back to --corpus=python_docs" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "('python_docs', 'The ')"


@pytest.mark.slow  # the whole demo on python_docs: the fallback above, then the demo's steps as tested first
@NO_LOCAL_COPY
def test_demo_falls_back_to_python_docs_visibly_when_offline(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    result = run_demo(tmp_path, env={"LM_KERAS_DATA_DIR": str(empty)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Falling back to --corpus=python_docs" in result.stdout
    assert json.loads((tmp_path / "demo" / "config.json").read_text())["corpus"]["name"] == "python_docs"
    assert (tmp_path / "export" / "1" / "saved_model.pb").is_file()
