"""The train command end to end: flags, the model directory, fine-tuning, NaN, presets."""

import hashlib
import json
import re
import subprocess
import sys

import pytest

from tests.training.helpers import REPO, TINY, checkpoint_weights, max_abs_diff, run_train


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model_dir=/tmp/x", "--nope=1"], r"Unknown command line flag 'nope'"),
        (
            ["--model_dir=/tmp/x", "--model=gru"],
            r"value should be one of <transformer\|lstm\|documented_lstm>",
        ),
        (
            ["--model_dir=/tmp/x", "--hidden_dim=130"],
            r"--hidden_dim must be divisible by num_heads; received hidden_dim=130",
        ),
        (["--model_dir=/tmp/x", "--dropout=1.5"], r"--dropout must be in \[0, 1\); received dropout=1.5"),
        (["--model_dir=/tmp/x", "--tokenizer=bpe"], r"--vocab_size is required for --tokenizer=bpe"),
        (
            ["--model_dir=/tmp/x", "--tokenizer=bpe", "--vocab_size=100"],
            r"--vocab_size must be at least 260 for --tokenizer=bpe .* received vocab_size=100",
        ),
        (["--max_steps=3"], r"--model_dir is required"),
        (
            ["--model_dir=/tmp/x", "shakespeare"],
            r"unexpected arguments \['shakespeare'\]: every option is a --flag",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_tensorflow_loads(flags, message):
    probe = (
        "import sys\n"
        f"sys.argv = ['lm_keras.train', *{flags!r}]\n"
        "import lm_keras.train\n"
        "try:\n    lm_keras.train.run()\n"
        "except SystemExit as e:\n    print('EXIT', e.code, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.stdout.strip() == "EXIT 2 False"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]


def test_flagfile_flags_count_as_given(tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--num_heads=4\n--hidden_dim=130\n")
    result = subprocess.run(
        [sys.executable, "-m", "lm_keras.train", f"--model_dir={tmp_path / 'run'}", f"--flagfile={flagfile}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --hidden_dim must be divisible by num_heads; received hidden_dim=130, num_heads=4"
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_train(
        model_dir,
        *TINY,
        "--max_steps=10",
        "--eval_every=10",
        "--checkpoint_every=5",
        "--warmup_steps=0",
        "--learning_rate=1e-2",
        "--min_learning_rate=1e-3",
        "--sample_tokens=20",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


def test_model_dir_contract(tiny_run):
    model_dir, result = tiny_run
    config = json.loads((model_dir / "config.json").read_text())
    assert config["preset"] == "shakespeare_char_cpu"
    assert config["model"]["hidden_dim"] == 32 and config["model"]["vocab_size"] == 67
    assert config["corpus"]["sha256"] == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert {"tensorflow", "keras", "tensorflow_text", "sentencepiece", "lm_keras"} <= config[
        "versions"
    ].keys()
    assert json.loads((model_dir / "tokenizer" / "tokenizer.json").read_text())["kind"] == "char"
    assert sorted(p.name for p in (model_dir / "checkpoints").glob("*.index")) == [
        "ckpt-10.index",
        "ckpt-5.index",
    ]
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in records] == [
        ("train", 1),
        ("train", 5),
        ("train", 10),
        ("eval", 10),
        ("final", 10),
    ]
    assert all(r["tokens_per_sec"] > 0 for r in records if r["kind"] == "train")
    results = json.loads((model_dir / "results.json").read_text())
    # The validation split starts at the first line after 90% of the text: 111,538 characters.
    assert results["steps"] == 10 and results["val_tokens"] == 111_537 and results["val_chars"] == 111_537
    assert results["val_split_targets"] == 111_537 and results["eval_tokens"] == 1_000_000
    assert config["dataset"] == {
        "path": str(model_dir / "data"),
        "manifest_sha256": hashlib.sha256((model_dir / "data" / "manifest.json").read_bytes()).hexdigest(),
    }
    assert (
        json.loads((model_dir / "data" / "manifest.json").read_text())["corpus"]["sha256"]
        == (config["corpus"]["sha256"])
    )
    assert results["targets_per_sec"] == pytest.approx(
        results["tokens_per_sec"]
    )  # every position is a target
    assert results["val_bits_per_char"] == pytest.approx(results["val_loss"] / 0.6931471805599453)
    assert results["val_perplexity"] == pytest.approx(2.718281828459045 ** results["val_loss"])
    assert 2.0 < results["val_loss"] < 3.6  # well below uniform over 66 ids (4.19) after 10 steps
    assert list((model_dir / "logs").glob("events.out.tfevents.*"))
    assert len((model_dir / "samples.txt").read_text()) > 0
    # Progress: step, loss, learning rate, tokens/s and time left; eval in bits per character.
    lines = result.stdout.splitlines()
    first = next(line for line in lines if line.startswith("step      1/10 |"))
    assert "first step" in first and "(tracing and compiling)" in first and "eta" not in first
    last = next(line for line in lines if line.startswith("step     10/10 |"))
    assert re.search(r"\| loss \d\.\d{4} \| lr \S+ \| [\d,]+ tok/s \| [\d.]+ ms/step \| eta 0m00s$", last), (
        last
    )
    assert "bits/char" in result.stdout


def test_rerun_after_the_end_only_evaluates(tiny_run):
    model_dir, _ = tiny_run
    before = checkpoint_weights(model_dir / "checkpoints")
    result = run_train(model_dir)  # no flags: the stored config is used
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already at step 10 of 10" in result.stdout
    after = checkpoint_weights(model_dir / "checkpoints")
    assert max_abs_diff(before, after) == 0.0  # the same variables, untouched
    kinds = [json.loads(line)["kind"] for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("final") == 1


def test_resume_refuses_another_architecture(tiny_run):
    model_dir, _ = tiny_run
    result = run_train(model_dir, "--hidden_dim=64")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --hidden_dim=64 differs from the run in {model_dir} (hidden_dim=32): "
        "a run resumes with its own model and data; drop the flag, or use a new "
        "--model_dir to start another run"
    )


def test_nan_loss_stops_with_error_and_keeps_last_good_checkpoint(tiny_run, tmp_path):
    source, _ = tiny_run
    model_dir = tmp_path / "nan"
    assert (
        run_train(model_dir, *TINY, "--max_steps=5", "--checkpoint_every=5", "--eval_every=5").returncode == 0
    )
    good = checkpoint_weights(model_dir / "checkpoints")
    result = run_train(model_dir, "--max_steps=40", "--learning_rate=1e30", "--grad_clip=0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: loss became ") and "the last good checkpoint" in lines[-1]
    assert "ckpt-5" in lines[-1]
    assert sorted(p.name for p in (model_dir / "checkpoints").glob("*.index")) == ["ckpt-5.index"]
    after = checkpoint_weights(model_dir / "checkpoints")
    assert max_abs_diff(good, after) == 0.0  # the same variables, untouched


def test_fine_tune_keeps_tokenizer_and_starts_from_weights(tiny_run, tmp_path):
    source, _ = tiny_run
    corpus = tmp_path / "new_text.txt"
    corpus.write_text("To be, or not to be, that is the question:\n" * 400)
    fine = tmp_path / "fine"
    result = run_train(
        fine,
        f"--init_from={source}",
        f"--corpus={corpus}",
        "--max_steps=5",
        "--learning_rate=3e-4",
        "--warmup_steps=0",
        "--min_learning_rate=3e-5",
        "--eval_every=5",
        "--checkpoint_every=5",
        "--log_every=1",
        "--batch_size=8",
        "--jit_compile=false",  # as TINY: the subject is the weights, not XLA
        "--sample_tokens=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine-tuning from" in result.stdout
    assert (fine / "tokenizer" / "tokenizer.json").read_text() == (
        source / "tokenizer" / "tokenizer.json"
    ).read_text()
    config = json.loads((fine / "config.json").read_text())
    assert config["model"]["hidden_dim"] == 32 and config["train"]["learning_rate"] == 3e-4
    first = json.loads((fine / "metrics.jsonl").read_text().splitlines()[0])
    fresh_loss = json.loads((source / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert first["step"] == 1 and first["loss"] < fresh_loss - 0.3  # pre-trained, not from scratch


def test_fine_tune_refuses_another_architecture(tiny_run, tmp_path):
    source, _ = tiny_run
    result = run_train(tmp_path / "ft", f"--init_from={source}", "--num_layers=2")
    assert result.returncode == 2
    assert (
        "--num_layers=2 differs from --init_from=" in result.stderr and "fine-tuning keeps" in result.stderr
    )


def test_bad_corpus_is_one_line_exit_1(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9\n" * 100)
    result = run_train(tmp_path / "run", *TINY, f"--corpus={bad}", "--max_steps=2")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: corpus file {bad} is not UTF-8: invalid byte 0xe9 at byte offset 3; "
        "convert it, e.g. iconv -f LATIN1 -t UTF-8"
    ]
    assert not (tmp_path / "run").exists()  # the failed start left nothing behind


@pytest.mark.parametrize(
    "tokenizer, vocab_size, message",
    [
        (
            "bpe",
            300,
            "vocab_size=300 is too small for a bpe tokenizer of this text: the smallest size it "
            "supports is 323",
        ),
        (
            "unigram",
            70_000,
            "vocab_size=70000 is too large for a unigram tokenizer of this text: the "
            "largest size it supports is",
        ),
    ],
)
def test_a_vocab_size_the_text_cannot_support_is_one_line_exit_1(tmp_path, tokenizer, vocab_size, message):
    model_dir = tmp_path / "run"
    result = run_train(model_dir, *TINY, f"--tokenizer={tokenizer}", f"--vocab_size={vocab_size}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr[-2000:]
    assert not (model_dir / "config.json").exists()  # a rerun with another size starts afresh


def test_corpus_too_small_for_a_window(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("hello world\n" * 20)  # 240 characters: the validation split is 24
    result = run_train(tmp_path / "run", *TINY, f"--corpus={small}", "--max_steps=2")
    assert result.returncode == 1
    assert (
        "the validation split has 24 tokens, fewer than one training window of seq_len + 1 = 33"
        in result.stderr
    )


@pytest.mark.parametrize(
    "preset, extra",
    [
        # test_quality trains this preset in full, and tiny_run at a small width.
        pytest.param("shakespeare_char_cpu", [], marks=pytest.mark.slow),
        # The modern recipe's options train under XLA in tests/models/test_transformer_lm.py.
        pytest.param("shakespeare_char_cpu_modern", [], marks=pytest.mark.slow),
        # The GPU preset (a batch of 64 x 256 is 20 s a step here): the CPU preset's code at a larger shape.
        pytest.param("shakespeare_char", ["--batch_size=2"], marks=pytest.mark.slow),
        # BPE datasets train in tests/training/test_train_datasets.py.
        pytest.param("shakespeare_bpe_cpu", [], marks=pytest.mark.slow),
        # The documented LSTM trains in notebook 2 and tests/models/test_documented_lstm.py.
        pytest.param("documented_lstm", [], marks=pytest.mark.slow),
        ("lstm_char", []),
    ],
)
def test_every_preset_trains_end_to_end(tmp_path, shakespeare, preset, extra):
    corpus = tmp_path / "shakespeare_head.txt"  # a tenth of the corpus keeps the full-split eval short
    corpus.write_text(shakespeare.text[:100_000])
    model_dir = tmp_path / preset
    result = run_train(
        model_dir,
        f"--preset={preset}",
        f"--corpus={corpus}",
        "--max_steps=3",
        "--eval_every=3",
        "--log_every=1",
        "--eval_batches=2",
        "--sample_tokens=10",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    results = json.loads((model_dir / "results.json").read_text())
    assert results["steps"] == 3 and results["val_bits_per_char"] > 0
    config = json.loads((model_dir / "config.json").read_text())
    assert results["model"] == config["model"]["model"]
    per_target = 1 if preset == "documented_lstm" else config["model"]["seq_len"]  # one target per window
    assert results["tokens_per_sec"] == pytest.approx(
        results["targets_per_sec"] * config["model"]["seq_len"] / per_target
    )


@pytest.mark.parametrize(
    "precision, model",
    [
        # bfloat16 trains under XLA in tests/models; the trainer's loss scaling is float16's.
        pytest.param("bfloat16", "transformer", marks=pytest.mark.slow),
        ("float16", "transformer"),
        # The trainer's bfloat16 path is the transformer's; LSTMLM's bfloat16 training is tested in
        # tests/models/test_lstm_lm.py.
        pytest.param("bfloat16", "lstm", marks=pytest.mark.slow),
    ],
)
def test_mixed_precision_trains_with_float32_variables(tmp_path, precision, model):
    model_dir = tmp_path / precision
    result = run_train(
        model_dir,
        *TINY,
        f"--model={model}",
        f"--mixed_precision={precision}",
        "--max_steps=6",
        "--eval_every=6",
        "--log_every=1",
        "--warmup_steps=0",
        "--learning_rate=1e-2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < losses[0]  # it learns
    weights = checkpoint_weights(model_dir / "checkpoints")
    assert {w.dtype.name for w in weights.values()} == {"float32"}  # variables stay float32
    if precision == "float16":  # the loss-scale optimizer's dynamic scale is checkpointed too
        reader_names = checkpoint_weights(model_dir / "checkpoints", prefix="optimizer/")
        assert any("scale" in name for name in reader_names), sorted(reader_names)[:20]
