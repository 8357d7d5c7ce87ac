"""`python -m lm_keras.tasks`, in real subprocesses: what it writes, what it refuses, and that
TensorFlow never loads."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.test_commands import run_until_exit as commands_run_until_exit

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_until_exit(argv):
    """`tests.test_commands.run_until_exit` of `python -m lm_keras.tasks` with `argv`."""
    return commands_run_until_exit(["lm_keras.tasks", *argv])


def contents(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_it_writes_the_splits_and_task_json_and_rewrites_its_own_output(tmp_path):
    out = tmp_path / "addition"
    argv = ["--task=addition", f"--output_dir={out}", "--train_examples=30", "--test_examples=20"]
    stdout, stderr = run_until_exit(argv)
    assert stdout.splitlines()[-1] == "EXIT None False", stderr[-2000:]
    assert stdout.splitlines()[0] == f"wrote 30 train, 200 validation, 20 test examples of addition to {out}"
    assert sorted(contents(out)) == ["task.json", "test.jsonl", "train.jsonl", "validation.jsonl"]
    records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(records) == 30 and all(list(record) == ["prompt", "completion"] for record in records)
    info = json.loads((out / "task.json").read_text())
    assert info["examples"] == {"train": 30, "validation": 200, "test": 20}
    assert (info["task"], info["seed"], info["max_chars"], info["corpus"]) == ("addition", 1337, 60, None)
    written = contents(out)
    stdout, stderr = run_until_exit(argv)  # its own earlier output: replaced, by the same bytes
    assert stdout.splitlines()[-1] == "EXIT None False", stderr[-2000:]
    assert contents(out) == written


def test_python_m_gives_the_same_bytes_for_a_seed_and_others_for_another(tmp_path):
    def write(out, seed):
        counts = ["--train_examples=100", "--validation_examples=20", "--test_examples=20"]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lm_keras.tasks",
                "--task=speaker",
                f"--output_dir={out}",
                f"--seed={seed}",
                *counts,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=os.environ,  # LM_KERAS_DATA_DIR, where conftest found the corpus
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return contents(out)

    first, again, other = write(tmp_path / "a", 1), write(tmp_path / "b", 1), write(tmp_path / "c", 2)
    assert first == again
    assert all(first[name] != other[name] for name in ("train.jsonl", "validation.jsonl", "test.jsonl"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task=sums"], "error: flag --task=sums: value should be one of <addition|speaker|"),
        (["--task=addition"], "error: --output_dir is required"),
        (["--task=addition", "--output_dir=OUT", "--test_examples=0"], "error: --test_examples must be >= 1"),
        (["--task=addition", "--output_dir=OUT", "stray"], "error: unexpected arguments ['stray']"),
        (
            ["--task=addition", "--output_dir=OUT", "--max_chars=8"],
            "error: --task=addition has 0 examples of at most --max_chars=8 characters",
        ),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_code_2_before_tensorflow_loads(tmp_path, argv, message):
    out = tmp_path / "out"
    stdout, stderr = run_until_exit([arg.replace("OUT", str(out)) for arg in argv])
    assert stdout == "EXIT 2 False", stderr[-2000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), stderr[-2000:]
    assert not out.exists()


@pytest.mark.parametrize("holds", ["a file of its own", "another seed's output"])
def test_a_folder_that_is_not_its_own_earlier_output_is_refused_untouched(tmp_path, holds):
    out = tmp_path / "taken"
    out.mkdir()
    if holds == "a file of its own":
        (out / "notes.txt").write_text("mine")
    else:
        (out / "task.json").write_text(json.dumps({"task": "addition", "seed": 7}))
        (out / "train.jsonl").write_text("{}\n")
    before = contents(out)
    stdout, stderr = run_until_exit(["--task=addition", f"--output_dir={out}"])
    assert stdout == "EXIT 1 False", stderr[-2000:]
    message = (
        f"error: --output_dir={out} is not empty and is not an earlier output of --task=addition --seed=1337 "
    )
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), stderr[-2000:]
    assert contents(out) == before and [p.name for p in tmp_path.iterdir()] == ["taken"]
