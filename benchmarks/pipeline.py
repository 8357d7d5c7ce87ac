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

    flock /tmp/lm_keras_heavy.lock .venv/bin/python benchmarks/pipeline.py
"""

from benchmarks import common

common.setup_environment()


def variants_for(label, preset_name, jit, size):
    import keras
    import tensorflow as tf

    from lm_keras.config import preset
    from lm_keras.data import train_dataset
    from lm_keras.training.trainer import Trainer

    cfg = preset(preset_name).replace(max_steps=10**9, jit_compile="true" if jit else "false")
    trainer = Trainer(cfg, common.scratch_dir(prefix="bench_pipeline_"), log=lambda line: None)
    trainer.prepare()
    keras.mixed_precision.set_global_policy("float32")
    mc, tc = trainer.config.model, trainer.config.train

    def dataset(seed):
        return train_dataset(
            trainer.train_split,
            seq_len=mc.seq_len,
            batch_size=tc.batch_size,
            seed=seed,
            view=trainer.view,
            vocab_size=mc.vocab_size,
        )

    alone, fed = iter(dataset(1)), iter(dataset(2))
    fixed = tuple(tf.identity(t) for t in next(iter(dataset(3))))
    step = trainer.make_train_step()
    tokens = tc.batch_size * mc.seq_len
    return {
        f"pipeline_{label}": lambda: next(alone) and None,
        f"step_fed_{label}": lambda: float(step(next(fed))) and None,
        f"step_fixed_{label}": lambda: float(step(fixed)) and None,
    }, tokens


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 0.3
    variants, tokens = {}, {}
    for label, preset_name, jit in (
        ("transformer", "shakespeare_char_cpu", True),
        ("documented_lstm", "documented_lstm", False),
    ):
        if args.size == "gpu" and label == "transformer":
            preset_name = "shakespeare_char"
        v, tokens[label] = variants_for(label, preset_name, jit, args.size)
        variants.update(v)
    print(f"timing {len(variants)} variants, {args.rounds} rounds...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds)
    rows, summary = [], {}
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
        rows.append(
            [
                label,
                f"{pipe:,.0f}",
                f"{pipe * tokens[label]:,.0f}",
                f"{fed:,.1f}",
                f"{fixed:,.1f}",
                f"{pipe / fed:,.0f}x",
                f"{100 * (1 - fed / fixed):+.1f}%",
            ]
        )
    print()
    print(
        common.table(
            [
                "model",
                "pipeline batches/s",
                "pipeline tokens/s",
                "step fed by pipeline (steps/s)",
                "step on a fixed batch (steps/s)",
                "pipeline / step",
                "feeding cost",
            ],
            rows,
        )
    )
    common.emit(f"pipeline_{args.size}", {"models": summary, "raw": results}, args.out)


if __name__ == "__main__":
    main()
