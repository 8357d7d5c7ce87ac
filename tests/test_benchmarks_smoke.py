"""The benchmark scripts' arithmetic and plumbing (fast; no timing is asserted anywhere)."""

import json
import math
import pathlib
import subprocess
import sys

import pytest

from benchmarks import common, run_all
from experiments import ablations, quality_spread

REPO = pathlib.Path(__file__).resolve().parents[1]

SCRIPTS = [
    "benchmarks.train_throughput",
    "experiments.step_profile",
    "experiments.lstm",
    "benchmarks.pipeline",
    "benchmarks.datasets",
    "benchmarks.generation",
    "experiments.time_to_quality",
    "experiments.torch_peer",
    "experiments.quality_spread",
    "experiments.ablations",
    "experiments.decode_profile",
]


def test_transformer_flops_per_token_matches_hand_count():
    # shakespeare_char_cpu: 4 blocks of QKV 128x384, output 128x128, MLP 128x512 and 512x128;
    # tied head 66x128; attention 2 products of 64x128 per token per block, forward.
    weights = 4 * (128 * 384 + 128 * 128 + 2 * 128 * 512) + 66 * 128
    attention = 4 * 2 * 64 * 128
    assert (
        common.transformer_flops_per_token(4, 128, 512, 64, 66) == 3 * 2 * (weights + attention) == 5_162_496
    )
    # nanoGPT's shakespeare_char: 6 x 384, context 256, vocab 65.
    assert (
        common.transformer_flops_per_token(6, 384, 1536, 256, 65)
        == 6 * (6 * 12 * 384**2 + 65 * 384) + 12 * 6 * 256 * 384
    )


def test_lstm_and_matmul_flops():
    assert common.lstm_flops_per_step(64, 256) == 2 * 4 * 256 * 320
    assert common.matmul_flops(4096) == 2 * 4096**3


def test_alternate_runs_every_variant_once_per_round_in_turn_and_reports_medians():
    calls = []

    def variant(name, units):
        def run():
            calls.append(name)
            return units

        return run

    results = common.alternate(
        {"a": variant("a", 10), "b": variant("b", None)}, rounds=3, warmup=1, repeats=2, log=None
    )
    # warm-up a, b; then three rounds of (a, a, b, b)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert set(results) == {"a", "b"}
    for r in results.values():
        assert len(r["rounds"]) == 3 and r["min"] <= r["median"] <= r["max"]
    assert results["a"]["median"] > results["b"]["median"]  # 10 units per call against 1


def test_table_is_markdown():
    assert common.table(["x", "y"], [[1, "2"]]).splitlines() == ["| x | y |", "| --- | --- |", "| 1 | 2 |"]


def test_write_results_replaces_only_the_generated_block(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "BENCH_DIR", tmp_path)
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Results\n\nintro\n\n{run_all.BEGIN}\nold table\n{run_all.END}\n\n## Analysis\nkept\n")
    run_all.write_results("new table\n", "RESULTS.md")
    text = path.read_text()
    assert "old table" not in text and "new table" in text
    assert text.startswith("# Results\n\nintro\n") and text.endswith("## Analysis\nkept\n")


def test_render_reports_targets_from_json(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "OUT_DIR", tmp_path)
    variant = {
        "tokens_per_sec": 20000.0,
        "ms_per_step": 38.4,
        "mfu_vs_float32_ceiling": 0.5,
        "mfu_vs_bfloat16_ceiling": 0.25,
        "vs_hub_xla_float32": 1.0,
    }
    (tmp_path / "train_throughput_cpu.json").write_text(
        json.dumps(
            {
                "time": "now",
                "machine": {"cpu": "test", "nproc": 2},
                "matmul_n": 4096,
                "ceiling_flops": {"float32": 2e11, "bfloat16": 4e11},
                "flops_per_token": 5162496,
                "shape": {
                    "num_layers": 4,
                    "num_heads": 4,
                    "hidden_dim": 128,
                    "mlp_dim": 512,
                    "seq_len": 64,
                    "batch_size": 12,
                },
                "variants": {"ours_xla_float32": variant, "hub_xla_float32": variant},
            }
        )
    )
    text = run_all.render("cpu")
    assert "| float32 | 200.0 |" in text
    assert "missed by 1.50x" in text  # 1.0x against a 1.5x target
    assert "| MFU vs float32 matmul ceiling | >= 50.0% | 50.0% | met |" in text


def test_ablation_table_means_spreads_and_differences_from_the_base():
    def run(variant, seed, loss):
        return dict(
            variant=variant,
            seed=seed,
            val_loss=loss,
            parameters=804_224,
            tokens_per_sec=19_200.0,
            ms_per_step=40.0,
            wall_seconds=90.0,
        )

    runs = [run("base", 1, 1.80), run("muon", 1, 1.70), run("base", 2, 1.76), run("muon", 2, 1.72)]
    lines = ablations.render(runs, [1, 2]).splitlines()
    assert lines[2].startswith(
        "| `base` | (lr 3e-3 AdamW, cosine) | 804,224 | 1.8000 / 1.7600 | 1.7800 +- 0.028 |  |"
    )
    assert lines[3].startswith(
        "| `muon` | optimizer=muon | 804,224 | 1.7000 / 1.7200 | 1.7100 +- 0.014 | -0.070 |"
    )
    assert lines[3].endswith("| 19,200 | 40.0 | 90 |")
    assert len(lines) == 4  # variants without runs have no row
    # The chosen combination is the modern preset's recipe, less the base's learning rates.
    from lm_keras.config import MODERN_RECIPE, PRESETS

    modern = PRESETS["shakespeare_char_cpu_modern"]
    chosen = ablations.VARIANTS["helpful_model_muon"]
    assert {**modern, **chosen} == modern
    recipe = {k: v for k, v in MODERN_RECIPE.items() if k not in ablations.BASE}
    assert recipe == {**chosen, "schedule": "cosine"}  # cosine is the base's schedule
    assert {k: modern[k] for k in ablations.BASE} == ablations.BASE


def test_quality_spread_estimator_statistics():
    import numpy as np

    rng = np.random.default_rng(0)
    constant = quality_spread.estimator_spread([1.9] * 100, draws=50, rng=rng)
    assert constant["pool_mean"] == pytest.approx(1.9) and constant["estimate_std"] == pytest.approx(
        0.0, abs=1e-12
    )
    assert constant["share_at_or_below_nanogpt_figure"] == 0.0
    # Windows of loss 1.7 or 2.1 with equal odds: a draw averages 240 of them, so its standard
    # deviation is 0.2 / sqrt(240), and it is <= 1.8857 when at most 111 of them are 2.1.
    two = quality_spread.estimator_spread([1.7, 2.1] * 500, draws=20_000, rng=rng)
    assert two["estimate_std"] == pytest.approx(0.2 / 240**0.5, rel=0.03)
    # About normal: the 5% and 95% points are 1.645 standard deviations from the mean.
    assert two["estimate_p05"] == pytest.approx(1.9 - 1.645 * 0.2 / 240**0.5, abs=0.002)
    assert two["estimate_p95"] == pytest.approx(1.9 + 1.645 * 0.2 / 240**0.5, abs=0.002)
    exact = sum(math.comb(240, k) for k in range(112)) / 2**240
    assert two["share_at_or_below_nanogpt_figure"] == pytest.approx(exact, abs=0.01)


def test_quality_spread_torch_schedule_equals_the_trainers():
    from lm_keras.training.warmup_cosine import WarmupCosine

    schedule = WarmupCosine(1e-3, 1e-4, warmup_steps=100, decay_steps=2000)
    for step in (0, 1, 99, 100, 101, 1000, 1999, 2000, 2001):
        assert quality_spread.nanogpt_lr(step) == pytest.approx(float(schedule(step)), rel=1e-6)


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_start_and_describe_themselves(script):
    done = subprocess.run(
        [sys.executable, "-m", script, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
