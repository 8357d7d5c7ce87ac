"""What the benchmarks share: set-up, lm_keras's timed training step, alternated timing, FLOP
counts, and the JSON each one writes with the rows it contributes to RESULTS.md.

Every benchmark measures its variants in one process, alternating them round by round
after a warm-up, and reports the median over rounds; ratios between variants of one round
are the figures to trust on a shared, noisy machine.

This module imports no TensorFlow at module level, so the runner and
`tests/test_benchmarks_smoke.py` can render results quickly.
"""

import argparse
import atexit
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SHARED_DATA = REPO.parent / "shared" / "data"
OUT_DIR = BENCH_DIR / "out"


def setup_environment():
    """Quiets TensorFlow and finds the shared corpus. Call before importing TF."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "LM_KERAS_DATA_DIR" not in os.environ and (SHARED_DATA / "tinyshakespeare.txt").is_file():
        os.environ["LM_KERAS_DATA_DIR"] = str(SHARED_DATA)


def scratch_dir(prefix):
    """A fresh temporary directory, removed when the process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def arg_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=5, help="alternation rounds; the median is reported")
    parser.add_argument("--seconds", type=float, default=2.0, help="target seconds per variant per round")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and one short round: checks that it works"
    )
    parser.add_argument(
        "--size", choices=("cpu", "gpu"), default="cpu", help="model sizes: this CPU or a GPU"
    )
    parser.add_argument(
        "--out", default=None, help="write the JSON here (default benchmarks/out/<name>.json)"
    )
    return parser


# ------------------------------------------------------------------ machine


def machine_info():
    """What the figures ran on: CPU model, cores, load, memory, GPU, library versions."""
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        models = [
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")
        ]
        info["cpu"] = models[0] if models else platform.processor()
        flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
        info["cpu_flags"] = sorted(
            f
            for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")
            if f" {f} " in flags + " "
        )
    except OSError:
        info["cpu"] = platform.processor()
    info["load_average"] = load_average()
    try:
        meminfo = pathlib.Path("/proc/meminfo").read_text().split()
        info["memory_gib"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    versions = {}
    for name in ("tensorflow", "keras", "keras_hub", "numpy"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    info["versions"] = versions
    info["env"] = {
        k: os.environ[k]
        for k in ("XLA_FLAGS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS")
        if k in os.environ
    }
    info["gpu"] = gpu_name()
    return info


def load_average():
    try:
        return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def gpu_name():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------- lm_keras's step


def trainer_for(config, model_dir, preset=None, log=None):
    """A Trainer of `config` in a fresh `model_dir`, as `python -m lm_keras.train` builds it.

    The one place the benchmarks and experiments build a Trainer (a change to its
    constructor changes only this function). `log` None keeps it quiet.
    """
    from lm_keras.model_dir import prepare_run
    from lm_keras.training.trainer import Trainer

    log = log or (lambda line: None)
    config, dataset = prepare_run(model_dir, config, preset=preset, log=log)
    return Trainer(config, dataset, model_dir, log=log)


def timed_trainer(config, model_dir):
    """lm_keras's training step exactly as `python -m lm_keras.train` runs it, ready to time:
    its data, model, optimizer and compiled step (AdamW or Muon, clipping, XLA as
    `jit_compile` says), in a fresh `model_dir`.

    Returns:
        (trainer, step, batches): `step(batch)` runs one training step and returns the
        loss tensor (reading it with `float` synchronises); `batches()` is a new iterator
        over the trainer's own distributed batches.
    """
    import keras

    trainer = trainer_for(config, model_dir)
    start = trainer.prepare()
    keras.mixed_precision.set_global_policy("float32")  # the next model builds under its own policy
    return trainer, trainer.make_train_step(), lambda: trainer.train_batches(start)


# ------------------------------------------------------------------- timing


def alternate(variants, rounds=5, seconds=2.0, warmup=2, log=print, repeats=None):
    """Times callables side by side: warm-up, then `rounds` rounds that run each variant in turn.

    Args:
        variants: dict name -> callable `f()` that runs one unit of work to completion
            (synchronised: it must return only when the work is done) and returns the
            number of units it did (tokens, steps...) or None for 1.
        rounds: how many rounds; each variant runs once per round.
        seconds: roughly how long each variant runs per round; the repeat count is
            fixed per variant from its warm-up speed, so every round repeats the same work.
        warmup: calls per variant before timing (compilation, caches, autotuning).
        repeats: calls per variant per round; None sets them from one timed call after
            the warm-up (about `seconds` of work).

    Returns:
        dict name -> {"median": units/s, "min": ..., "max": ..., "rounds": [units/s...],
        "seconds_per_call": median seconds of one call, "first_call_seconds": the first
        warm-up call, tracing and compiling included}.
    """
    fixed, repeats, first_call = repeats, {}, {}
    for name, fn in variants.items():
        for i in range(warmup):
            t0 = time.perf_counter()
            fn()
            if i == 0:
                first_call[name] = time.perf_counter() - t0  # tracing and compilation included
        if fixed:
            repeats[name] = fixed
            continue
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-6)
        repeats[name] = max(1, int(round(seconds / one)))
    rates = {name: [] for name in variants}
    call_seconds = {name: [] for name in variants}
    for r in range(rounds):
        for name, fn in variants.items():
            units = 0.0
            t0 = time.perf_counter()
            for _ in range(repeats[name]):
                done = fn()
                units += 1.0 if done is None else float(done)
            elapsed = time.perf_counter() - t0
            rates[name].append(units / elapsed)
            call_seconds[name].append(elapsed / repeats[name])
        if log:
            log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {rates[n][-1]:,.0f}" for n in variants))
    results = {name: summarize(rates[name], call_seconds[name]) for name in variants}
    for name, seconds in first_call.items():
        results[name]["first_call_seconds"] = seconds
    return results


def summarize(rates, call_seconds=None):
    result = {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "rounds": [round(x, 3) for x in rates],
    }
    if call_seconds:
        result["seconds_per_call"] = statistics.median(call_seconds)
    return result


# -------------------------------------------------------------------- FLOPs


def transformer_flops_per_token(num_layers, hidden_dim, mlp_dim, seq_len, vocab_size):
    """Training FLOPs per token of a GPT (nanoGPT's / PaLM's convention).

    6 N for the forward and backward passes through the N weights that multiply
    activations (per block: QKV 3 d^2, output d^2, MLP 2 d m; plus the tied output
    head V d; embedding lookups and norms are not counted), plus 12 L T d for the
    attention products Q K^T and A V (the full T x T, masked half included, as
    nanoGPT's estimate_mfu counts them).
    """
    n = num_layers * (4 * hidden_dim**2 + 2 * hidden_dim * mlp_dim) + vocab_size * hidden_dim
    return 6 * n + 12 * num_layers * seq_len * hidden_dim


def matmul_flops(n):
    return 2 * n**3


def matmul_ceiling_variants(n=4096, dtypes=("float32", "bfloat16")):
    """{"matmul_<dtype>": callable} for `alternate`: one n x n x n product each, through
    TensorFlow's own kernels (a plain `tf.function`, as TF picks them: oneDNN on x86).
    Rates come out in FLOP/s when each call reports `matmul_flops(n)` units."""
    import tensorflow as tf

    variants = {}
    for dtype in dtypes:
        a = tf.cast(tf.random.normal((n, n), seed=1), dtype)
        b = tf.cast(tf.random.normal((n, n), seed=2), dtype)

        @tf.function
        def product(a, b):
            return tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))  # a scalar: no large copy out

        def run(product=product, a=a, b=b):
            product(a, b).numpy()
            return matmul_flops(n)

        variants[f"matmul_{dtype}"] = run
    return variants


# ------------------------------------------------------------------- output


def emit(name, payload, out=None):
    """Writes the benchmark's JSON (default benchmarks/out/<name>.json) and prints where."""
    payload = {
        "benchmark": name,
        "machine": machine_info(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **payload,
    }
    path = pathlib.Path(out) if out else OUT_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"{name}: wrote {path}", flush=True)
    return path


def row(figure, measured, goal=None):
    """One row of RESULTS.md's current table.

    Args:
        figure: what was measured, in words.
        measured: (value, text): the number and how it reads ("0.95x").
        goal: None, or (op, target, text): the target the value is judged by, op one of
            ">=", "<=" (shown before the text) or "==" (the text alone: "holds").
    """
    value, text = measured
    if goal is None:
        return {"figure": figure, "measured": text, "goal": "", "verdict": ""}
    op, target, goal_text = goal
    met = {">=": value >= target, "<=": value <= target, "==": value == target}[op]
    shown = goal_text if op == "==" else f"{op} {goal_text}"
    return {"figure": figure, "measured": text, "goal": shown, "verdict": "met" if met else "missed"}


def table(headers, rows):
    """A Markdown table; numbers are formatted by the caller."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
