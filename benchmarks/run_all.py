"""Runs every benchmark, one process each, and writes the table into RESULTS.md.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python benchmarks/run_all.py

Order: training throughput first (it measures the matmul ceiling in the same
rounds), then the step profile, the LSTMs, the input pipeline, generation, the
optional PyTorch peer (any Python with torch: `--torch_python` or
`$LM_KERAS_TORCH_PYTHON`), and last the 10-minute time-to-quality run. Each
script writes benchmarks/out/<name>.json; this script renders them into the
block of RESULTS.md between the `<!-- results:begin -->` and
`<!-- results:end -->` markers (the analysis around it is written by hand).
`--render_only` re-renders from the JSON files already there.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import common

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
TARGET_HUB_RATIO = 1.5
TARGET_MFU = 0.5
TARGET_CACHE_RATIO = 10.0
TARGET_LOSS = 1.60


def scripts(size, quick, torch_python, ttq_args):
    py = sys.executable
    flags = ["--size", size] + (["--quick"] if quick else [])
    runs = [
        ("train_throughput", [py, "train_throughput.py", *flags]),
        ("step_profile", [py, "step_profile.py", *flags]) if size == "cpu" else None,  # XLA:CPU thunk traces
        ("lstm", [py, "lstm.py", *flags]),
        ("pipeline", [py, "pipeline.py", *flags]),
        ("generation", [py, "generation.py", *flags]),
    ]
    if torch_python and size == "cpu":
        runs.append(("torch_peer", [torch_python, "torch_peer.py", *flags]))
    if ttq_args is not None:
        runs.append(("time_to_quality", [py, "time_to_quality.py", *flags, *ttq_args]))
    return [run for run in runs if run]


def load(name):
    path = common.OUT_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def pct(x):
    return f"{100 * x:.1f}%"


def render(size="cpu", ttq_name="time_to_quality_shakespeare_char_cpu_10min", run_log=None):
    tt = load(f"train_throughput_{size}")
    prof = load(f"step_profile_{size}")
    lstm = load(f"lstm_{size}")
    pipe = load(f"pipeline_{size}")
    gen = load(f"generation_{size}")
    ttq = load(ttq_name)
    torch_peer = load("torch_peer") if size == "cpu" else None
    out = []
    m = (tt or {}).get("machine", {})
    versions = m.get("versions", {})
    out.append(
        f"Run {tt['time'] if tt else '?'} on {m.get('cpu', '?')} ({m.get('nproc', '?')} cores, "
        f"{', '.join(m.get('cpu_flags', []))}, {m.get('memory_gib', '?')} GiB), "
        f"GPU: {m.get('gpu') or 'none'}; "
        f"TensorFlow {versions.get('tensorflow', '?')}, Keras {versions.get('keras', '?')}, "
        f"keras-hub {versions.get('keras_hub', '?')}."
    )
    if run_log:
        out.append(
            "Load average (1, 5, 15 min) when each script started: "
            + "; ".join(f"{name} {load_avg}" for name, load_avg in run_log)
        )
    targets = []
    if tt:
        c = tt["ceiling_flops"]
        out.append(
            "\n### Physical ceiling (large square matmuls through TensorFlow, "
            f"{tt['matmul_n']}x{tt['matmul_n']}, same rounds as the training figures)\n"
        )
        out.append(
            common.table(
                ["dtype", "GFLOP/s"],
                [["float32", f"{c['float32'] / 1e9:,.1f}"], ["bfloat16", f"{c['bfloat16'] / 1e9:,.1f}"]],
            )
        )
        s = tt["shape"]
        out.append(
            f"\n### Training throughput, `{'shakespeare_char_cpu' if size == 'cpu' else 'shakespeare_char'}` "
            f"shape ({s['num_layers']} layers, {s['num_heads']} heads, {s['hidden_dim']} wide, MLP "
            f"{s['mlp_dim']}, context {s['seq_len']}, batch {s['batch_size']}); model FLOPs/token "
            f"{tt['flops_per_token']:,}\n"
        )
        rows = []
        for name, v in tt["variants"].items():
            rows.append(
                [
                    f"`{name}`",
                    f"{v['tokens_per_sec']:,.0f}",
                    f"{v['ms_per_step']:.1f}",
                    pct(v["mfu_vs_float32_ceiling"]),
                    pct(v["mfu_vs_bfloat16_ceiling"]),
                    f"{v['vs_hub_xla_float32']:.2f}x" if v.get("vs_hub_xla_float32") else "n/a",
                ]
            )
        out.append(
            common.table(
                [
                    "variant",
                    "tokens/s",
                    "ms/step",
                    "MFU vs fp32 ceiling",
                    "MFU vs bf16 ceiling",
                    "vs keras-hub XLA fp32",
                ],
                rows,
            )
        )
        best = max(
            (v for k, v in tt["variants"].items() if k.startswith("ours_")), key=lambda v: v["tokens_per_sec"]
        )
        ours = tt["variants"].get("ours_xla_float32", best)
        if ours.get("vs_hub_xla_float32"):
            targets.append(
                [
                    "tokens/s vs keras-hub GPT2Backbone (XLA)",
                    f">= {TARGET_HUB_RATIO}x",
                    f"{ours['vs_hub_xla_float32']:.2f}x (ours XLA fp32); best of ours "
                    f"{best['vs_hub_xla_float32']:.2f}x",
                    "met"
                    if best["vs_hub_xla_float32"] >= TARGET_HUB_RATIO
                    else f"missed by {TARGET_HUB_RATIO / best['vs_hub_xla_float32']:.2f}x",
                ]
            )
        targets.append(
            [
                "MFU vs float32 matmul ceiling",
                f">= {pct(TARGET_MFU)}",
                pct(best["mfu_vs_float32_ceiling"]),
                "met"
                if best["mfu_vs_float32_ceiling"] >= TARGET_MFU
                else f"missed by {100 * (TARGET_MFU - best['mfu_vs_float32_ceiling']):.1f} points",
            ]
        )
    if torch_peer and not torch_peer.get("skipped"):
        out.append(
            f"\n### PyTorch peer (nanoGPT's model, eager, torch {torch_peer['torch']}, "
            f"{torch_peer['threads']} threads; separate process, same lock)\n"
        )
        out.append(
            common.table(
                ["variant", "tokens/s", "ms/step"],
                [
                    [f"`{k}`", f"{v['tokens_per_sec']:,.0f}", f"{v['ms_per_step']:.1f}"]
                    for k, v in torch_peer["variants"].items()
                ],
            )
        )
    if prof:
        out.append("\n### Where the XLA step's time goes (`step_profile.py`)\n")
        a = prof["ablation_ms_per_step"]
        whole = a["whole step (trainer)"]
        out.append(
            common.table(
                ["ablation", "ms/step", "vs whole step"],
                [[k, f"{v:.2f}", f"{v / whole:.2f}"] for k, v in a.items()],
            )
        )
        p = prof["profile"]
        out.append(
            f"\nProfile of {p['hlo_instructions']} HLO instructions ("
            + ", ".join(f"{n} {k}" for k, n in sorted(p["instructions_by_opcode"].items()))
            + f"); {p['wall_ms']:.1f} ms/step under the profiler; the matmuls run at "
            f"{p['matmul_gflops']:.0f} GFLOP/s.\n"
        )
        rows = sorted(p["by_category_ms"].items(), key=lambda kv: -kv[1])
        out.append(
            common.table(
                ["where (XLA thunks by model part)", "ms/step", "share of the step"],
                [[k, f"{v:.2f}", pct(v / p["wall_ms"])] for k, v in rows],
            )
        )
    if lstm:
        out.append("\n### LSTMs: characters learned per second\n")
        out.append(
            common.table(
                ["variant", "characters learned/s", "ms/step", "targets/step", "vs article fit"],
                [
                    [
                        f"`{k}`",
                        f"{v['chars_per_sec']:,.0f}",
                        f"{1000 / v['steps_per_sec']:.1f}",
                        f"{v['targets_per_step']:,}",
                        f"{v['vs_article_fit']:.2f}x",
                    ]
                    for k, v in lstm["variants"].items()
                ],
            )
        )
        out.append(f"\n`model.fit` start-up per call: {lstm['fit_startup_seconds']:.2f} s.")
    if pipe:
        out.append("\n### Input pipeline alone against the training step\n")
        out.append(
            common.table(
                [
                    "model",
                    "pipeline batches/s",
                    "step fed by pipeline (steps/s)",
                    "step on a fixed batch (steps/s)",
                    "pipeline / step",
                    "feeding cost",
                ],
                [
                    [
                        k,
                        f"{v['pipeline_batches_per_sec']:,.0f}",
                        f"{v['step_fed_per_sec']:,.2f}",
                        f"{v['step_fixed_per_sec']:,.2f}",
                        f"{v['pipeline_over_step']:,.0f}x",
                        f"{100 * v['feeding_cost']:+.1f}%",
                    ]
                    for k, v in pipe["models"].items()
                ],
            )
        )
    if gen:
        out.append(
            f"\n### Generation: {gen['new_tokens']} new tokens, greedy, context {gen['context']}, "
            f"shape {gen['shape']}\n"
        )
        rows = []
        for k, v in sorted(
            ((k, v) for k, v in gen["variants"].items() if isinstance(v, dict)),
            key=lambda kv: (kv[1]["batch"], kv[0]),
        ):
            rows.append(
                [
                    f"`{k.rsplit('_b', 1)[0]}`",
                    v["batch"],
                    f"{v['new_tokens_per_sec']:,.0f}",
                    f"{v['seconds_per_call']:.2f}",
                    f"{v['first_call_seconds']:.2f}" if v.get("first_call_seconds") else "n/a",
                    f"{v['vs_ours_cached_xla']:.3f}x" if v.get("vs_ours_cached_xla") else "n/a",
                    f"{v['vs_hub_xla']:.2f}x" if v.get("vs_hub_xla") else "n/a",
                ]
            )
        out.append(
            common.table(
                [
                    "variant",
                    "batch",
                    "new tokens/s",
                    "s/call",
                    "first call s (compile incl.)",
                    "vs ours cached XLA",
                    "vs keras-hub XLA",
                ],
                rows,
            )
        )
        for b in (1, 8):
            r = gen["variants"].get(f"cached_over_uncached_b{b}")
            if r:
                targets.append(
                    [
                        f"cached / uncached, batch {b}, {gen['new_tokens']} tokens",
                        f">= {TARGET_CACHE_RATIO:.0f}x",
                        f"{r:.1f}x",
                        "met" if r >= TARGET_CACHE_RATIO else f"missed by {TARGET_CACHE_RATIO / r:.2f}x",
                    ]
                )
    if ttq:
        out.append(f"\n### Time to quality: preset `{ttq['preset']}`\n")
        mc = ttq["config"]["model"]
        tc = ttq["config"]["train"]
        out.append(
            f"{mc['num_layers']} layers, {mc['num_heads']} heads, {mc['hidden_dim']} wide, context "
            f"{mc['seq_len']}, batch {tc['batch_size']}, dropout {mc['dropout']}, {tc['max_steps']} steps, "
            f"lr {tc['learning_rate']} cosine to {tc['min_learning_rate']}, warmup {tc['warmup_steps']}; "
            f"{ttq['parameters']:,} parameters.\n"
        )
        reached = ttq.get("target_reached_at")
        out.append(
            common.table(
                [
                    "training time",
                    "tokens/s",
                    "full val loss (nats/char)",
                    "bits/char",
                    f"first estimate <= {ttq['target']}",
                ],
                [
                    [
                        f"{ttq['train_seconds']:.0f} s",
                        f"{ttq['tokens_per_sec']:,.0f}",
                        f"{ttq['val_loss']:.4f}",
                        f"{ttq['val_bits_per_char']:.3f}",
                        (f"step {reached['step']}, {reached['elapsed']:.0f} s" if reached else "not reached"),
                    ]
                ],
            )
        )
        curve = ttq.get("curve", [])
        if curve:
            out.append(
                "\nPeriodic estimates (20 batches): "
                + ", ".join(f"{c['step']}: {c['val_loss']:.3f}" for c in curve)
            )
        if size == "cpu":
            targets.append(
                [
                    "validation loss after 10 minutes (moonshot)",
                    f"<= {TARGET_LOSS}",
                    f"{ttq['val_loss']:.4f} in {ttq['train_seconds']:.0f} s",
                    "met"
                    if ttq["val_loss"] <= TARGET_LOSS
                    else f"missed by {ttq['val_loss'] - TARGET_LOSS:.3f} nats",
                ]
            )
    if targets:
        out.insert(
            2 if run_log else 1,
            "\n### Targets\n\n" + common.table(["target", "goal", "measured", "verdict"], targets),
        )
    return "\n".join(out) + "\n"


def write_results(text, path):
    path = common.BENCH_DIR / path
    current = path.read_text() if path.is_file() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in current:
        current += f"\n{BEGIN}\n{END}\n"
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--torch_python", default=os.environ.get("LM_KERAS_TORCH_PYTHON", ""))
    parser.add_argument("--skip_ttq", action="store_true", help="leave out the time-to-quality run")
    parser.add_argument("--ttq_args", default="", help="arguments for time_to_quality.py")
    parser.add_argument("--only", default="", help="comma-separated subset of scripts")
    parser.add_argument("--render_only", action="store_true")
    parser.add_argument(
        "--results", default=None, help="the file to write (default RESULTS.md / RESULTS_GPU.md)"
    )
    args = parser.parse_args()
    results_file = args.results or ("RESULTS.md" if args.size == "cpu" else "RESULTS_GPU.md")
    ttq_args = None if args.skip_ttq else args.ttq_args.split()
    default_ttq = "shakespeare_char_cpu_10min" if args.size == "cpu" else "shakespeare_char"
    ttq_preset = default_ttq
    if ttq_args and "--preset" in " ".join(ttq_args):
        ttq_preset = " ".join(ttq_args).split("--preset", 1)[1].strip(" =").split()[0]
    elif ttq_args is not None:
        ttq_args += ["--preset", default_ttq] + (
            ["--target", "1.47", "--budget_seconds", "1800"] if args.size == "gpu" else []
        )
    run_log = []
    if not args.render_only:
        only = set(filter(None, args.only.split(",")))
        for name, command in scripts(args.size, args.quick, args.torch_python, ttq_args):
            if only and name not in only:
                continue
            run_log.append((name, common.load_average()))
            print(f"=== {name}: {' '.join(command)} (load {common.load_average()})", flush=True)
            t0 = time.monotonic()
            done = subprocess.run(command, cwd=common.BENCH_DIR)
            print(f"=== {name}: exit {done.returncode} after {time.monotonic() - t0:.0f} s", flush=True)
        (common.OUT_DIR / f"run_log_{args.size}.json").write_text(json.dumps(run_log))
    else:
        log_path = common.OUT_DIR / f"run_log_{args.size}.json"
        run_log = json.loads(log_path.read_text()) if log_path.is_file() else None
    text = render(args.size, f"time_to_quality_{ttq_preset}", run_log)
    print(text)
    print(f"written into {write_results(text, results_file)}")


if __name__ == "__main__":
    main()
