"""The command modules: where they live, and that they import together."""

import configparser
import importlib
import pathlib
import subprocess
import sys

import pytest

from tests.training.helpers import damaged_model_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = ("prepare", "train", "evaluate", "generate", "export", "serve", "demo", "convert")


def test_every_command_imports_together_without_tensorflow():
    # Each command used to define --model_dir and others on import: absl's DuplicateFlagError.
    probe = (
        "import sys\n"
        + "".join(f"import lm_keras.{c}, lm_keras.commands.{c}\n" for c in COMMANDS)
        + "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("damaged", [False, True])
@pytest.mark.parametrize("command", ["evaluate", "generate", "export"])
def test_a_directory_without_a_readable_model_is_one_line_before_tensorflow_loads(tmp_path, command, damaged):
    if damaged:
        model_dir, message = damaged_model_dir(tmp_path / "run")
    else:
        model_dir, message = tmp_path, f"error: --model_dir={tmp_path} holds no config.json"
    argv = [f"lm_keras.{command}", f"--model_dir={model_dir}"]
    if command == "export":
        argv.append(f"--export_dir={tmp_path / 'export'}")
    probe = (
        "import sys\n"
        f"sys.argv = {argv!r}\n"
        f"import lm_keras.{command}\n"
        f"try:\n    lm_keras.{command}.run()\n"
        "except SystemExit as e:\n    print('EXIT', e.code, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.stdout.strip() == "EXIT 1 False", result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr[-2000:]
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_python_m_runs_the_command(command):
    result = subprocess.run(
        [sys.executable, "-m", f"lm_keras.{command}", "--helpshort"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1, result.stderr[-2000:]  # absl's exit code after printing help
    first_line = importlib.import_module(f"lm_keras.commands.{command}").__doc__.splitlines()[0]
    assert result.stdout.startswith(first_line)  # the command's own usage text
    first_flag = {"serve": "--export_dir", "convert": "--source", "prepare": "--corpus"}.get(
        command, "--model_dir"
    )
    assert first_flag in result.stdout  # absl lists the command's own flags


def test_console_scripts_point_at_the_commands():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    scripts = dict(
        line.split(" = ") for line in setup["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    for name, target in scripts.items():
        command = name.removeprefix("lm-keras-")
        assert target == f"lm_keras.commands.{command}:run"
        assert (REPO / "lm_keras" / "commands" / f"{command}.py").is_file()
