"""A converted GPT-2 fine-tunes on task examples with its own end-of-text id (50256's place)."""

import json

from tests.training.helpers import run_train

RECORDS = [{"prompt": f"Q: {w}?\nA:", "completion": f" {w.upper()}"} for w in ("ab", "cd", "ef", "gh") * 5]


def test_a_converted_gpt2_fine_tunes_on_examples_with_its_end_of_text(converted, tmp_path):
    trained = converted["huggingface"]
    eot = trained.tokenizer.eot_id
    assert eot is not None and trained.tokenizer.decode([eot]) == ""
    corpus = tmp_path / "qa.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    model_dir = tmp_path / "tuned"
    result = run_train(
        model_dir,
        f"--init_from={trained.model_dir}",
        f"--corpus={corpus}",
        "--seq_len=32",
        "--batch_size=4",
        "--max_steps=2",
        "--eval_batches=1",
        "--sample_tokens=0",
        "--jit_compile=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine-tuning from" in result.stdout
    # GPT-2's vocabulary already holds <|endoftext|>: no row is added.
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model"]["vocab_size"] == trained.config.model.vocab_size
    manifest = json.loads((model_dir / "data" / "manifest.json").read_text())
    assert manifest["examples"]["eot_id"] == eot
    results = json.loads((model_dir / "results.json").read_text())
    assert results["steps"] == 2 and results["completion_loss"] > 0
