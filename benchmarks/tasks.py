"""Teaching tasks: fine-tuned from the pre-trained model against trained from scratch, exact match.

The article's claim, measured: pre-training once, then fine-tuning, teaches a task better
than training on its examples alone. For each task of `lm_keras.tasks` (written here with
its default seed and splits), two runs of the same config and steps, per seed:

- `pretrained`: `--init_from` the default preset's model trained on tiny Shakespeare
  (`--base`; trained here first when it is missing), its character vocabulary with the
  end-of-text id appended;
- `scratch`: the same model from a random start, its vocabulary the task's characters;
- `lora` (with `--kinds=...,lora`): LoRA on the pre-trained model (`--lora_rank`,
  `--lora_targets`, `--lora_learning_rate`), its base frozen, against `pretrained`'s full
  fine-tuning.

Each run is scored on the task's test split as `python -m lm_keras.evaluate
--corpus=test.jsonl` scores it: exact match and token F1 (SQuAD's normalisation) of greedy
answers that stop at end-of-text. Beside them, on one task (`--ablation_task`), one seed
each: the loss on everything (`--loss_on=all`) and padded examples (`--packing=padded`)
against the defaults (completion only, packed), with their tokens/s (these share the
machine with each other, so compare them within one run of this script); and the sanity
task alone, addition from scratch at its `--addition_steps`, with its wall time against
the 10-minute target. Addition cannot be fine-tuned from the Shakespeare model (its 65
characters hold one digit): its pre-trained runs take one seed, to show it. The JSON is
written after every run, so a long measurement can be read while it goes on.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.tasks
"""

import json
import pathlib
import statistics
import time

from benchmarks import common

common.setup_environment()

TASKS = ("name", "speaker", "pig_latin", "addition")
PRESET = "shakespeare_char_cpu"
TARGET_GAIN = 0.10  # pre-training's exact-match gain on at least one Shakespeare task
TARGET_ADDITION = 0.99
TARGET_ADDITION_SECONDS = 600.0
TARGET_LORA_GAP = 0.02  # LoRA's exact match at most 2 points under full fine-tuning's


def write_task(name, folder):
    from lm_keras import tasks

    splits, info = tasks.make_splits(name)
    tasks.write_splits(folder, splits, info)
    return pathlib.Path(folder)


def train_and_score(task_dir, model_dir, *, steps, seed, init_from="", quick=False, **fields):
    """Trains one run on a task's examples, then scores its test split; returns its record."""
    from lm_keras import model_dir as md
    from lm_keras.config import preset
    from lm_keras.training.scoring import score_file
    from lm_keras.training.trainer import train

    config = preset(PRESET).replace(
        corpus=str(task_dir / "train.jsonl"),
        validation_data=str(task_dir / "validation.jsonl"),
        max_steps=steps,
        warmup_steps=min(100, steps // 10),
        eval_every=steps,
        log_every=max(steps // 5, 1),
        checkpoint_every=steps,
        sample_tokens=0,
        seed=seed,
        init_from=init_from,
        **fields,
    )
    if quick:
        config = config.replace(num_layers=1, hidden_dim=32, num_heads=2, jit_compile="false")
    started = time.monotonic()
    results = train(model_dir, config, preset=PRESET, log=lambda line: None)
    trained_seconds = time.monotonic() - started
    trained = md.load_trained(model_dir)
    test = task_dir / "test.jsonl"
    rows = len(test.read_text().splitlines())  # the whole test split in one batch
    figures, _ = score_file(trained.model, trained.tokenizer, test, batch_size=rows)
    return {
        **figures,
        "completion_loss": results["val_loss"],
        "tokens_per_sec": results["tokens_per_sec"],
        "train_seconds": trained_seconds,
        "steps": steps,
        "seed": seed,
        "vocab_size": trained.config.model.vocab_size,
    }


def ensure_base(base, quick):
    """The pre-trained model: `base` when it holds a checkpoint, else the default preset trained there."""
    from lm_keras import model_dir as md
    from lm_keras.config import preset
    from lm_keras.training.trainer import train

    if md.latest_checkpoint(base):
        return base
    config = preset(PRESET).replace(sample_tokens=0)
    if quick:
        config = config.replace(max_steps=20, num_layers=1, hidden_dim=32, num_heads=2, jit_compile="false")
    print(f"training the pre-trained model into {base} ({config.train.max_steps} steps)", flush=True)
    train(base, config, preset=PRESET, log=lambda line: None)
    return base


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--base", default="runs/pretrained", help="the pre-trained run (trained if missing)")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first_seed", type=int, default=1337, help="seeds first_seed, first_seed + 1, ...")
    parser.add_argument("--steps", type=int, default=600, help="fine-tuning steps of every run")
    parser.add_argument("--ablation_task", default="name")
    parser.add_argument("--addition_steps", type=int, default=3000)
    parser.add_argument(
        "--kinds",
        default="pretrained,scratch",
        help="which runs per task and seed: pretrained, scratch, lora",
    )
    parser.add_argument("--lora_rank", type=int, default=8)
    parser.add_argument("--lora_targets", default="attention")
    parser.add_argument(
        "--lora_learning_rate", type=float, default=0.0, help="the lora runs' peak rate (0: the preset's)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    steps = 4 if quick else args.steps
    seeds = [args.first_seed + i for i in range(1 if quick else args.seeds)]
    scratch = pathlib.Path(common.scratch_dir("lm_keras_tasks_"))
    base = ensure_base(str(scratch / "base") if quick else args.base, quick)
    runs = []

    def run(task, kind, seed, run_steps=steps, **fields):
        folder = scratch / "tasks" / task
        if not folder.is_dir():
            write_task(task, folder)
        name = "_".join([task, kind, str(seed), str(run_steps), *(f"{k}-{v}" for k, v in fields.items())])
        record = train_and_score(
            folder,
            scratch / "runs" / name,
            steps=run_steps,
            seed=seed,
            init_from=base if kind in ("pretrained", "lora") else "",
            quick=quick,
            **fields,
        )
        record.update(task=task, init=kind, **fields)
        runs.append(record)
        print(
            f"{task:>9} {kind:>10} seed {seed} {fields or ''}: exact match {record['exact_match']:.3f} | "
            f"F1 {record['f1']:.3f} | completion loss {record['completion_loss']:.4f} | "
            f"{record['tokens_per_sec']:,.0f} tok/s | {record['train_seconds']:.0f} s",
            flush=True,
        )
        return record

    def emit(addition=None):
        common.emit(
            "tasks",
            dict(quick=quick, steps=steps, seeds=seeds, base=base, runs=runs, addition=addition),
            args.out or (common.OUT_DIR / "quick" / "tasks.json" if quick else None),
        )

    # LoRA on the pre-trained model: its adapters alone train (the new end-of-text row stays the
    # mean of the others), at the preset's rate or --lora_learning_rate (min: a tenth of it).
    lora = dict(lora_rank=args.lora_rank, lora_targets=args.lora_targets)
    if args.lora_learning_rate:
        lora.update(learning_rate=args.lora_learning_rate, min_learning_rate=args.lora_learning_rate / 10)
    names = ["name"] if quick else args.tasks.split(",")
    for task in names:
        for seed in seeds:
            for kind in args.kinds.split(","):
                if task == "addition" and kind != "scratch" and seed != seeds[0]:
                    continue
                run(task, kind, seed, **(lora if kind == "lora" else {}))
                emit()
    if not quick and args.ablation_task:  # --ablation_task= (empty) leaves them out
        run(args.ablation_task, "pretrained", seeds[0], loss_on="all")
        run(args.ablation_task, "pretrained", seeds[0], packing="padded")
        emit()
    # Last, on a machine the other runs no longer share: its wall time is a target.
    if quick or args.addition_steps:  # --addition_steps=0 leaves it out
        emit(run("addition", "scratch", seeds[0], run_steps=5 if quick else args.addition_steps))


def summary(result):
    """{(task, init): {exact_match: (mean, std), f1: ..., completion_loss: ..., seeds: n}} over the seeds
    of the main runs."""
    groups = {}
    for r in result["runs"]:
        if "loss_on" in r or "packing" in r or r["steps"] != result["steps"]:
            continue
        init = r["init"] if r["init"] != "lora" else f"lora r={r['lora_rank']} {r['lora_targets']}"
        if r.get("learning_rate"):
            init += f" lr {r['learning_rate']:g}"
        groups.setdefault((r["task"], init), []).append(r)
    return {
        key: {
            metric: (statistics.mean(v[metric] for v in rs), statistics.pstdev(v[metric] for v in rs))
            for metric in ("exact_match", "f1", "completion_loss")
        }
        | {"seeds": len(rs)}
        for key, rs in groups.items()
    }


def rows(result):
    """RESULTS.md's rows: pre-training's gain per task, and the addition sanity target."""
    out, means = [], summary(result)
    tasks = sorted({task for task, _ in means}, key=lambda t: TASKS.index(t) if t in TASKS else 99)
    best_gain = max(
        (
            means[(t, "pretrained")]["exact_match"][0] - means[(t, "scratch")]["exact_match"][0]
            for t in tasks
            if t != "addition" and (t, "scratch") in means and (t, "pretrained") in means
        ),
        default=None,
    )
    for task in tasks:
        pre, scratch = means.get((task, "pretrained")), means.get((task, "scratch"))
        if not pre or not scratch:
            continue
        gain = pre["exact_match"][0] - scratch["exact_match"][0]
        out.append(
            common.row(
                f"{task}: exact match, fine-tuned from the pre-trained model vs from scratch "
                f"({result['steps']} steps, mean of {pre['seeds']} and {scratch['seeds']} seeds)",
                (
                    gain,
                    f"{100 * pre['exact_match'][0]:.1f} vs {100 * scratch['exact_match'][0]:.1f} "
                    f"({100 * gain:+.1f} points; "
                    f"F1 {100 * pre['f1'][0]:.1f} vs {100 * scratch['f1'][0]:.1f})",
                ),
            )
        )
    for (task, init), lora in means.items():
        full = means.get((task, "pretrained"))
        if not init.startswith("lora") or not full:
            continue
        gap = lora["exact_match"][0] - full["exact_match"][0]
        out.append(
            common.row(
                f"{task}: exact match, {init} against full fine-tuning ({result['steps']} steps, "
                f"mean of {lora['seeds']} and {full['seeds']} seeds)",
                (
                    gap,
                    f"{100 * lora['exact_match'][0]:.1f} vs {100 * full['exact_match'][0]:.1f} "
                    f"({100 * gap:+.1f} points)",
                ),
                (">=", -TARGET_LORA_GAP, f"within {100 * TARGET_LORA_GAP:.0f} points"),
            )
        )
    if best_gain is not None:
        out.append(
            common.row(
                "pre-training's best exact-match gain over from scratch, on a Shakespeare task",
                (best_gain, f"{100 * best_gain:+.1f} points"),
                (">=", TARGET_GAIN, f"+{100 * TARGET_GAIN:.0f} points"),
            )
        )
    addition = result["addition"]
    if addition is None:
        return out
    out.append(
        common.row(
            f"addition from scratch: exact match on its test split ({addition['steps']} steps)",
            (addition["exact_match"], f"{100 * addition['exact_match']:.1f}%"),
            (">=", TARGET_ADDITION, f"{100 * TARGET_ADDITION:.0f}%"),
        )
    )
    out.append(
        common.row(
            "addition from scratch: training time on this machine",
            (addition["train_seconds"], f"{addition['train_seconds']:.0f} s"),
            ("<=", TARGET_ADDITION_SECONDS, f"{TARGET_ADDITION_SECONDS:.0f} s"),
        )
    )
    return out


def load(path=None):
    """A result written by this benchmark (for notebooks and RESULTS.md's tables)."""
    return json.loads(pathlib.Path(path or common.OUT_DIR / "tasks.json").read_text())


if __name__ == "__main__":
    main()
