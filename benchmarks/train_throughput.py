"""Training throughput and model FLOPs utilisation, against keras-hub's GPT2 of the same shape.

One process, variants alternated round by round (medians after warm-up):

- `matmul_float32`, `matmul_bfloat16`: the machine's ceiling, large square products
  through TensorFlow (the denominator of MFU), measured in the same rounds.
- `ours_{xla,graph}_{float32,bfloat16}`: lm_keras's own compiled step
  (`Trainer.make_train_step()`, AdamW, clipping, as `python -m lm_keras.train` runs
  it) on the `shakespeare_char_cpu` preset, fed by lm_keras's tf.data pipeline.
- `hub_{xla,graph}_{float32,bfloat16}`: keras-hub's `GPT2Backbone` of the same shape (4 layers,
  4 heads, 128 wide, 512 MLP, context 64, batch 12, dropout 0; tied output head),
  in the same loop: AdamW with the same settings, global-norm clipping, one
  `tf.function(jit_compile=...)` per step, the same batches.
- `hub_fit_xla_float32`: the same backbone as users would train it,
  `GPT2CausalLM.compile(..., jit_compile=True)` and `train_on_batch` (Keras's own
  train step, with its default accuracy metric).

`--recipes=base,muon,...` times the named rows of benchmarks/ablations.py instead
(lm_keras's step as the trainer runs it, each with its config changes; the matmul
ceilings beside them): what each change costs per step, Muon's Newton-Schulz against
AdamW among them, measured side by side.

Tokens/s counts input tokens (batch x context) per second; MFU is model FLOPs per
token (`common.transformer_flops_per_token`) times tokens/s over the float32 ceiling.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python benchmarks/train_throughput.py
    flock /tmp/lm_keras_heavy.lock .venv/bin/python benchmarks/train_throughput.py \
        --recipes=base,muon,all_model,all_model_muon,all_model_muon_batch24
"""

from benchmarks import common

common.setup_environment()

SIZES = {
    # preset, keras-hub shape (the same), matmul ceiling size
    "cpu": dict(preset="shakespeare_char_cpu", matmul_n=4096),
    "gpu": dict(preset="shakespeare_char", matmul_n=8192),
}


def make_config(preset_name, **overrides):
    from lm_keras.config import preset

    return preset(preset_name).replace(max_steps=10**9, **overrides)


def ours(preset_name, seed, **overrides):
    """lm_keras's step, as the trainer runs it, for a preset and config overrides: (callable, config)."""
    import keras

    from lm_keras.data import train_dataset
    from lm_keras.training.trainer import Trainer

    cfg = make_config(preset_name, **overrides)
    trainer = Trainer(cfg, common.scratch_dir(prefix="bench_train_"), log=lambda line: None)
    trainer.prepare()
    keras.mixed_precision.set_global_policy("float32")  # the next variant builds under its own policy
    mc, tc = trainer.config.model, trainer.config.train
    step = trainer.make_train_step()
    batches = iter(
        trainer.strategy.distribute_datasets_from_function(
            lambda ctx: train_dataset(
                trainer.train_split,
                seq_len=mc.seq_len,
                batch_size=tc.batch_size,
                seed=seed,
                input_context=ctx,
            )
        )
    )
    tokens = tc.batch_size * mc.seq_len

    def run():
        float(step(next(batches)))  # the trainer reads the loss every step, which synchronises
        return tokens

    return run, trainer.config


def hub_backbone(cfg, precision):
    import keras
    import keras_hub

    mc = cfg.model
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=mc.vocab_size,
            num_layers=mc.num_layers,
            num_heads=mc.num_heads,
            hidden_dim=mc.hidden_dim,
            intermediate_dim=mc.resolved_mlp_dim,
            dropout=mc.dropout,
            max_sequence_length=mc.seq_len,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return backbone


def hub_step(cfg, train_ids, jit, precision, seed):
    """keras-hub's GPT2Backbone in the same loop as ours (same optimizer, clipping, batches)."""
    import keras
    import tensorflow as tf

    from lm_keras.data import train_dataset

    mc, tc = cfg.model, cfg.train
    backbone = hub_backbone(cfg, precision)
    variables = backbone.trainable_variables
    optimizer = keras.optimizers.AdamW(
        1e-3,
        weight_decay=tc.weight_decay,
        beta_1=tc.beta1,
        beta_2=tc.beta2,
        epsilon=1e-8,
        global_clipnorm=tc.grad_clip,
    )
    optimizer.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) < 2])
    optimizer.build(variables)
    mask = tf.ones((tc.batch_size, mc.seq_len), tf.bool)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            hidden = backbone({"token_ids": x, "padding_mask": mask}, training=True)
            logits = tf.cast(backbone.token_embedding(hidden, reverse=True), tf.float32)  # tied head
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    batches = iter(train_dataset(train_ids, seq_len=mc.seq_len, batch_size=tc.batch_size, seed=seed))
    tokens = tc.batch_size * mc.seq_len

    def run():
        float(step(*next(batches)))
        return tokens

    return run


def hub_fit(cfg, train_ids, seed):
    """keras-hub as users train it: GPT2CausalLM, compile(jit_compile=True), Keras's train step."""
    import keras
    import keras_hub
    import tensorflow as tf

    from lm_keras.data import train_dataset

    mc, tc = cfg.model, cfg.train
    causal_lm = keras_hub.models.GPT2CausalLM(backbone=hub_backbone(cfg, "float32"), preprocessor=None)
    optimizer = keras.optimizers.AdamW(
        1e-3,
        weight_decay=tc.weight_decay,
        beta_1=tc.beta1,
        beta_2=tc.beta2,
        epsilon=1e-8,
        global_clipnorm=tc.grad_clip,
    )
    causal_lm.compile(optimizer=optimizer, jit_compile=True)
    batches = iter(train_dataset(train_ids, seq_len=mc.seq_len, batch_size=tc.batch_size, seed=seed))
    mask = tf.ones((tc.batch_size, mc.seq_len), tf.bool)
    tokens = tc.batch_size * mc.seq_len

    def run():
        x, y = next(batches)
        causal_lm.train_on_batch({"token_ids": x, "padding_mask": mask}, y)  # returns numbers: synchronised
        return tokens

    return run


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help="comma-separated subset of variant names")
    parser.add_argument("--recipes", default="", help="comma-separated rows of ablations.py to time instead")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 0.3
    size = SIZES[args.size]
    if args.recipes:
        return time_recipes(args, size)

    import tensorflow as tf  # noqa: F401 (after setup_environment)

    print(f"building variants ({args.size} sizes)...", flush=True)
    variants = {}
    n = 1024 if args.quick else size["matmul_n"]
    variants.update(common.matmul_ceiling_variants(n))
    cfg = None
    for jit in (True, False):
        for precision in ("float32", "bfloat16"):
            name = f"ours_{'xla' if jit else 'graph'}_{precision}"
            variants[name], cfg = ours(
                size["preset"],
                seed=len(variants),
                jit_compile="true" if jit else "false",
                mixed_precision=precision,
            )
    from lm_keras import tokenizers
    from lm_keras.data import load_corpus

    train_text, _ = load_corpus(cfg.data.corpus).split(cfg.data.val_fraction)
    train_ids = tokenizers.train("char", train_text).encode(train_text)
    try:
        import keras_hub  # noqa: F401

        for jit in (True, False):
            for precision in ("float32", "bfloat16"):
                name = f"hub_{'xla' if jit else 'graph'}_{precision}"
                variants[name] = hub_step(cfg, train_ids, jit, precision, seed=len(variants))
        variants["hub_fit_xla_float32"] = hub_fit(cfg, train_ids, seed=len(variants))
    except ImportError:
        print("keras-hub is not installed (pip install -e '.[bench]'): no peer figures", flush=True)
    if args.variants:
        keep = set(args.variants.split(",")) | {"matmul_float32", "matmul_bfloat16"}
        variants = {k: v for k, v in variants.items() if k in keep}

    print(f"timing {len(variants)} variants, {args.rounds} rounds of ~{args.seconds}s each...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds)

    mc = cfg.model
    flops_per_token = common.transformer_flops_per_token(
        mc.num_layers, mc.hidden_dim, mc.resolved_mlp_dim, mc.seq_len, mc.vocab_size
    )
    ceiling = {dtype: results[f"matmul_{dtype}"]["median"] for dtype in ("float32", "bfloat16")}
    peer = results.get("hub_xla_float32", {}).get("median")
    rows, summary = [], {}
    for name, r in results.items():
        if name.startswith("matmul_"):
            rows.append([name, f"{r['median'] / 1e9:,.1f} GFLOP/s", "", "", "", ""])
            continue
        tok_s = r["median"]
        mfu = tok_s * flops_per_token / ceiling["float32"]
        summary[name] = {
            "tokens_per_sec": tok_s,
            "ms_per_step": 1000 * r["seconds_per_call"],
            "mfu_vs_float32_ceiling": mfu,
            "mfu_vs_bfloat16_ceiling": tok_s * flops_per_token / ceiling["bfloat16"],
            "vs_hub_xla_float32": common.ratio(tok_s, peer) if peer else None,
            "rounds": r["rounds"],
        }
        rows.append(
            [
                name,
                f"{tok_s:,.0f}",
                f"{1000 * r['seconds_per_call']:.1f}",
                f"{100 * mfu:.1f}%",
                f"{100 * summary[name]['mfu_vs_bfloat16_ceiling']:.1f}%",
                f"{summary[name]['vs_hub_xla_float32']:.2f}x" if peer else "n/a",
            ]
        )
    print()
    print(
        f"model FLOPs/token {flops_per_token:,} ({args.size} sizes: {mc.num_layers} layers, "
        f"{mc.num_heads} heads, {mc.hidden_dim} wide, MLP {mc.resolved_mlp_dim}, context {mc.seq_len}, "
        f"batch {cfg.train.batch_size})"
    )
    print(
        common.table(
            [
                "variant",
                "tokens/s",
                "ms/step",
                "MFU (fp32 ceiling)",
                "MFU (bf16 ceiling)",
                "vs keras-hub XLA fp32",
            ],
            rows,
        )
    )
    common.emit(
        f"train_throughput_{args.size}",
        {
            "flops_per_token": flops_per_token,
            "shape": dict(
                num_layers=mc.num_layers,
                num_heads=mc.num_heads,
                hidden_dim=mc.hidden_dim,
                mlp_dim=mc.resolved_mlp_dim,
                seq_len=mc.seq_len,
                batch_size=cfg.train.batch_size,
                vocab_size=mc.vocab_size,
            ),
            "matmul_n": n,
            "ceiling_flops": ceiling,
            "variants": summary,
            "raw": results,
        },
        args.out,
    )


def time_recipes(args, size):
    """The step of each named ablation row side by side, and its cost against the base's."""
    from experiments.ablations import BASE, BASE_PRESET, VARIANTS

    names = args.recipes.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"--recipes: unknown rows {unknown}; choose from {', '.join(VARIANTS)}")
    print(f"building {len(names)} recipes...", flush=True)
    variants = common.matmul_ceiling_variants(1024 if args.quick else size["matmul_n"])
    configs = {}
    for name in names:
        # The row's changes without its step count: the step runs as long as the timing needs.
        changes = {k: v for k, v in {**BASE, **VARIANTS[name]}.items() if k != "max_steps"}
        variants[name], configs[name] = ours(BASE_PRESET, seed=len(variants), **changes)
    print(f"timing {len(variants)} variants, {args.rounds} rounds of ~{args.seconds}s each...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds)
    base_ms = 1000 * results[names[0]]["seconds_per_call"]
    rows, summary = [], {}
    for name in names:
        r, cfg = results[name], configs[name]
        ms = 1000 * r["seconds_per_call"]
        summary[name] = {
            "changes": VARIANTS[name],
            "batch_size": cfg.train.batch_size,
            "tokens_per_sec": r["median"],
            "ms_per_step": ms,
            "step_vs_first": ms / base_ms,
            "ms_per_step_over_first": ms - base_ms,
            "rounds": r["rounds"],
        }
        rows.append(
            [
                f"`{name}`",
                cfg.train.batch_size,
                f"{r['median']:,.0f}",
                f"{ms:.1f}",
                f"{ms / base_ms:.2f}x",
                f"{ms - base_ms:+.1f}",
            ]
        )
    ceiling = {dtype: results[f"matmul_{dtype}"]["median"] for dtype in ("float32", "bfloat16")}
    print(
        f"\nmatmul ceiling: float32 {ceiling['float32'] / 1e9:,.1f} GFLOP/s, bfloat16 "
        f"{ceiling['bfloat16'] / 1e9:,.1f} GFLOP/s"
    )
    print(
        common.table(
            ["recipe", "batch", "tokens/s", "ms/step", f"step vs `{names[0]}`", f"ms over `{names[0]}`"], rows
        )
    )
    common.emit(
        f"train_throughput_recipes_{args.size}",
        {"ceiling_flops": ceiling, "recipes": summary, "raw": results},
        args.out,
    )


if __name__ == "__main__":
    main()
