"""Training throughput and model FLOPs utilisation, against keras-hub's GPT2 of the same shape.

One process, variants alternated round by round (medians after warm-up):

- `matmul_float32`, `matmul_bfloat16`: the machine's ceiling, large square products
  through TensorFlow (the denominator of MFU), measured in the same rounds.
- `ours_{xla,graph}_{float32,bfloat16}`: lm_keras's own compiled step
  (`Trainer.make_train_step()`, AdamW, clipping, as `python -m lm_keras.train` runs
  it) on the `shakespeare_char_cpu` preset (`--size=gpu`: `shakespeare_char`), fed by
  lm_keras's tf.data pipeline.
- `hub_{xla,graph}_{float32,bfloat16}`: keras-hub's `GPT2Backbone` of the same shape (4 layers,
  4 heads, 128 wide, 512 MLP, context 64, batch 12, dropout 0; tied output head),
  in the same loop: AdamW with the same settings, global-norm clipping, one
  `tf.function(jit_compile=...)` per step, the same batches (our trainer's).
- `hub_fit_xla_float32`: the same backbone as users would train it,
  `GPT2CausalLM.compile(..., jit_compile=True)` and `train_on_batch` (Keras's own
  train step, with its default accuracy metric).

Tokens/s counts input tokens (batch x context) per second; MFU is model FLOPs per
token (`common.transformer_flops_per_token`) times tokens/s over the float32 ceiling.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.train_throughput
"""

from benchmarks import common

common.setup_environment()

SIZES = {
    # preset, keras-hub shape (the same), matmul ceiling size
    "cpu": dict(preset="shakespeare_char_cpu", matmul_n=4096),
    "gpu": dict(preset="shakespeare_char", matmul_n=8192),
}
# --quick: a model small enough to build and compile in seconds; its figures mean nothing.
TINY = dict(num_layers=1, num_heads=2, hidden_dim=32, seq_len=32, batch_size=4)
TARGET_HUB_RATIO = 1.5
TARGET_MFU = 0.5


def ours(preset_name, **overrides):
    """lm_keras's step, as the trainer runs it, for a preset and config overrides:
    (callable, resolved config, batches)."""
    from lm_keras.config import preset

    config = preset(preset_name).replace(max_steps=10**9, **overrides)
    trainer, step, batches = common.timed_trainer(config, common.scratch_dir(prefix="bench_train_"))
    mc, tc = trainer.config.model, trainer.config.train
    feed = batches()
    tokens = tc.batch_size * mc.seq_len

    def run():
        float(step(next(feed)))  # the trainer reads the loss every step, which synchronises
        return tokens

    return run, trainer.config, batches


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


def hub_optimizer(tc, learning_rate=1e-3):
    """AdamW with the preset's settings (`tc`, its TrainConfig) and clipping, for keras-hub's models."""
    import keras

    return keras.optimizers.AdamW(
        learning_rate,
        weight_decay=tc.weight_decay,
        beta_1=tc.beta1,
        beta_2=tc.beta2,
        epsilon=1e-8,
        global_clipnorm=tc.grad_clip,
    )


def hub_causal_lm(cfg, learning_rate):
    """keras-hub's GPT2CausalLM of `cfg`'s shape, compiled as users train it: `jit_compile=True`,
    `hub_optimizer` at `learning_rate` (a number or a schedule), its own loss and accuracy metric."""
    import keras_hub

    causal_lm = keras_hub.models.GPT2CausalLM(backbone=hub_backbone(cfg, "float32"), preprocessor=None)
    causal_lm.compile(optimizer=hub_optimizer(cfg.train, learning_rate), jit_compile=True)
    return causal_lm


def hub_step(cfg, batches, jit, precision):
    """keras-hub's GPT2Backbone in the same loop as ours (same optimizer, clipping, batches)."""
    import tensorflow as tf

    mc, tc = cfg.model, cfg.train
    backbone = hub_backbone(cfg, precision)
    variables = backbone.trainable_variables
    optimizer = hub_optimizer(tc)
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

    tokens = tc.batch_size * mc.seq_len

    def run():
        float(step(*next(batches)))
        return tokens

    return run


def hub_fit(cfg, batches):
    """keras-hub as users train it: GPT2CausalLM, compile(jit_compile=True), Keras's train step."""
    import tensorflow as tf

    mc, tc = cfg.model, cfg.train
    causal_lm = hub_causal_lm(cfg, 1e-3)
    mask = tf.ones((tc.batch_size, mc.seq_len), tf.bool)
    tokens = tc.batch_size * mc.seq_len

    def run():
        x, y = next(batches)
        causal_lm.train_on_batch({"token_ids": x, "padding_mask": mask}, y)  # returns numbers: synchronised
        return tokens

    return run


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help="comma-separated subset of variant names")
    args = parser.parse_args(argv)
    size, tiny, warmup = SIZES[args.size], {}, 2
    if args.quick:
        args.rounds, args.seconds, warmup, tiny = 1, 0.05, 1, TINY
        args.variants = args.variants or "ours_graph_float32,hub_graph_float32"  # XLA compiles too long
    wanted = set(filter(None, args.variants.split(",")))

    def keep(name):
        return not wanted or name in wanted

    print(f"building variants ({args.size} sizes)...", flush=True)
    variants = common.matmul_ceiling_variants(256 if args.quick else size["matmul_n"])
    cfg = batches = None
    for jit in (True, False):
        for precision in ("float32", "bfloat16"):
            name = f"ours_{'xla' if jit else 'graph'}_{precision}"
            if keep(name):
                variants[name], cfg, batches = ours(
                    size["preset"], jit_compile=str(jit).lower(), mixed_precision=precision, **tiny
                )
    try:
        import keras_hub  # noqa: F401

        for jit in (True, False):
            for precision in ("float32", "bfloat16"):
                name = f"hub_{'xla' if jit else 'graph'}_{precision}"
                if keep(name):
                    variants[name] = hub_step(cfg, batches(), jit, precision)
        if keep("hub_fit_xla_float32"):
            variants["hub_fit_xla_float32"] = hub_fit(cfg, batches())
    except ImportError:
        print("keras-hub is not installed (pip install -e '.[bench]'): no peer figures", flush=True)

    print(f"timing {len(variants)} variants, {args.rounds} rounds of ~{args.seconds}s each...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds, warmup=warmup)
    mc = cfg.model
    flops_per_token = common.transformer_flops_per_token(
        mc.num_layers, mc.hidden_dim, mc.resolved_mlp_dim, mc.seq_len, mc.vocab_size
    )
    ceiling = {dtype: results.pop(f"matmul_{dtype}")["median"] for dtype in ("float32", "bfloat16")}
    peer = results.get("hub_xla_float32", {}).get("median")
    summary = {}
    for name, r in results.items():
        summary[name] = {
            "tokens_per_sec": r["median"],
            "ms_per_step": 1000 * r["seconds_per_call"],
            "mfu_vs_float32_ceiling": r["median"] * flops_per_token / ceiling["float32"],
            "mfu_vs_bfloat16_ceiling": r["median"] * flops_per_token / ceiling["bfloat16"],
            "vs_hub_xla_float32": r["median"] / peer if peer else None,
            "rounds": r["rounds"],
        }
    shape = dict(
        num_layers=mc.num_layers,
        num_heads=mc.num_heads,
        hidden_dim=mc.hidden_dim,
        mlp_dim=mc.resolved_mlp_dim,
        seq_len=mc.seq_len,
        batch_size=cfg.train.batch_size,
        vocab_size=mc.vocab_size,
    )
    common.emit(
        "train_throughput",
        {
            "size": args.size,
            "quick": args.quick,
            "preset": size["preset"],
            "flops_per_token": flops_per_token,
            "shape": shape,
            "ceiling_flops": ceiling,
            "variants": summary,
            "raw": results,
        },
        args.out,
    )


def rows(result):
    """RESULTS.md's rows: our step's speed, against keras-hub's and against the matmul ceiling."""
    v = result["variants"]
    ours = {k: x for k, x in v.items() if k.startswith("ours_")}
    best = max(ours, key=lambda k: ours[k]["tokens_per_sec"])
    out = [
        common.row(
            f"tokens/s, `{result['preset']}`, `{best}` (the fastest of ours)",
            (ours[best]["tokens_per_sec"], f"{ours[best]['tokens_per_sec']:,.0f}"),
        ),
        common.row(
            f"MFU of `{best}`, against the float32 matmul ceiling "
            f"({result['ceiling_flops']['float32'] / 1e9:,.1f} GFLOP/s)",
            (ours[best]["mfu_vs_float32_ceiling"], f"{100 * ours[best]['mfu_vs_float32_ceiling']:.1f}%"),
            (">=", TARGET_MFU, f"{100 * TARGET_MFU:.0f}%"),
        ),
    ]
    ratio = ours[best]["vs_hub_xla_float32"]
    if ratio:
        out.append(
            common.row(
                f"`{best}` against keras-hub's GPT2Backbone in the same loop (XLA, float32)",
                (ratio, f"{ratio:.2f}x"),
                (">=", TARGET_HUB_RATIO, f"{TARGET_HUB_RATIO}x"),
            )
        )
    return out


if __name__ == "__main__":
    main()
