"""The run directory's owner where a user meets it: checks before TensorFlow loads, --help and
--print_config, one training process per directory (real processes), and a start that fails
leaving nothing behind."""

import json
import os
import re
import signal
import subprocess
import sys
import time

from tests.test_commands import run_until_exit
from tests.training.helpers import REPO, TINY, train_command


def test_the_run_directory_module_loads_no_tensorflow():
    probe = "import sys, lm_keras.model_dir, lm_keras.families; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_bad_paths_are_one_line_before_tensorflow_loads_and_leave_nothing(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run")
    run_dir = tmp_path / "run"
    cases = [
        (
            [f"--model_dir={a_file}"],
            f"error: --model_dir={a_file} is a file: give a folder for the run (a new one, or a run)",
        ),
        (
            [f"--model_dir={run_dir}", "--corpus=/nonexistent/text.txt"],
            "error: corpus '/nonexistent/text.txt' is not a known name (tiny_shakespeare, python_docs) nor "
            "an existing file, directory or glob (nor tfds:NAME): check the path",
        ),
        (
            [f"--model_dir={run_dir}", f"--init_from={tmp_path / 'nothing'}"],
            f"error: --init_from={tmp_path / 'nothing'} holds no config.json: give the model directory "
            "of a finished or checkpointed training run",
        ),
    ]
    for flags, message in cases:
        stdout, stderr = run_until_exit(["lm_keras.train", *flags])
        assert stdout == "EXIT 2 False", (flags, stderr[-2000:])
        assert stderr.splitlines() == [message]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_help_groups_the_flags_and_print_config_resolves_preset_and_flags(tmp_path):
    help_text = subprocess.run(
        [sys.executable, "-m", "lm_keras.train", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    ).stdout
    headings = [
        line[:-1] for line in help_text.splitlines() if line.endswith(":") and not line.startswith(" ")
    ]
    assert headings == ["run", "model", "data", "optimisation", "devices", "evaluation, checkpoints and logs"]
    assert (
        help_text.index("--hidden_dim:") < help_text.index("--corpus:") < help_text.index("--learning_rate:")
    )
    stdout, stderr = run_until_exit(
        [
            "lm_keras.train",
            f"--model_dir={tmp_path / 'run'}",
            "--preset=lstm_char",
            "--hidden_dim=64",
            "--print_config",
        ]
    )
    assert stdout.endswith("EXIT None False"), stderr[-2000:]
    config = json.loads(stdout.rsplit("EXIT", 1)[0])
    assert config["preset"] == "lstm_char"
    assert (config["model"]["model"], config["model"]["hidden_dim"], config["train"]["learning_rate"]) == (
        "lstm",
        64,
        2e-3,
    )
    assert not (tmp_path / "run").exists()


def test_a_second_run_on_one_directory_is_refused_and_a_kill_releases_the_lock(tmp_path, shakespeare):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(shakespeare.text[:60_000])
    model_dir = tmp_path / "run"
    flags = [*TINY, f"--corpus={corpus}", "--checkpoint_every=5", "--eval_every=1000"]
    first = subprocess.Popen(
        train_command(model_dir, *flags, "--max_steps=100000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        for line in first.stdout:  # wait until it trains
            if line.startswith("step "):
                break
        second = subprocess.run(
            train_command(model_dir, *flags, "--max_steps=100000"),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"error: --model_dir={model_dir} is in use by another training run (pid {first.pid}): wait for "
            "it to finish, stop it, or pass another --model_dir"
        ]
        assert first.poll() is None  # the first run goes on, untouched
        time.sleep(1)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        first.stdout.close()
    # The kill released the lock: the same command resumes from the killed run's checkpoint.
    checkpoints = (model_dir / "checkpoints" / "checkpoint").read_text()
    saved = int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"', checkpoints).group(1))
    third = subprocess.run(
        train_command(model_dir, *flags, f"--max_steps={saved + 5}"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"(step {saved})" in third.stdout
    assert json.loads((model_dir / "results.json").read_text())["steps"] == saved + 5
