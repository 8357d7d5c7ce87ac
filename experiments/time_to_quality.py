"""Time to quality: the validation loss a preset reaches, and when.

Trains a preset with lm_keras's trainer exactly as `python -m lm_keras.train`
does (same Trainer, fresh model directory), then reports the full-validation-split
loss (nats/char for the char tokenizer), the training wall time (the trainer's
own clock: the loop, periodic evaluations and checkpoints; not the final
full-split evaluation or the sample), and the first periodic estimate at or
below `--target` with the time it was reached.

On this 2-core CPU machine: `--preset=shakespeare_char_cpu_10min` (the preset made
for a 10-minute budget; see RESULTS.md). On a GPU (benchmarks/gpu.sh):
`--preset=shakespeare_char --target=1.47` (nanoGPT: about 3 minutes on an A100).

`--versus=PRESET` trains a second preset after the first in the same run (same
machine, same hour) and reports the ratio of the second's time to the target to
the first's whole training time. The modern recipe against the article's GPT,
with the target where the 10-minute preset ends:

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.time_to_quality
    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.time_to_quality \
        --versus=shakespeare_char_cpu_10min_modern --target=1.526
"""

import json
import os
import shutil
import time

from benchmarks import common

common.setup_environment()


def parse_overrides(items):
    from lm_keras.config import FLAG_TYPES

    out = {}
    for item in items:
        name, _, value = item.partition("=")
        kind = FLAG_TYPES.get(name)
        if kind in (bool, "bool"):
            out[name] = value.lower() in ("1", "true", "yes")
        elif kind in (int, "int"):
            out[name] = int(value)
        elif kind in (float, "float"):
            out[name] = float(value)
        else:
            out[name] = value
    return out


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shakespeare_char_cpu_10min")
    parser.add_argument("--budget_seconds", type=float, default=600.0, help="the training time allowed")
    parser.add_argument("--target", type=float, default=1.60, help="the loss to reach (nats/token)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config overrides")
    parser.add_argument("--model_dir", default=None, help="default benchmarks/out/ttq_<preset>")
    parser.add_argument("--versus", default=None, help="a second preset, trained after the first")
    args = parser.parse_args()

    overrides = parse_overrides(args.set)
    if args.quick:
        overrides = {"max_steps": 20, "eval_every": 10, "eval_batches": 2, "sample_tokens": 0, **overrides}
    summary = train_and_summarize(args.preset, overrides, args, args.model_dir)
    name = f"time_to_quality_{args.preset}"
    if args.versus:
        versus = train_and_summarize(args.versus, overrides, args, None)
        reached = versus["target_reached_at"]
        summary["versus"] = versus
        # The second preset's time to the target over the first's whole training time.
        summary["time_ratio"] = reached["elapsed"] / summary["train_seconds"] if reached else None
        # Whether the second preset's budget matched the first's wall time, and, should it have
        # run longer, the loss its periodic estimates had reached by the first's last second.
        summary["train_time_ratio"] = versus["train_seconds"] / summary["train_seconds"]
        in_time = [c for c in versus["curve"] if c["elapsed"] <= summary["train_seconds"]]
        summary["versus_estimate_at_first_time"] = in_time[-1] if in_time else None
        print(
            f"\n{args.versus} reached {args.target} "
            + (
                f"at {reached['elapsed']:.0f} s: {summary['time_ratio']:.2f}x of {args.preset}'s "
                f"{summary['train_seconds']:.0f} s"
                if reached
                else "not at all"
            )
            + f"; it trained {summary['train_time_ratio']:.2f}x as long ({versus['train_seconds']:.0f} s)",
            flush=True,
        )
        name += f"_versus_{args.versus}"
    common.emit(name, summary, args.out)


def train_and_summarize(preset_name, overrides, args, model_dir):
    """Trains one preset into a fresh model directory; returns its summary and prints its row."""
    from lm_keras.config import preset

    config = preset(preset_name).replace(**overrides)
    model_dir = model_dir or str(common.OUT_DIR / f"ttq_{preset_name}")
    shutil.rmtree(model_dir, ignore_errors=True)
    print(f"training {preset_name} {overrides or ''} into {model_dir}", flush=True)
    t0 = time.monotonic()
    results = common.trainer_for(config, model_dir, preset=preset_name, log=print).run()
    total_seconds = time.monotonic() - t0

    records = [json.loads(line) for line in open(os.path.join(model_dir, "metrics.jsonl"))]
    logged = sorted((r["step"], r["elapsed"]) for r in records if r.get("kind") == "train")

    def elapsed_at(step):
        """Training seconds at `step`, interpolated between the logged steps around it."""
        before = max(((s, e) for s, e in logged if s <= step), default=(0, 0.0))
        after = min(((s, e) for s, e in logged if s >= step), default=before)
        if after[0] == before[0]:
            return before[1]
        return before[1] + (after[1] - before[1]) * (step - before[0]) / (after[0] - before[0])

    curve = [
        {
            "step": r["step"],
            "val_loss": r["val_loss"],
            "train_loss": r["train_loss"],
            "elapsed": elapsed_at(r["step"]),
        }
        for r in records
        if r.get("kind") == "eval"
    ]
    reached = next((c for c in curve if c["val_loss"] <= args.target), None)
    train_seconds = results["wall_seconds"]
    summary = {
        "preset": preset_name,
        "overrides": overrides,
        "config": config.to_dict(),
        "val_loss": results["val_loss"],
        "val_bits_per_char": results["val_bits_per_char"],
        "steps": results["steps"],
        "parameters": results["parameters"],
        "tokens_per_sec": results["tokens_per_sec"],
        "train_seconds": train_seconds,
        "total_seconds_with_final_eval_and_sample": total_seconds,
        "within_budget": train_seconds <= args.budget_seconds,
        "budget_seconds": args.budget_seconds,
        "target": args.target,
        "target_reached_at": reached,
        "curve": curve,
    }
    print()
    print(
        common.table(
            [
                "preset",
                "parameters",
                "steps",
                "tokens/s",
                "training time",
                "full val loss",
                f"first estimate <= {args.target}",
            ],
            [
                [
                    preset_name,
                    f"{results['parameters']:,}",
                    results["steps"],
                    f"{results['tokens_per_sec']:,.0f}" if results["tokens_per_sec"] else "n/a",
                    f"{train_seconds:.0f} s"
                    + ("" if summary["within_budget"] else f" (over the {args.budget_seconds:.0f} s budget)"),
                    f"{results['val_loss']:.4f}",
                    f"step {reached['step']} at {reached['elapsed']:.0f} s"
                    if reached and reached["elapsed"]
                    else ("not reached" if not reached else f"step {reached['step']}"),
                ]
            ],
        )
    )
    return summary


if __name__ == "__main__":
    main()
