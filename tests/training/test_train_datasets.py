"""Training from prepared datasets: --corpus=DIR, one data path, a changed or a damaged dataset."""

import hashlib
import json

import pytest

from lm_keras.data.prepare import prepare
from tests.training.helpers import TINY, checkpoint_weights, run_train

SHORT = [*TINY, "--max_steps=2", "--eval_every=2", "--checkpoint_every=2", "--eval_tokens=500"]


@pytest.fixture(scope="module")
def bpe_dataset(tmp_path_factory):
    return prepare(
        "tiny_shakespeare",
        tmp_path_factory.mktemp("data") / "bpe",
        tokenizer="bpe",
        vocab_size=400,
        log=print,
    )


def test_a_prepared_dataset_fixes_the_tokenizer_and_the_run_records_which(tmp_path, bpe_dataset):
    model_dir = tmp_path / "run"
    result = run_train(model_dir, *SHORT, f"--corpus={bpe_dataset.path}")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["data"]["tokenizer"] == "bpe" and config["data"]["vocab_size"] == 400
    assert config["model"]["vocab_size"] == 400
    assert config["dataset"] == {
        "path": str(bpe_dataset.path),
        "manifest_sha256": bpe_dataset.manifest_sha256,
    }
    assert not (model_dir / "data").exists()  # trained from the dataset itself, nothing copied
    assert (model_dir / "tokenizer" / "sentencepiece.model").read_bytes() == (
        bpe_dataset.path / "tokenizer" / "sentencepiece.model"
    ).read_bytes()
    results = json.loads((model_dir / "results.json").read_text())
    assert results["val_tokens"] == 500 and results["val_split_targets"] == bpe_dataset.val.tokens - 1
    assert "over the first 500 of " in result.stdout and "targets (--eval_tokens)" in result.stdout

    # A flag the dataset contradicts is refused before training starts.
    other = run_train(tmp_path / "other", *SHORT, f"--corpus={bpe_dataset.path}", "--tokenizer=char")
    assert other.returncode == 2
    assert other.stderr.strip() == (
        f"error: --tokenizer=char differs from the prepared dataset {bpe_dataset.path} (tokenizer=bpe): "
        "drop the flag, or prepare the corpus again with it"
    )


def test_a_corpus_file_that_changes_after_it_was_prepared(tmp_path, shakespeare):
    corpus = tmp_path / "texts"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"{i}.txt").write_text(shakespeare.text[i * 30_000 : (i + 1) * 30_000])
    model_dir = tmp_path / "run"
    first = run_train(model_dir, *SHORT, f"--corpus={corpus}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "prepare | done: " in first.stdout and (model_dir / "data" / "manifest.json").is_file()
    old = hashlib.sha256((corpus / "1.txt").read_bytes()).hexdigest()
    (corpus / "1.txt").write_text(shakespeare.text[30_000:60_000].upper())
    new = hashlib.sha256((corpus / "1.txt").read_bytes()).hexdigest()
    result = run_train(model_dir, "--max_steps=4")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: corpus {str(corpus)!r} changed since this run started in {model_dir} "
        f"({corpus / '1.txt'}: sha256 {old[:12]}... then, {new[:12]}... now): "
        "restore the text or start a new --model_dir"
    ]


def test_a_changed_or_damaged_dataset_is_one_line_and_keeps_the_checkpoints(tmp_path):
    """One run on a prepared dataset, then each way the dataset can go wrong under it."""
    dataset = prepare("tiny_shakespeare", tmp_path / "ds", tokens_per_shard=20_000, log=lambda line: None)
    model_dir = tmp_path / "run"
    assert run_train(model_dir, *SHORT, f"--corpus={dataset.path}").returncode == 0
    good = checkpoint_weights(model_dir / "checkpoints")

    # An edited manifest: the dataset is not the one the run started on.
    manifest = dataset.path / "manifest.json"
    original = manifest.read_bytes()
    before = hashlib.sha256(original).hexdigest()
    manifest.write_text(manifest.read_text().replace('"fraction": 0.1', '"fraction": 0.10'))
    result = run_train(model_dir, "--max_steps=4")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: the dataset {dataset.path} changed since this run started in {model_dir} (manifest sha256 "
        f"{before[:12]}... then, {hashlib.sha256(manifest.read_bytes()).hexdigest()[:12]}... now): "
        "restore it or start a new --model_dir"
    ]
    manifest.write_bytes(original)

    # Damaged shards: training starts, meets one, names it and keeps the last checkpoint.
    shards = sorted((dataset.path / "shards").glob("train-*.bin"))
    for shard in shards[1:-1]:  # the ends stay whole, so training starts and meets a damaged one
        shard.write_bytes(shard.read_bytes()[:-2])
    result = run_train(model_dir, "--max_steps=40")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: shard {dataset.path / 'shards' / 'train-'}") and last.endswith(
        " is truncated or damaged (its size or header is wrong): prepare the dataset again"
    )
    assert sorted(p.name for p in (model_dir / "checkpoints").glob("*.index")) == ["ckpt-2.index"]
    after = checkpoint_weights(model_dir / "checkpoints")
    assert all((good[k] == after[k]).all() for k in good)
    shards[0].unlink()  # a missing end is seen before training starts
    result = run_train(model_dir, "--max_steps=40")
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: shard {shards[0]} is missing: prepare the dataset again"
    )
