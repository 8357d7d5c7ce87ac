"""The input pipeline alone against the training step it feeds.

One process, variants alternated round by round (medians after warm-up), in
batches per second:

- `pipeline_<model>`: lm_keras's tf.data training pipeline alone (`train_dataset`:
  stateless random window offsets, gather, split; one-hot targets for the
  documented LSTM), iterated as the trainer iterates it.
- `step_fed_<model>`: the compiled training step fed by that pipeline, as in training.
- `step_fixed_<model>`: the same step on one batch held in memory (no pipeline at
  all); the gap to `step_fed` is what feeding costs the step on this machine
  (the pipeline's threads share the cores with the step).

Models: the Transformer of `shakespeare_char_cpu` (XLA) and the documented LSTM of
`documented_lstm` (graph).

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.pipeline
"""

from benchmarks import common

common.setup_environment()


# --quick: models small enough to build in seconds; their figures mean nothing.
TINY = {
    "transformer": dict(num_layers=1, num_heads=2, hidden_dim=32, seq_len=32, batch_size=4),
    "documented_lstm": dict(embedding_dim=8, hidden_dim=16, dense_units=16, seq_len=16, batch_size=8),
}
TARGET_PIPELINE_OVER_STEP = 10.0


def variants_for(label, preset_name, jit, quick):
    import tensorflow as tf

    from lm_keras.config import preset

    config = preset(preset_name).replace(
        max_steps=10**9, jit_compile=str(jit).lower(), **(TINY[label] if quick else {})
    )
    trainer, step, batches = common.timed_trainer(config, common.scratch_dir(prefix="bench_pipeline_"))
    alone, fed = batches(), batches()
    fixed = tuple(tf.identity(t) for t in next(batches()))
    return {
        f"pipeline_{label}": lambda: next(alone) and None,
        f"step_fed_{label}": lambda: float(step(next(fed))) and None,
        f"step_fixed_{label}": lambda: float(step(fixed)) and None,
    }, trainer.config.train.batch_size * trainer.config.model.seq_len


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    warmup = 2
    if args.quick:
        args.rounds, args.seconds, warmup = 1, 0.05, 1
    variants, tokens = {}, {}
    for label, preset_name, jit in (
        # --quick: no XLA, whose compile takes too long
        ("transformer", "shakespeare_char" if args.size == "gpu" else "shakespeare_char_cpu", not args.quick),
        ("documented_lstm", "documented_lstm", False),
    ):
        v, tokens[label] = variants_for(label, preset_name, jit, args.quick)
        variants.update(v)
    print(f"timing {len(variants)} variants, {args.rounds} rounds...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds, warmup=warmup)
    summary = {}
    for label in tokens:
        pipe = results[f"pipeline_{label}"]["median"]
        fed = results[f"step_fed_{label}"]["median"]
        fixed = results[f"step_fixed_{label}"]["median"]
        summary[label] = {
            "pipeline_batches_per_sec": pipe,
            "step_fed_per_sec": fed,
            "step_fixed_per_sec": fixed,
            "pipeline_over_step": pipe / fed,
            "feeding_cost": 1 - fed / fixed,
            "tokens_per_batch": tokens[label],
        }
    common.emit(
        "pipeline", {"size": args.size, "quick": args.quick, "models": summary, "raw": results}, args.out
    )


def rows(result):
    """RESULTS.md's rows: how far the pipeline outruns each model's step, and what feeding costs."""
    out = []
    for label, m in result["models"].items():
        out.append(
            common.row(
                f"{label}: pipeline batches/s over the training step's steps/s",
                (m["pipeline_over_step"], f"{m['pipeline_over_step']:,.0f}x"),
                (">=", TARGET_PIPELINE_OVER_STEP, f"{TARGET_PIPELINE_OVER_STEP:.0f}x"),
            )
        )
        out.append(
            common.row(
                f"{label}: what feeding from the pipeline costs the step (against a batch in memory)",
                (m["feeding_cost"], f"{100 * m['feeding_cost']:+.1f}%"),
            )
        )
    return out


if __name__ == "__main__":
    main()
