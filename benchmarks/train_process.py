"""The default preset trained as whole processes: `python -m lm_keras.train` against keras-hub's fit.

Each round runs two processes one after the other, on the same prepared tiny Shakespeare and the
same number of steps of the `shakespeare_char_cpu` shape (4 layers, 4 heads, 128 wide, MLP 512,
context 64, batch 12, dropout 0; AdamW with the preset's settings and clipping):

- `ours`: `python -m lm_keras.train --preset=shakespeare_char_cpu --max_steps=STEPS` as a user
  runs it (XLA, its tf.data pipeline, one evaluation and checkpoint at the end); its steady
  rate is the trainer's own (`results.json`'s tokens/s: every step after the first).
- `keras_hub`: keras-hub's `GPT2CausalLM` of the same shape, `compile(jit_compile=True)` with the
  same optimizer, and `fit` on lm_keras's training windows of the same dataset for STEPS steps;
  its steady rate is timed by a callback from the 10th batch on (compilation excluded).

Reported per process: the steady tokens/s and the whole process's wall seconds (start-up, data,
compilation, training and, for ours, the final evaluation); medians over the rounds.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.train_process
"""

import json
import pathlib
import statistics
import subprocess
import sys
import time

from benchmarks import common

common.setup_environment()

PRESET = "shakespeare_char_cpu"
TARGET = 1.2  # ours at least 1.2x keras-hub's tokens/s under fit


def hub_child(args):
    """keras-hub's GPT2CausalLM trained by fit in this process; prints its record."""
    import keras
    import tensorflow as tf

    from benchmarks.train_throughput import hub_causal_lm
    from lm_keras import model_dir as md
    from lm_keras.data import train_dataset
    from lm_keras.training.warmup_cosine import WarmupCosine

    config = md.read_config(args.ours_dir)[0]  # the shape and optimizer of ours, trained before
    mc, tc = config.model, config.train
    split = md.run_dataset(args.ours_dir).train  # the same prepared dataset
    schedule = WarmupCosine(tc.learning_rate, tc.min_learning_rate, tc.warmup_steps, args.steps)
    causal_lm = hub_causal_lm(config, schedule)  # the same shape and optimizer settings
    mask = tf.ones((tc.batch_size, mc.seq_len), tf.bool)
    data = train_dataset(split, seq_len=mc.seq_len, batch_size=tc.batch_size, seed=tc.seed).map(
        lambda x, y: ({"token_ids": x, "padding_mask": mask}, y)
    )
    ends = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    causal_lm.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[Timer()])
    steady = ends[10:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    print(json.dumps({"tokens_per_sec": rate * tc.batch_size * mc.seq_len}), flush=True)


def timed(command):
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return result.stdout, time.monotonic() - started


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hub_child", action="store_true", help="(internal) the keras-hub process")
    parser.add_argument("--ours_dir", default="")
    args = parser.parse_args(argv)
    if args.hub_child:
        return hub_child(args)
    if args.quick:
        args.rounds, args.steps = 1, 30
    scratch = pathlib.Path(common.scratch_dir(prefix="bench_process_"))
    data = scratch / "data"  # prepared once, outside the timed processes
    timed([sys.executable, "-m", "lm_keras.prepare", "--corpus=tiny_shakespeare", f"--output_dir={data}"])
    records = {"ours": [], "keras_hub": []}
    for i in range(args.rounds):
        ours_dir = scratch / f"ours_{i}"
        flags = [
            f"--model_dir={ours_dir}",
            f"--preset={PRESET}",
            f"--corpus={data}",
            f"--max_steps={args.steps}",
        ]
        flags += [f"--eval_every={args.steps}", f"--checkpoint_every={args.steps}", "--sample_tokens=0"]
        _, wall = timed([sys.executable, "-m", "lm_keras.train", *flags])
        results = json.loads((ours_dir / "results.json").read_text())
        records["ours"].append({"tokens_per_sec": results["tokens_per_sec"], "wall_s": wall})
        command = [sys.executable, "-m", "benchmarks.train_process", "--hub_child", f"--ours_dir={ours_dir}"]
        out, wall = timed(command + [f"--steps={args.steps}"])
        records["keras_hub"].append({**json.loads(out.strip().splitlines()[-1]), "wall_s": wall})
        print(
            f"round {i + 1}/{args.rounds}: "
            + ", ".join(
                f"{name} {r[-1]['tokens_per_sec']:,.0f} tok/s ({r[-1]['wall_s']:.0f} s)"
                for name, r in records.items()
            ),
            flush=True,
        )
    summary = {
        name: {key: statistics.median(r[key] for r in rs) for key in ("tokens_per_sec", "wall_s")}
        for name, rs in records.items()
    }
    ratios = [
        o["tokens_per_sec"] / h["tokens_per_sec"] for o, h in zip(records["ours"], records["keras_hub"])
    ]
    summary["ours"]["vs_keras_hub"] = statistics.median(ratios)
    # The same steps: the whole processes' tokens/s ratio is the inverse of their wall times'.
    walls = [h["wall_s"] / o["wall_s"] for o, h in zip(records["ours"], records["keras_hub"])]
    summary["ours"]["whole_process_vs_keras_hub"] = statistics.median(walls)
    print(
        f"ours against keras-hub's fit: {summary['ours']['vs_keras_hub']:.2f}x (rounds: "
        + ", ".join(f"{r:.2f}x" for r in ratios)
        + ")",
        flush=True,
    )
    common.emit(
        "train_process",
        {"quick": args.quick, "preset": PRESET, "steps": args.steps, "records": records, "summary": summary},
        args.out,
    )


def rows(result):
    """RESULTS.md's row: the default preset's steady training rate against keras-hub's fit."""
    s = result["summary"]
    return [
        common.row(
            f"default preset as whole processes ({result['steps']} steps): training tokens/s against "
            "keras-hub's GPT2CausalLM under fit",
            (
                s["ours"]["vs_keras_hub"],
                f"{s['ours']['tokens_per_sec']:,.0f} vs "
                f"{s['keras_hub']['tokens_per_sec']:,.0f} ({s['ours']['vs_keras_hub']:.2f}x)",
            ),
            (">=", TARGET, f"{TARGET}x"),
        ),
        common.row(
            f"default preset as whole processes ({result['steps']} steps): wall time of keras-hub's fit "
            "process over ours (start-up, compilation and evaluation included)",
            (
                s["ours"]["whole_process_vs_keras_hub"],
                f"{s['keras_hub']['wall_s']:.0f} s vs {s['ours']['wall_s']:.0f} s "
                f"({s['ours']['whole_process_vs_keras_hub']:.2f}x)",
            ),
            (">=", TARGET, f"{TARGET}x"),
        ),
    ]


if __name__ == "__main__":
    main()
