"""The LSTM language models: characters learned per second.

One process, variants alternated round by round (medians after warm-up). A
"character learned" is one training target: the documented model predicts one
character per window, the efficient `LSTMLM` one per position.

- `article_fit`: the documented model and training code as the article writes them:
  `documented_lstm(...)` compiled as documented (`adam`, `categorical_crossentropy`,
  `accuracy`) and `model.fit(x_train, y_train, batch_size=128)` on NumPy arrays of
  windows and one-hot targets (Keras turns them into its own tf.data pipeline and
  shuffles them; on a CPU-only machine Keras does not use XLA). The rate is the
  steady state inside `fit` (timed by a callback from its 5th batch on, so the
  per-call start-up of `fit` is left out; it is reported apart).
- `documented_{graph,xla}`: the same model, preset `documented_lstm`, on lm_keras's
  pipeline and compiled step (`Trainer.make_train_step()`), XLA off and on.
- `lstm_lm_{graph,xla}`: the efficient `LSTMLM` (preset `lstm_char`, 2 x 256 LSTM
  predicting every position of 64-character windows, batch 32), XLA off and on.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.lstm
"""

import time

from benchmarks import common

common.setup_environment()


def trainer_variant(preset_name, jit, seed):
    import keras

    from lm_keras.config import preset
    from lm_keras.data import train_dataset

    cfg = preset(preset_name).replace(max_steps=10**9, jit_compile="true" if jit else "false")
    trainer = common.trainer_for(cfg, common.scratch_dir(prefix="bench_lstm_"))
    trainer.prepare()
    keras.mixed_precision.set_global_policy("float32")
    mc, tc = trainer.config.model, trainer.config.train
    step = trainer.make_train_step()
    batches = iter(
        train_dataset(
            trainer.train_split,
            seq_len=mc.seq_len,
            batch_size=tc.batch_size,
            seed=seed,
            view=trainer.view,
            vocab_size=mc.vocab_size,
        )
    )
    targets = tc.batch_size * (mc.seq_len if trainer.view == "next_token" else 1)

    def run():
        float(step(next(batches)))
        return targets

    return run, trainer


def article_variant(trainer, windows_per_call, rng):
    """The article's code: NumPy windows and one-hot targets, model.fit(batch_size=128)."""
    import keras
    import numpy as np

    from lm_keras.models import build_model

    mc, tc = trainer.config.model, trainer.config.train
    model = build_model(mc)  # documented_lstm(...), compiled as documented
    ids = trainer.train_split.read(0, trainer.train_split.tokens)
    # As the article prepares them: every window of max_length characters and the one after it.
    n = len(ids) - mc.seq_len
    starts = np.arange(n)
    x_all = ids[starts[:, None] + np.arange(mc.seq_len)]  # (N, T)
    y_all = keras.utils.to_categorical(ids[starts + mc.seq_len], mc.vocab_size).astype("float32")  # (N, V)
    print(
        f"  article arrays: x {x_all.shape} {x_all.nbytes / 2**20:.0f} MiB, y {y_all.shape} "
        f"{y_all.nbytes / 2**20:.0f} MiB",
        flush=True,
    )
    skip = 5
    startup = []

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    clock = Clock()

    def run():
        start = rng.integers(0, n - windows_per_call)
        x, y = x_all[start : start + windows_per_call], y_all[start : start + windows_per_call]
        t0 = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=tc.batch_size, verbose=0, callbacks=[clock])
        startup.append(clock.times[0] - t0)
        steady = clock.times[-1] - clock.times[skip - 1]
        # Report targets as if every batch ran at the steady rate (alternate() divides by wall time,
        # so scale the count to the steady-state rate over this call's wall time).
        targets = (len(clock.times) - skip) * tc.batch_size
        return targets / steady * (time.perf_counter() - t0)

    return run, startup


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 0.5

    import numpy as np

    variants, trainers = {}, {}
    print("building variants...", flush=True)
    for jit in (False, True):
        name = f"documented_{'xla' if jit else 'graph'}"
        variants[name], trainers[name] = trainer_variant("documented_lstm", jit, seed=len(variants))
    batches_per_call = 25 if args.quick else 100
    article, startup = article_variant(
        trainers["documented_graph"],
        batches_per_call * trainers["documented_graph"].config.train.batch_size,
        np.random.default_rng(0),
    )
    variants = {"article_fit": article, **variants}
    for jit in (False, True):
        name = f"lstm_lm_{'xla' if jit else 'graph'}"
        variants[name], trainers[name] = trainer_variant("lstm_char", jit, seed=len(variants))

    print(f"timing {len(variants)} variants, {args.rounds} rounds...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds, warmup=1)
    base = results["article_fit"]["median"]
    rows, summary = [], {}
    for name, r in results.items():
        trainer = trainers.get(name, trainers["documented_graph"])
        mc, tc = trainer.config.model, trainer.config.train
        per_step = tc.batch_size * (mc.seq_len if trainer.view == "next_token" else 1)
        summary[name] = {
            "chars_per_sec": r["median"],
            "vs_article_fit": r["median"] / base,
            "steps_per_sec": r["median"] / per_step,
            "targets_per_step": per_step,
            "rounds": r["rounds"],
        }
        rows.append(
            [
                name,
                f"{r['median']:,.0f}",
                f"{1000 * per_step / r['median']:.1f}",
                f"{per_step:,}",
                f"{r['median'] / base:.2f}x",
            ]
        )
    print()
    print(
        common.table(["variant", "characters learned/s", "ms/step", "targets/step", "vs article fit"], rows)
    )
    print(f"model.fit start-up per call (before its first batch ends): median {np.median(startup):.2f} s")
    common.emit(
        f"lstm_{args.size}",
        {"variants": summary, "fit_startup_seconds": float(np.median(startup)), "raw": results},
        args.out,
    )


if __name__ == "__main__":
    main()
