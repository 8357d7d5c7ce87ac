"""The command modules: where they live, that they import together, and the one list of them."""

import configparser
import importlib
import pathlib
import subprocess
import sys

import pytest

from lm_keras.commands import COMMANDS
from tests.training.helpers import damaged_model_dir

REPO = pathlib.Path(__file__).resolve().parents[1]


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


def run_until_exit(argv):
    """Runs the command `argv[0]` (`lm_keras.<command>`, which calls `lm_keras.commands.<command>.run`)
    with `argv` in a fresh Python; (stdout, stderr), where stdout ends with
    "EXIT <code> <whether TensorFlow was loaded>"."""
    command = argv[0].removeprefix("lm_keras.")
    probe = (
        "import sys\n"
        f"sys.argv = {argv!r}\n"
        f"import lm_keras.commands.{command}\n"
        f"try:\n    lm_keras.commands.{command}.run()\n"
        "except SystemExit as e:\n    print('EXIT', e.code, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    return result.stdout.strip(), result.stderr.strip()


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
    stdout, stderr = run_until_exit(argv)
    assert stdout == "EXIT 1 False", stderr[-2000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), stderr[-2000:]
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize("problem", ["no source folder", "model_dir not empty"])
def test_convert_refuses_its_paths_before_tensorflow_loads(tmp_path, problem):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    if problem == "no source folder":
        source, model_dir = tmp_path / "missing", tmp_path / "new"
        message = f"error: --source={source} is not a folder: pass a Hugging Face GPT-2 folder"
    else:
        source, model_dir = tmp_path / "gpt2", tmp_path / "taken"
        message = f"error: --model_dir={model_dir} already exists and is not empty: pass a new folder"
    stdout, stderr = run_until_exit(["lm_keras.convert", f"--source={source}", f"--model_dir={model_dir}"])
    assert stdout == "EXIT 1 False", stderr[-2000:]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), stderr[-2000:]
    assert not (tmp_path / "new").exists()
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("nested", [False, True])
def test_a_missing_flagfile_is_one_line_naming_it(tmp_path, nested):
    missing = tmp_path / "missing.flags"
    flagfile = missing
    if nested:  # a flagfile that names another one, which is missing
        flagfile = tmp_path / "run.flags"
        flagfile.write_text(f"--max_steps=10\n--flagfile={missing}\n")
    result = subprocess.run(
        [sys.executable, "-m", "lm_keras.train", f"--flagfile={flagfile}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: --flagfile={missing} cannot be read (No such file or directory): check the path\n"
    )
    assert result.stdout == ""


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
    first_flags = {"serve": "--export_dir", "convert": "--source", "prepare": "--corpus", "tasks": "--task"}
    first_flag = first_flags.get(command, "--model_dir")
    assert first_flag in result.stdout  # absl lists the command's own flags


def test_every_command_has_its_entry_module_its_code_and_a_console_script():
    # COMMANDS is the one list: a command added to lm_keras/commands/ without it (or without
    # its entry module or console script) fails here.
    modules = {p.stem for p in (REPO / "lm_keras" / "commands").glob("*.py")} - {"__init__", "cli"}
    assert set(COMMANDS) == modules
    for command in COMMANDS:
        package = REPO / "lm_keras" / command  # a package's entry module is its __main__
        path = package / "__main__.py" if package.is_dir() else REPO / "lm_keras" / f"{command}.py"
        entry = path.read_text(encoding="utf-8")
        assert f"from lm_keras.commands.{command} import run\n" in entry, command
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    scripts = dict(
        line.split(" = ") for line in setup["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    assert scripts == {f"lm-keras-{c}": f"lm_keras.commands.{c}:run" for c in COMMANDS}


def test_python_m_lm_keras_lists_the_commands_without_tensorflow():
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['lm_keras']\n"
        "try:\n    runpy.run_module('lm_keras', run_name='__main__')\n"
        "except SystemExit as e:\n    print('EXIT', e.code, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    lines = result.stdout.splitlines()
    assert lines[-1] == "EXIT 0 False", result.stderr[-2000:]
    listed = [line.split() for line in lines if line.startswith("  python -m ")]
    assert [(words[2], words[3], " ".join(words[4:])) for words in listed] == [
        (f"lm_keras.{name}", f"lm-keras-{name}", purpose) for name, purpose in COMMANDS.items()
    ]
    result = subprocess.run(
        [sys.executable, "-m", "lm_keras", "train"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 2 and result.stderr.startswith("error: python -m lm_keras takes no arguments")


def test_the_readme_shows_what_python_m_lm_keras_prints():
    result = subprocess.run(
        [sys.executable, "-m", "lm_keras"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-2000:]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"$ python -m lm_keras\n{result.stdout}```" in readme
