"""The maintained benchmarks run in their quickest mode, and the runner renders their rows.

No timing is asserted anywhere: the figures of a `--quick` run mean nothing. What is
asserted is the arithmetic (FLOPs, the alternation), the JSON each benchmark writes and
the exact rows RESULTS.md gets from it.
"""

import importlib
import json
import math
import subprocess
import sys

import pytest

from benchmarks import BENCHMARKS, common, run_all
from experiments import ablations, quality_spread
from tests.training.helpers import REPO


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


# ------------------------------------------------------------------ the runner

MACHINE = {"cpu": "AMD EPYC", "nproc": 2, "gpu": None}


def throughput_result(ours, hub):
    def variant(tokens_per_sec, mfu, vs_hub):
        return {"tokens_per_sec": tokens_per_sec, "mfu_vs_float32_ceiling": mfu, "vs_hub_xla_float32": vs_hub}

    return {
        "time": "2026-11-29 06:57:43 UTC",
        "machine": MACHINE,
        "preset": "shakespeare_char_cpu",
        "ceiling_flops": {"float32": 218.7e9, "bfloat16": 389.1e9},
        "variants": {
            "ours_xla_float32": variant(ours, 0.447, ours / hub),
            "ours_graph_float32": variant(13_636.0, 0.322, 13_636.0 / hub),
            "hub_xla_float32": variant(hub, 0.468, 1.0),
        },
    }


def test_render_rows_are_the_benchmarks_rows_with_goal_verdict_and_date():
    rows = run_all.render_rows("train_throughput", throughput_result(18_921.0, 19_833.0))
    when = "2026-11-29, AMD EPYC, 2 cores"
    assert rows == [
        f"| train_throughput | tokens/s, `shakespeare_char_cpu`, `ours_xla_float32` (the fastest of ours) "
        f"| 18,921 |  |  | {when} |",
        "| train_throughput | MFU of `ours_xla_float32`, against the float32 matmul ceiling (218.7 GFLOP/s) "
        f"| 44.7% | >= 50% | missed | {when} |",
        "| train_throughput | `ours_xla_float32` against keras-hub's GPT2Backbone in the same loop "
        f"(XLA, float32) | 0.95x | >= 1.5x | missed | {when} |",
    ]
    met = run_all.render_rows("train_throughput", throughput_result(40_000.0, 20_000.0))[2]
    assert met.endswith(f"| 2.00x | >= 1.5x | met | {when} |")


def test_write_results_replaces_only_the_rows_of_what_ran(tmp_path):
    path = tmp_path / "RESULTS.md"
    header = "| benchmark | figure | measured | goal | verdict | measured on |\n|" + " --- |" * 6
    path.write_text(
        f"# Results\n\nintro\n\n{run_all.BEGIN}\n{header}\n"
        "| experiments.ablations | loss | 1.5657 | <= 1.70 | met | 2026-12-02, Intel Xeon, 2 cores |\n"
        "| train_throughput | old row | 1 |  |  | 2026-11-01, AMD EPYC, 2 cores |\n"
        "| generation | kept row | 2 |  |  | 2026-11-29, AMD EPYC, 2 cores |\n"
        f"{run_all.END}\n\n## History\nkept\n"
    )
    rendered = run_all.render_rows("train_throughput", throughput_result(18_921.0, 19_833.0))
    run_all.write_results({"train_throughput": rendered}, path)
    text = path.read_text()
    assert text.startswith(f"# Results\n\nintro\n\n{run_all.BEGIN}\n{header}\n")
    assert text.endswith(f"{run_all.END}\n\n## History\nkept\n")
    rows = text.split(run_all.BEGIN)[1].split(run_all.END)[0].splitlines()[3:]
    # The maintained benchmarks first, in BENCHMARKS' order; then the other rows as they were.
    assert rows == [
        *rendered,
        "| generation | kept row | 2 |  |  | 2026-11-29, AMD EPYC, 2 cores |",
        "| experiments.ablations | loss | 1.5657 | <= 1.70 | met | 2026-12-02, Intel Xeon, 2 cores |",
    ]


def test_results_md_opens_with_the_current_table_every_row_dated():
    text = (REPO / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    block = text.split(run_all.BEGIN)[1].split(run_all.END)[0]
    assert text.index(run_all.BEGIN) < text.index("\n## ")  # the table comes before the history
    rows = block.strip().splitlines()[2:]
    assert len(rows) >= 20
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 6 and cells[4] in ("met", "missed", ""), row
        assert (cells[3] == "") == (cells[4] == ""), row  # a verdict exactly where there is a goal
        assert cells[5][:4] == "2026" and ", " in cells[5], row  # the date and the machine


# ---------------------------------------------------- each benchmark, --quick


@pytest.fixture(autouse=True)
def _shared_corpus():
    common.setup_environment()


def run_quick(name, tmp_path, *flags):
    path = tmp_path / f"{name}.json"
    code = importlib.import_module(f"benchmarks.{name}").main(["--quick", "--out", str(path), *flags])
    result = json.loads(path.read_text())
    assert result["benchmark"] == name and result["quick"] is True
    rows = run_all.render_rows(name, json.loads(json.dumps(result)))
    assert rows and all(r.startswith(f"| {name} | ") and r.count(" | ") == 5 for r in rows), rows
    return code, result, rows


def test_train_throughput_quick(tmp_path):
    from benchmarks.train_throughput import TINY

    _, result, rows = run_quick("train_throughput", tmp_path)
    assert set(result["variants"]) == {"ours_graph_float32", "hub_graph_float32"}
    vocab = result["shape"]["vocab_size"]
    assert result["flops_per_token"] == common.transformer_flops_per_token(1, 32, 128, 32, vocab)
    assert {k: result["shape"][k] for k in TINY} == TINY
    assert len(rows) == 2  # no keras-hub XLA figure to compare with in --quick


def test_pipeline_quick(tmp_path):
    _, result, rows = run_quick("pipeline", tmp_path)
    assert {k: m["tokens_per_batch"] for k, m in result["models"].items()} == {
        "transformer": 4 * 32,
        "documented_lstm": 8 * 16,
    }
    assert len(rows) == 4


def test_generation_quick(tmp_path):
    _, result, rows = run_quick("generation", tmp_path)
    kinds = ("ours_cached_graph", "exported", "hub_graph")
    assert set(result["variants"]) == {f"{k}_b{b}" for k in kinds for b in (1, 2)}
    assert result["new_tokens"] == 8 and result["context"] == 32
    # Without XLA's variants (--quick), the rows compare the graph ones; no uncached figure.
    assert [r.split(" | ")[1] for r in rows] == [
        "`ours_cached_graph` / keras-hub's `GPT2CausalLM.generate` (`hub_graph`), batch 1",
        "the export (`exported`) / in-process `ours_cached_graph`, batch 1",
        "`ours_cached_graph` / keras-hub's `GPT2CausalLM.generate` (`hub_graph`), batch 2",
        "the export (`exported`) / in-process `ours_cached_graph`, batch 2",
        "new tokens/s at batch 2 / batch 1, `ours_cached_graph`",
    ]


def test_gpt2_quick(tmp_path):
    _, result, rows = run_quick("gpt2", tmp_path)
    # The same shape in both: the parameter counts agree to the last one.
    assert result["parameters"]["ours"] == result["parameters"]["keras_hub"]
    assert set(result["variants"]) == {
        "ours_train",
        "hub_train",
        "hub_fit_train",
        "ours_generate",
        "hub_generate",
        "exported",
    }
    assert result["variants"]["ours_train"]["vs_keras_hub_fit"] > 0
    assert len(rows) == 3


# The two benchmarks that start TensorFlow processes of their own (train runs, servers) took
# 59 s and 38 s in --quick on the shared 2-core machine, where the four above take 18-34 s
# (108 s for this module's default tests): they run with -m slow. The default suite runs the
# load test's own code in tests/test_serve_cli.py.
@pytest.mark.slow
def test_datasets_quick(tmp_path):
    _, result, rows = run_quick("datasets", tmp_path, "--scratch", str(tmp_path / "scratch"))
    ((name, size),) = result["sizes"].items()
    assert name == "0.002GB" and size["bytes"] == 2_000_000 and size["shard_files"] >= 1
    assert size["steps_per_sec"] > 0 and size["first_step_seconds"] > 0
    assert not (tmp_path / "scratch").exists()
    assert len(rows) == 5


@pytest.mark.slow  # a train process and a keras-hub fit process
def test_train_process_quick(tmp_path):
    _, result, rows = run_quick("train_process", tmp_path)
    assert len(result["records"]["ours"]) == len(result["records"]["keras_hub"]) == 1
    assert result["summary"]["ours"]["vs_keras_hub"] > 0 and len(rows) == 2


@pytest.mark.slow  # 4 tiny training runs and their scoring: a minute on the shared machine
def test_tasks_quick(tmp_path):
    _, result, rows = run_quick("tasks", tmp_path)
    assert [(r["task"], r["init"]) for r in result["runs"]] == [
        ("name", "pretrained"),
        ("name", "scratch"),
        ("addition", "scratch"),
    ]
    assert all(0 <= r["exact_match"] <= 1 and r["examples"] == 200 for r in result["runs"])
    assert len(rows) == 4  # name's comparison, the best gain, addition's exact match and time


@pytest.mark.slow
def test_serve_load_quick(tmp_path):
    code, result, rows = run_quick("serve_load", tmp_path)
    assert code == 0 and result["load"]["holds"], result["load"]["problems"]
    assert set(result["batching"]) == {
        "one_client_at_a_time",
        "7_clients_batched",
        "7_clients_each_alone",
        "rounds",
    }
    assert [r.split(" | ")[4] for r in rows][:1] == ["met"]


def test_run_all_checks_its_flags_before_running_anything():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_all", "--only=train_throughput,nope"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2 and "--only: unknown benchmarks ['nope']" in done.stderr
    assert tuple(BENCHMARKS) == (
        "train_throughput",
        "train_process",
        "pipeline",
        "datasets",
        "generation",
        "gpt2",
        "serve_load",
        "tasks",
    )


# ----------------------------------------------- what tests hold of experiments


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


def test_the_ablation_record_renders_the_chosen_recipe_row():
    runs = [json.loads(line) for line in ablations.RUNS.read_text().splitlines()]
    assert len(runs) == 16 * 3
    row = next(
        r for r in ablations.render(runs, list(ablations.SEEDS)).splitlines() if "helpful_model_muon" in r
    )
    assert "| 1.5621 / 1.5658 / 1.5694 | 1.5657 +- 0.004 | -0.211 |" in row


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
