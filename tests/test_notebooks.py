"""The notebooks run top to bottom at a small size through a real Jupyter kernel.

Each notebook reads LM_KERAS_NOTEBOOK_SMALL=1 in its parameters cell and writes its
training runs under LM_KERAS_NOTEBOOK_RUNS (here a temporary folder). The executed copy
stays in memory: the committed .ipynb files keep the outputs of their full-size run,
which `test_committed_notebook_holds_a_full_run` checks without a kernel.
"""

import ast
import importlib.util
import json
import math
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = (
    "01_self_attention",
    "02_documented_lstm",
    "03_transformer_lm",
    "04_finetune_export_serve",
    "05_modern_recipe",
    "06_gpt2",
    "07_teach_a_task",
)
CELL_TIMEOUT = 600  # seconds; a small run's slowest cell takes well under a minute
PARAMETERS_LINE = 'SMALL = os.environ.get("LM_KERAS_NOTEBOOK_SMALL") == "1"'


def read(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def outputs_text(nb):
    """Everything the code cells printed or displayed as text, in order.

    The kernel flushes stdout on a timer, so one print() can arrive as two stream outputs
    split mid-line; stream texts are therefore joined as they are, with no separator.
    """
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(
                    "\n" + (output.data.get("text/markdown") or output.data.get("text/plain", "")) + "\n"
                )
        parts.append("\n")
    return "".join(parts)


def image_count(nb):
    return sum(
        "image/png" in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", [])
    )


def max_differences(text):
    return [float(x) for x in re.findall(r"max \|difference\| ([0-9.e+-]+)\)", text)]


def bits_per_char_column(text):
    """The bold bits/char figures of a results table (`| **4.496** |`)."""
    return [float(x) for x in re.findall(r"\| \*\*([0-9.]+)\*\* \|", text)]


def snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def small_run(tmp_path, monkeypatch):
    """Executes a notebook at the small size; returns (executed notebook, its runs folder)."""
    # A kernelspec "python3" for this interpreter, found before any other through JUPYTER_PATH,
    # so the kernel imports the lm_keras under test whatever kernels the machine has registered.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (lm_keras tests)",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("LM_KERAS_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("LM_KERAS_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    def run(name):
        before = snapshot(NOTEBOOKS)
        nb = read(name)
        client = NotebookClient(
            nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        client.execute()  # raises CellExecutionError at the first failing cell
        assert snapshot(NOTEBOOKS) == before, "a notebook run wrote into notebooks/"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
        assert "small (CI) size" in outputs_text(nb)
        return nb, tmp_path / "runs"

    return run


def test_self_attention(small_run):
    nb, runs = small_run("01_self_attention")
    text = outputs_text(nb)
    for check in (
        "lm_keras output matches the formulas: True",
        "lm_keras weights match the formulas: True",
        "keras.layers.MultiHeadAttention output matches the formulas: True",
        "keras.layers.MultiHeadAttention weights match the formulas: True",
        "layer 0 maps match the formulas: True",
    ):
        assert check in text
    differences = max_differences(text)
    assert len(differences) == 5 and max(differences) < 1e-5
    assert "maps: (layers, heads, T, T) = (4, 4, 29, 29)" in text
    assert image_count(nb) == 3  # the 16 heat maps, then two heads up close
    assert (runs / "transformer" / "results.json").is_file()


@pytest.mark.slow  # its model trains in tests/models/test_documented_lstm.py; its imports below
def test_documented_lstm(small_run):
    nb, _ = small_run("02_documented_lstm")
    text = outputs_text(nb)
    assert "['Argument `input_length` is deprecated. Just remove it.']" in text
    assert "layers: ['Embedding', 'LSTM', 'Dropout', 'LSTM', 'Dense', 'Dense']" in text
    assert "documented_lstm builds the same model: True (940,994 parameters each)" in text
    assert "x: (128, 40) int32   y: (128, 66) float32" in text
    assert re.search(r"after 20 batches: validation loss \d\.\d+ nats/char", text)
    assert image_count(nb) == 2
    table = re.findall(r"\| (documented LSTM|LSTMLM) \| \d+ \| ([0-9,]+) \| ([0-9.]+) \|", text)
    assert [row[0] for row in table] == ["documented LSTM", "LSTMLM"]
    assert all(0 < float(bits) < 7 for _, _, bits in table)


# Notebooks 03 and 04 run the train, generate, fine-tune, export and serve paths that the command
# tests cover; `make notebooks` runs all four at full size.
@pytest.mark.slow
def test_transformer_lm(small_run):
    nb, runs = small_run("03_transformer_lm")
    text = outputs_text(nb)
    for run in ("transformer", "lstm", "documented_lstm"):
        for name in ("config.json", "metrics.jsonl", "results.json", "samples.txt"):
            assert (runs / run / name).is_file(), f"{run}/{name}"
    bits = bits_per_char_column(text)
    expected = [
        json.loads((runs / run / "results.json").read_text())["val_bits_per_char"]
        for run in ("documented_lstm", "lstm", "transformer")
    ]
    assert bits == [round(b, 3) for b in expected]
    assert all(math.isfinite(b) and 0 < b < 7 for b in bits)
    for tau in (0.0, 0.5, 0.8, 1.0, 1.3):
        assert f"===== temperature {tau}" in text
    assert image_count(nb) == 3


@pytest.mark.slow
def test_finetune_export_serve(small_run):
    nb, runs = small_run("04_finetune_export_serve")
    text = outputs_text(nb)
    assert "fine-tuning from " in text
    for check in (
        "SavedModel == Keras model: True",
        "session loader (as TF Serving) == tf.saved_model.load: True",
        "REST server == SavedModel in this process: True",
        "REST == SavedModel == Keras: True",
    ):
        assert check in text
    assert re.search(r"serving model version 1 on http://127\.0\.0\.1:\d+/v1/models/model", text)
    assert "server exit code: -15" in text  # stopped by the notebook's cleanup cell
    assert (runs / "export_python_docs" / "1" / "saved_model.pb").is_file()
    bits = bits_per_char_column(text)
    assert len(bits) == 1 and 0 < bits[0] < 7  # the fine-tuned model's row
    assert image_count(nb) == 1


@pytest.mark.slow  # its presets train in tests/training/test_train_cli.py; its imports below
def test_modern_recipe(small_run):
    nb, runs = small_run("05_modern_recipe")
    text = outputs_text(nb)
    for run in ("transformer", "modern"):
        for name in ("config.json", "metrics.jsonl", "results.json", "samples.txt"):
            assert (runs / run / name).is_file(), f"{run}/{name}"
    config = json.loads((runs / "modern" / "config.json").read_text())
    assert config["preset"] == "shakespeare_char_cpu_modern" and config["train"]["optimizer"] == "muon"
    for flag in ("--position", "--use_qk_norm", "--mlp", "--optimizer", "--learning_rate"):
        assert f"| `{flag}` |" in text  # the table of what the recipe changes
    bits = bits_per_char_column(text)
    expected = [
        json.loads((runs / run / "results.json").read_text())["val_bits_per_char"]
        for run in ("transformer", "modern")
    ]
    assert bits == [round(b, 3) for b in expected]
    assert "===== article's GPT\nROMEO:" in text and "===== modern recipe\nROMEO:" in text


@pytest.mark.slow  # convert, compare, export and serve are tests/conversion/'s; its imports below
def test_gpt2(small_run):
    nb, runs = small_run("06_gpt2")
    text = outputs_text(nb)
    for check in (
        "no LM_KERAS_GPT2_DIR: a random stand-in",
        "huggingface GPT-2: 2 layers, 2 heads, 32 wide, context 64, vocab 400",
        "token ids == Hugging Face tokenizers': True",
        "next-token logits == keras-hub's: True",
        "maps: (layers, heads, T, T) = (2, 2, ",
        "fine-tuning from ",
        "SavedModel (as TF Serving loads it) == Keras model: True",
        "REST server == Keras model: True",
        "server exit code: -15",
        "converted back: identical weights: True",
    ):
        assert check in text
    assert (runs / "gpt2_export" / "1" / "saved_model.pb").is_file()
    assert (runs / "gpt2_shakespeare_hf" / "model.safetensors").is_file()
    assert json.loads((runs / "gpt2_shakespeare" / "results.json").read_text())["steps"] == 20
    # 4b: the name task in full and with LoRA, both scored.
    assert f"LoRA fine-tuning of {runs / 'gpt2_shakespeare'}: 9,216 adapter parameters" in text
    assert re.search(r"\| full fine-tuning \| [0-9,]+ \|", text)
    assert re.search(r"\| LoRA r=8, every projection \| 9,216 \|.*\| [0-9.]+% \|", text)
    for run in ("gpt2_name_full", "gpt2_name_lora"):
        assert json.loads((runs / run / "results.json").read_text())["steps"] == 20
    assert image_count(nb) == 1


@pytest.mark.slow  # tasks, training on examples, scoring, export, serve and its OpenAI API are tested alone
def test_teach_a_task(small_run):
    nb, runs = small_run("07_teach_a_task")
    text = outputs_text(nb)
    task = runs / "task_name"
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "task.json"):
        assert (task / name).is_file(), name
    counts = [len((task / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "validation", "test")]
    assert counts == [400, 50, 50]
    assert "name: extraction: prompt 'Name in: LINE'" in text
    assert "task characters the vocabulary lacks: []" in text
    for run in ("name_finetuned", "name_scratch"):
        results = json.loads((runs / run / "results.json").read_text())
        assert results["steps"] == 30 and math.isfinite(results["val_loss"])
    config = json.loads((runs / "name_finetuned" / "config.json").read_text())
    assert config["train"]["init_from"].endswith("transformer")
    # Both runs scored on the 50 test lines.
    pattern = r"(fine-tuned from Shakespeare|from scratch): exact match ([0-9.]+) \| F1 ([0-9.]+) \|"
    scores = re.findall(pattern, text)
    assert [s[0] for s in scores] == ["fine-tuned from Shakespeare", "from scratch"]
    assert all(0 <= float(em) <= float(f1) <= 1 for _, em, f1 in scores)
    assert "| line (prompt: `Name in: ` + line) | reference | fine-tuned | from scratch |" in text
    assert (runs / "export_name" / "1" / "saved_model.pb").is_file()
    assert re.search(r"serving model version 1 on http://127\.0\.0\.1:\d+/v1/models/model", text)
    assert "REST server == generate in this process: True" in text
    assert re.search(r"answers that stopped at end-of-text: \d of 5", text)
    assert "Content-Type: text/event-stream" in text and "data: [DONE]" in text
    assert "streamed == REST: True" in text
    # The raw stream, then the openai package's five (a dev extra; the cell says so without it).
    assert text.count("== REST: True") == (6 if importlib.util.find_spec("openai") else 1)
    assert "server exit code: -15" in text  # stopped by the notebook's cleanup cell
    assert image_count(nb) == 2  # the loss curves, the scores


def test_every_notebooks_lm_keras_imports_resolve():
    """Each notebook's imports of lm_keras, run in one fresh process: a moved module fails here
    in seconds, also for the notebooks whose small runs are in the slow marker."""
    statements = []
    for name in NAMES:
        for cell in read(name).cells:
            if cell.cell_type != "code":
                continue
            source = "\n".join(
                line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
            )
            for node in ast.walk(ast.parse(source)):
                if (
                    isinstance(node, ast.ImportFrom)
                    and (node.module or "").split(".")[0] == "lm_keras"
                    or isinstance(node, ast.Import)
                    and any(a.name.split(".")[0] == "lm_keras" for a in node.names)
                ):
                    statements.append(ast.unparse(node))
    assert len(statements) > 3 * len(NAMES), statements
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(statements)], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_a_full_run(name):
    nb = read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and PARAMETERS_LINE in parameters[0].source
    # One run, top to bottom, without an error, at the full size.
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    text = outputs_text(nb)
    assert "full size" in text and "small (CI) size" not in text
    assert image_count(nb) >= 1
    # The first cell says how long the full run took, and on what.
    first = nb.cells[0].source
    assert re.search(r"\d+ min", first) and "2-core" in first
    prose = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "RUNTIME_NOTE" not in prose and "FINDINGS_NOTE" not in prose  # the notes of the committed run


def test_outputs_text_joins_a_print_split_across_stream_outputs():
    # What CI once got: the kernel's stdout flush timer fired between two writes of one print().
    cell = nbformat.v4.new_code_cell(
        outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="x: (128, 40) int32 "),
            nbformat.v4.new_output("stream", name="stderr", text="a warning\n"),
            nbformat.v4.new_output("stream", name="stdout", text="  y: (128, 66) float32\n"),
            nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
        ]
    )
    nb = nbformat.v4.new_notebook(
        cells=[
            cell,
            nbformat.v4.new_code_cell(
                outputs=[nbformat.v4.new_output("stream", name="stdout", text="no newline at the end")]
            ),
        ]
    )
    text = outputs_text(nb)
    assert "x: (128, 40) int32   y: (128, 66) float32\n" in text
    assert "a warning" not in text
    assert "\n42\n" in text and text.endswith("no newline at the end\n")
