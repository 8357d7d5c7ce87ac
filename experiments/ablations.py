"""Ablations of the modern recipe: each change alone and the combinations, at one budget.

Every variant is `shakespeare_char_cpu` (nanoGPT's CPU run: 2,000 steps of 12 x 64
tokens) with the learning rate raised to 3e-3 (RESULTS.md: the best AdamW rate at this
budget, 1.774 against nanoGPT's 1e-3 at 1.907), plus its changes. Each is trained from
scratch with lm_keras's Trainer for every seed and scored on the full validation split;
the table gives the mean and spread over seeds, the difference from the base, and
each run's training wall time and tokens/s, so a change's cost shows beside its gain.

Runs go seed by seed (every variant at the first seed, then the next seed), each
appended to a JSON-lines file as it ends; a rerun skips the runs already there, so
an interrupted grid resumes. `--render` prints the table from the file alone. The file,
experiments/ablations.jsonl, is committed: it is the record behind RESULTS.md's table.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.ablations
    .venv/bin/python -m experiments.ablations --render
"""

import json
import os
import pathlib
import statistics
import time

from benchmarks import common

common.setup_environment()

BASE_PRESET = "shakespeare_char_cpu"
BASE = dict(learning_rate=3e-3, min_learning_rate=3e-4)
SEEDS = (1337, 1, 2)
# What each variant changes from the base; the first is the base itself.
WSD = dict(schedule="wsd", decay_fraction=0.3)
# The model changes of the modded-nanogpt speedrun, all together.
SPEEDRUN_MODEL = dict(
    position="rope",
    norm="rmsnorm",
    use_qk_norm=True,
    mlp="relu2",
    tie_embeddings=False,
    zero_init_residual=True,
    logit_softcap=15.0,
)
SPEEDRUN = dict(SPEEDRUN_MODEL, optimizer="muon", schedule="cosine")
VARIANTS = {
    "base": {},
    "rope": dict(position="rope"),
    "rmsnorm": dict(norm="rmsnorm"),
    "qk_norm": dict(use_qk_norm=True),
    "relu2": dict(mlp="relu2"),
    "swiglu": dict(mlp="swiglu"),
    "untied_zero_head": dict(tie_embeddings=False),
    "zero_init_residual": dict(zero_init_residual=True),
    "softcap_15": dict(logit_softcap=15.0),
    "muon": dict(optimizer="muon"),
    "wsd": WSD,
    "all_model": SPEEDRUN_MODEL,
    "all_model_muon": dict(SPEEDRUN_MODEL, optimizer="muon"),
    "all_model_muon_wsd": dict(SPEEDRUN, **WSD),
    # The model changes that helped alone on seeds 1337 and 1, with Muon: the recipe of the
    # `shakespeare_char_cpu_modern` preset (MODERN_RECIPE less the base's learning rates).
    "helpful_model_muon": dict(position="rope", use_qk_norm=True, mlp="swiglu", optimizer="muon"),
    # Newton-Schulz costs the same per step whatever the batch: twice the batch for half the
    # steps (the same tokens) runs it half as often.
    "all_model_muon_batch24": dict(SPEEDRUN, batch_size=24, max_steps=1000, warmup_steps=50),
}
RUNS = pathlib.Path(__file__).with_name("ablations.jsonl")  # the committed record
RUN_SETTINGS = dict(sample_tokens=0, log_every=250, eval_every=500, checkpoint_every=2000)


def train(name, seed, quick):
    """One run of a variant: its results.json figures, with the config it ran."""
    import keras

    from lm_keras.config import preset

    overrides = {**BASE, **VARIANTS[name], **RUN_SETTINGS, "seed": seed}
    if quick:
        overrides.update(max_steps=6, eval_every=3, eval_batches=2)
    config = preset(BASE_PRESET).replace(**overrides)
    keras.backend.clear_session()
    results = common.trainer_for(
        config, common.scratch_dir(f"ablation_{name}_{seed}_"), preset=BASE_PRESET, log=print
    ).run()
    ms_per_step = 1000 * config.train.batch_size * config.model.seq_len / results["tokens_per_sec"]
    return {
        "variant": name,
        "seed": seed,
        "changes": VARIANTS[name],
        "val_loss": results["val_loss"],
        "parameters": results["parameters"],
        "steps": results["steps"],
        "wall_seconds": results["wall_seconds"],
        "tokens_per_sec": results["tokens_per_sec"],
        "ms_per_step": ms_per_step,
    }


def render(runs, seeds):
    """The markdown table of the runs, one row per variant, in VARIANTS' order."""
    base = [r["val_loss"] for r in runs if r["variant"] == "base"]
    base_mean = statistics.mean(base) if base else None
    rows = []
    for name, changes in VARIANTS.items():
        mine = sorted((r for r in runs if r["variant"] == name), key=lambda r: seeds.index(r["seed"]))
        if not mine:
            continue
        losses = [r["val_loss"] for r in mine]
        mean = statistics.mean(losses)
        spread = f" +- {statistics.stdev(losses):.3f}" if len(losses) > 1 else ""
        delta = f"{mean - base_mean:+.3f}" if base_mean is not None and name != "base" else ""
        rows.append(
            [
                f"`{name}`",
                ", ".join(f"{k}={v}" for k, v in changes.items()) or "(lr 3e-3 AdamW, cosine)",
                f"{mine[0]['parameters']:,}",
                " / ".join(f"{x:.4f}" for x in losses),
                f"{mean:.4f}{spread}",
                delta,
                f"{statistics.median(r['tokens_per_sec'] for r in mine):,.0f}",
                f"{statistics.median(r['ms_per_step'] for r in mine):.1f}",
                f"{statistics.median(r['wall_seconds'] for r in mine):.0f}",
            ]
        )
    headers = [
        "variant",
        "changes from the base",
        "parameters",
        "full val loss per seed (" + ", ".join(str(s) for s in seeds) + ")",
        "mean",
        "vs base",
        "tokens/s",
        "ms/step",
        "wall s",
    ]
    return common.table(headers, rows)


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--only", nargs="*", default=None, choices=list(VARIANTS), help="these variants")
    parser.add_argument("--render", action="store_true", help="print the table of the runs already done")
    parser.add_argument(
        "--runs",
        default=None,
        help="the JSON-lines file (default experiments/ablations.jsonl; with --quick, in benchmarks/out/)",
    )
    args = parser.parse_args()
    default = common.OUT_DIR / "ablations_quick.jsonl" if args.quick else RUNS
    path = args.runs or str(default)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    runs = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    names = args.only or list(VARIANTS)
    if not args.render:
        todo = [
            (s, n)
            for s in args.seeds
            for n in names
            if not any(r["variant"] == n and r["seed"] == s for r in runs)
        ]
        print(f"{len(todo)} runs to do ({len(runs)} done) into {path}", flush=True)
        for i, (seed, name) in enumerate(todo, 1):
            t0 = time.monotonic()
            run = train(name, seed, args.quick)
            run["load_average"] = common.load_average()
            runs.append(run)
            with open(path, "a") as f:
                f.write(json.dumps(run) + "\n")
            print(
                f"[{i}/{len(todo)}] {name} seed {seed}: val loss {run['val_loss']:.4f}, "
                f"{run['tokens_per_sec']:,.0f} tok/s, {time.monotonic() - t0:.0f} s",
                flush=True,
            )
    print(render([r for r in runs if r["seed"] in args.seeds], args.seeds))  # the seeds asked for
    common.emit(
        "ablations_quick" if args.quick else "ablations",
        {"machine": common.machine_info(), "runs": runs},
        args.out,
    )


if __name__ == "__main__":
    main()
