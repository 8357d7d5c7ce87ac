"""train --init_from=RUN --lora_rank=R: adapters alone train, checkpoint, resume after kill -9 and
load; the base stays bit-identical and another base is refused; the window is shorter than the
model's context (--seq_len below --init_from's)."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from lm_keras import model_dir as md
from tests.training.helpers import TINY, checkpoint_weights, run_train
from tests.training.test_reliability import _kill_during_run

# The base: TINY (1 block, d = 32, context 32) trained a few steps.
BASE_FLAGS = [*TINY, "--max_steps=10", "--eval_every=10", "--checkpoint_every=10"]
# LoRA on the MLP too (the attention's own adapters and Keras's Dense ones), on 16-token windows
# of the 32-position base, with dropout, so the kill -9 test sees RNG state and data position.
LORA = [
    "--lora_rank=4",
    "--lora_alpha=8",
    "--lora_targets=attention_mlp",
    "--seq_len=16",
    "--dropout=0.1",
    "--max_steps=12",
    "--checkpoint_every=2",
    "--log_every=1",
    "--eval_every=12",
    "--eval_batches=2",
    "--batch_size=8",
    "--learning_rate=1e-2",
    "--warmup_steps=0",
    "--min_learning_rate=1e-3",
    "--deterministic",
    "--seed=5",
    "--jit_compile=false",
    "--sample_tokens=0",
]
# d = 32, m = 128, r = 4, one block: query and value 2 (2 r d), the MLP's two 2 r (d + m).
ADAPTER_PARAMETERS = 2 * (2 * 4 * 32) + 2 * 4 * (32 + 128)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shakespeare):
    path = tmp_path_factory.mktemp("corpus") / "head.txt"
    path.write_text(shakespeare.text[:60_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory, corpus):
    model_dir = tmp_path_factory.mktemp("runs") / "base"
    result = run_train(model_dir, *BASE_FLAGS, f"--corpus={corpus}")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


def _lora_flags(base, corpus):
    return [f"--init_from={base}", f"--corpus={corpus}", *LORA]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, base, corpus):
    model_dir = tmp_path_factory.mktemp("runs") / "lora"
    result = run_train(model_dir, *_lora_flags(base, corpus))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"LoRA fine-tuning of {base}: {ADAPTER_PARAMETERS:,} adapter parameters" in result.stdout
    return model_dir


def _losses(model_dir):
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["step"], r.get("loss"), r.get("val_loss")) for r in records]


def test_checkpoints_hold_the_adapters_their_optimizer_state_and_the_base_hash(lora_run, base):
    reader = tf.train.load_checkpoint(str(lora_run / "checkpoints"))
    shapes = reader.get_variable_to_shape_map()
    assert not [n for n in shapes if n.startswith("model/")]  # no frozen base weights
    adapters = {n: s for n, s in shapes.items() if n.startswith("adapters/")}
    assert sum(int(np.prod(s)) for s in adapters.values()) == ADAPTER_PARAMETERS
    # Adam's two moments per adapter, and nothing for the frozen weights.
    moments = [s for n, s in shapes.items() if n.startswith("optimizer/_variables/")]
    assert sum(int(np.prod(s)) for s in moments) == 2 * ADAPTER_PARAMETERS
    base_ckpt = md.latest_checkpoint(base)
    sha = md.checkpoint_sha256(base_ckpt)
    assert reader.get_tensor("lora_base/.ATTRIBUTES/VARIABLE_VALUE").decode() == sha
    config = json.loads((lora_run / "config.json").read_text())
    assert config["lora_base"] == {"model_dir": str(base.resolve()), "checkpoint": "ckpt-10", "sha256": sha}
    # The model keeps its 32 positions and trained on 16-token windows.
    assert (config["model"]["seq_len"], config["model"]["context"]) == (16, 32)
    assert config["train"]["lora_rank"] == 4 and config["train"]["lora_targets"] == "attention_mlp"


def test_base_weights_are_bit_identical_and_the_adapters_trained(lora_run, base):
    trained = md.load_trained(lora_run)
    assert trained.step == 12 and trained.model.seq_len == 32  # the base's context
    base_model = md.load_trained(base).model
    plain = {v.path.split("/", 1)[1]: v for v in base_model.weights}
    adapted = [v for v in trained.model.weights if not v.name.startswith("lora_")]
    assert len(adapted) == len(plain)
    for v in adapted:
        np.testing.assert_array_equal(v.numpy(), plain[v.path.split("/", 1)[1]].numpy())
    assert all(np.any(v.numpy() != 0) for v in trained.model.lora_variables)  # B left zero
    losses = [loss for kind, _, loss, _ in _losses(lora_run) if kind == "train"]
    assert losses[-1] < losses[0]


def test_merged_model_generates_the_unmerged_models_greedy_text(lora_run):
    from lm_keras.generation import generate

    trained = md.load_trained(lora_run)
    merged = md.load_trained(lora_run, merge_lora=True)
    assert not merged.model.lora_variables
    ids = np.arange(32, dtype="int32").reshape(1, 32) % trained.config.model.vocab_size
    np.testing.assert_allclose(np.asarray(merged.model(ids)), np.asarray(trained.model(ids)), atol=1e-5)
    prompts = ["ROMEO:", "First Citizen:\n"]
    # Greedy text over the whole 32-position context, past the 16-token training window.
    text = generate(trained.model, trained.tokenizer, prompts, max_new_tokens=24, temperature=0.0)
    assert generate(merged.model, merged.tokenizer, prompts, max_new_tokens=24, temperature=0.0) == text


def test_export_merges_the_adapters(lora_run, tmp_path):
    from lm_keras.generation import generate
    from lm_keras.serving.saved_model_export import export_saved_model

    export = export_saved_model(lora_run, tmp_path / "export", max_new_tokens=24, temperature=0.0)
    # A plain model: the base's variables (the fused kernel among them), no adapter's shape.
    shapes = [tuple(s) for _, s in tf.train.list_variables(str(export / "variables" / "variables"))]
    assert (32, 3, 2, 16) in shapes and not {(32, 4), (4, 2, 16), (4, 128), (128, 4)} & set(shapes)
    trained = md.load_trained(lora_run)  # unmerged
    prompts = ["ROMEO:", "x"]
    serving = tf.saved_model.load(str(export)).signatures["serving_default"]
    continuations = serving(prompt=tf.constant(prompts))["continuation"].numpy()
    # Greedy, past the 16-token training window: the export keeps the model's 32 positions.
    expected = generate(trained.model, trained.tokenizer, prompts, max_new_tokens=24, temperature=0.0)
    assert [c.decode() for c in continuations] == expected
    # As TF Serving loads it: a TF1 session from the graph alone, in a process without lm_keras.
    from tests.serving.test_session_loader import run_session_loader

    calls = [{"signature": "serving_default", "inputs": {"prompt": prompts}}]
    (answers,) = run_session_loader([{"path": str(export), "calls": calls}], tmp_path, tensorflow_text=False)
    assert answers[0]["continuation"] == expected


def test_resume_after_sigkill_is_exact(lora_run, base, corpus, tmp_path):
    model_dir = tmp_path / "killed"
    flags = _lora_flags(base, corpus)
    reached = _kill_during_run(model_dir, 5, 0.0, flags)
    assert 0 < reached < 12, reached  # a real interruption
    result = run_train(model_dir, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {model_dir / 'checkpoints'}/ckpt-{reached}" in result.stdout
    assert _losses(model_dir) == _losses(lora_run)
    prefix = "adapters/"
    killed = checkpoint_weights(model_dir / "checkpoints", prefix)
    straight = checkpoint_weights(lora_run / "checkpoints", prefix)
    assert killed.keys() == straight.keys() and killed
    for name in killed:
        np.testing.assert_array_equal(killed[name], straight[name])


def test_another_base_is_refused_in_one_line(base, corpus, tmp_path):
    other = tmp_path / "base_copy"
    shutil.copytree(base, other)
    run = tmp_path / "lora"
    flags = [f"--init_from={other}", f"--corpus={corpus}", *LORA, "--max_steps=2"]
    result = run_train(run, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    # The base's weights change under the run (one float of its checkpoint).
    data = next((other / "checkpoints").glob("ckpt-10.data-*"))
    raw = bytearray(data.read_bytes())
    raw[-8] ^= 0x01
    data.write_bytes(bytes(raw))
    for command in (["--max_steps=4"], None):
        if command is None:  # evaluate loads the run too
            from tests.test_evaluate_cli import run_evaluate

            result = run_evaluate(f"--model_dir={run}")
        else:
            result = run_train(run, *flags[:-1], *command)
        assert result.returncode == 1, result.stderr[-3000:]
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith(
            f"error: the LoRA run in {run} adapts {other / 'checkpoints' / 'ckpt-10'} (sha256 "
        )
        assert "which now holds other weights" in line and len(result.stderr.strip().splitlines()) == 1
    # Resuming with another --init_from is refused before anything loads.
    result = run_train(run, *[f if not f.startswith("--init_from") else f"--init_from={base}" for f in flags])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --init_from={base} differs from the run in {run} (init_from={other}): a run resumes with "
        "its own adapters and their base; drop the flag, or use a new --model_dir"
    )


def test_init_from_a_lora_run_starts_from_the_merged_weights(lora_run):
    from lm_keras.models import build_model

    trained = md.load_trained(lora_run)
    model = build_model(trained.config.model)
    md.restore_weights(model, lora_run)
    assert not model.lora_variables
    ids = np.arange(16, dtype="int32").reshape(1, 16) % trained.config.model.vocab_size
    np.testing.assert_allclose(np.asarray(model(ids)), np.asarray(trained.model(ids)), atol=1e-5)


def test_lora_flags_are_checked_before_tensorflow(base, tmp_path):
    cases = [
        (["--lora_rank=4"], "error: --lora_rank=4 needs --init_from=RUN: LoRA adapts a trained model"),
        (
            [f"--init_from={base}", "--lora_rank=4", "--lora_targets=mlp"],
            "error: flag --lora_targets=mlp: value should be one of <attention|attention_mlp|all>",
        ),
        (
            [f"--init_from={base}", "--seq_len=64"],
            "error: --seq_len must be at most the model's context; received seq_len=64, context=32",
        ),
    ]
    for flags, message in cases:
        result = run_train(tmp_path / "run", *flags)
        assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
        assert not (tmp_path / "run").exists()


@pytest.mark.slow  # three commands' start-ups; load_trained, which they share, is tested above
def test_evaluate_generate_and_interpret_run_on_the_lora_run(lora_run, base):
    from lm_keras.generation import generate
    from lm_keras.interpret import attention_maps
    from tests.test_evaluate_cli import run_evaluate
    from tests.test_generate_cli import run_generate

    result = run_evaluate(f"--model_dir={lora_run}", "--batch_size=8", "--jit_compile=false")
    assert result.returncode == 0, result.stderr[-3000:]
    # The run's own final figure: the same adapters on the same base, the same validation windows.
    final = json.loads((lora_run / "results.json").read_text())
    assert json.loads(result.stdout)["val_loss"] == pytest.approx(final["val_loss"], abs=1e-5)
    trained = md.load_trained(lora_run)
    result = run_generate(
        f"--model_dir={lora_run}", "--prompt=ROMEO:", "--max_new_tokens=20", "--temperature=0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = generate(trained.model, trained.tokenizer, ["ROMEO:"], max_new_tokens=20, temperature=0.0)
    assert result.stdout.rstrip("\n") == "ROMEO:" + expected[0]
    tokens, maps = attention_maps(trained.model, trained.tokenizer, "ROMEO: what")
    _, base_maps = attention_maps(md.load_trained(base).model, trained.tokenizer, "ROMEO: what")
    assert maps.shape == base_maps.shape == (1, 2, len(tokens), len(tokens))
    assert np.abs(maps - base_maps).max() > 1e-4  # the query adapters change where heads look


def test_lora_on_examples_grows_the_base_by_the_end_of_text_id(tmp_path):
    # A base trained before end-of-text ids (its char tokenizer has none); a run on examples
    # appends one, whose row starts as the mean of the others (as in full fine-tuning). Under LoRA
    # the embedding then trains beside the pairs (PEFT's modules_to_save), so the new row learns,
    # and the run's checkpoints hold it with the adapters.
    import dataclasses

    import keras

    from lm_keras import tasks
    from lm_keras.config import Config
    from lm_keras.models import build_model
    from lm_keras.tokenizers.char_tokenizer import CharTokenizer

    splits, info = tasks.make_splits("addition", seed=1, counts={"train": 60, "validation": 10, "test": 1})
    tasks.write_splits(tmp_path / "task", splits, info)
    old = CharTokenizer("".join(sorted(set("0123456789+="))))
    assert old.eot_id is None
    config = Config().replace(num_layers=1, num_heads=2, hidden_dim=32, seq_len=32)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=old.vocab_size))
    keras.utils.set_random_seed(0)
    md.write_converted(tmp_path / "base", config, old, build_model(config.model), None)
    run = tmp_path / "lora_task"
    flags = [
        f"--init_from={tmp_path / 'base'}",
        *LORA,
        "--max_steps=4",
        "--eval_every=4",
        "--checkpoint_every=4",
    ]
    flags += [
        f"--corpus={tmp_path / 'task' / 'train.jsonl'}",
        f"--validation_data={tmp_path / 'task' / 'validation.jsonl'}",
    ]
    result = run_train(run, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LoRA fine-tuning of" in result.stdout
    before = md.load_trained(tmp_path / "base").model.token_embedding.embeddings.numpy()
    trained = md.load_trained(run)
    assert trained.model.vocab_size == old.vocab_size + 1 == trained.tokenizer.eot_id + 1
    grown = trained.model.token_embedding.embeddings.numpy()
    assert np.abs(grown[-1] - before.mean(axis=0)).max() > 1e-4  # the new row learned
    saved = tf.train.load_checkpoint(str(run / "checkpoints")).get_variable_to_shape_map()
    assert [n for n in saved if "token_embedding" in n]
    assert any(np.abs(v.numpy()).max() > 0 for v in trained.model.lora_variables if v.name.endswith("_b"))
    # Every other base weight is the base's.
    base = md.load_trained(tmp_path / "base").model
    frozen = [
        v for v in trained.model.weights if not v.name.startswith("lora_") and "token_embedding" not in v.path
    ]
    for mine, theirs in zip(
        frozen, [v for v in base.weights if "token_embedding" not in v.path], strict=True
    ):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    # The merged model (what export writes) is a plain model of the grown vocabulary.
    merged = md.load_trained(run, merge_lora=True).model
    plain = build_model(trained.config.model)
    assert [w.shape for w in merged.weights] == [w.shape for w in plain.weights]
    # PEFT's adapter cannot hold the trained embedding: refused in one line.
    from tests.test_export_cli import run_export

    result = run_export(f"--model_dir={run}", f"--export_dir={tmp_path / 'peft'}", "--format=peft")
    assert result.returncode == 1 and not (tmp_path / "peft").exists()
    assert result.stderr.strip() == (
        f"error: --model_dir={run} trained its token embedding beside the adapters (its base "
        f"{tmp_path / 'base'} lacked the end-of-text id, which the run appended), and PEFT's adapter "
        "holds the LoRA pairs alone: export the merged model with --format=huggingface"
    )
