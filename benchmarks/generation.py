"""Generation speed: new tokens per second, cached against uncached, in-process against
the exported SavedModel, against keras-hub's `GPT2CausalLM.generate` of the same shape.

The model: a `TransformerLM` of the CPU preset's shape (4 layers, 4 heads, 128
wide, MLP 512; `--size=gpu`: 6 x 384) with a 1024-token context (GPT-2's), so 512 new
tokens fit after the prompt; random weights (speed does not depend on them); greedy decoding of
512 new tokens after 6-character prompts, for one prompt and for a batch of 8.

Variants, alternated round by round (medians after warm-up):

- `ours_cached_xla` / `ours_cached_graph`: `lm_keras.generation.generate(...,
  use_cache=True, jit_compile=True/False)`: one `tf.while_loop` with the
  key/value cache.
- `ours_uncached_xla`: `use_cache=False`: every new token recomputes the full
  1024-token window (what decoding without a cache costs; XLA, its faster form).
  Its calls are long (tens of seconds), so it runs in its own rounds
  (`--uncached_rounds`, after one warm-up call).
- `exported`: the SavedModel that `lm_keras.serving` exports (tokenizer and
  cached decoding loop in one graph, no XLA, as TF Serving runs it), loaded with
  `tf.saved_model.load` in this process; its `serving_default` exported greedy
  with 512 new tokens.
- `exported_xla`: the same export with `--jit_compile=true` (the decoding loop an
  XLA function inside the SavedModel), loaded the same way.
- `hub_xla` / `hub_graph`: keras-hub's `GPT2CausalLM` on a `GPT2Backbone` of the
  same shape and context, `compile(sampler="greedy", jit_compile=True/False)`,
  `generate({"token_ids", "padding_mask"}, stop_token_ids=None)` on buffers of
  prompt + 512 tokens (keras-hub's own cached loop; on a CPU-only machine
  keras-hub does not use XLA unless told to).

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.generation
"""

from benchmarks import common

common.setup_environment()

SHAPES = {
    "cpu": dict(num_layers=4, num_heads=4, hidden_dim=128, mlp_dim=512),
    "gpu": dict(num_layers=6, num_heads=6, hidden_dim=384, mlp_dim=1536),
    "tiny": dict(num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64),  # --quick: figures mean nothing
}
TARGETS = {  # issue 15's
    "cached_over_uncached": 10.0,
    "vs_hub_xla": {1: 2.5, 8: 2.0},
    "exported_xla_vs_ours": 0.9,
    "batch_scaling": 3.0,
}
PROMPTS = ["ROMEO:", "JULIET", "HAMLET", "KING R", "First ", "MENENI", "Second", "LUCIO:"]


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--new_tokens", type=int, default=512)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--uncached_rounds", type=int, default=1)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args(argv)
    warmup = 2
    if args.quick:
        args.rounds, args.seconds, args.new_tokens, args.context, warmup = 1, 0.05, 8, 32, 1
        args.batches = "1,2"

    import keras
    import numpy as np
    import tensorflow as tf

    from lm_keras import tokenizers
    from lm_keras.data import load_corpus
    from lm_keras.generation import generate
    from lm_keras.models import TransformerLM
    from lm_keras.serving.generation_module import GenerationModule
    from lm_keras.serving.saved_model_export import save_version

    keras.utils.set_random_seed(1)
    train_text, _ = load_corpus("tiny_shakespeare").split(0.1)
    tokenizer = tokenizers.train("char", train_text)
    shape = SHAPES["tiny" if args.quick else args.size]
    model = TransformerLM(vocab_size=tokenizer.vocab_size, seq_len=args.context, **shape)
    n = args.new_tokens

    print("exporting the SavedModel...", flush=True)
    export_dir = common.scratch_dir(prefix="bench_export_")
    exported = {}
    jits = (False,) if args.quick else (False, True)  # --quick: XLA's compile takes too long
    for jit in jits:
        module = GenerationModule(
            model,
            tokenizer,
            max_new_tokens=n,
            temperature=0.0,
            max_new_tokens_limit=max(n, 1024),
            jit_compile=jit,
        )
        path = save_version(module, export_dir)
        exported[jit] = tf.saved_model.load(str(path)).signatures["serving_default"]

    hub = {}
    try:
        import keras_hub

        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=tokenizer.vocab_size,
            num_layers=shape["num_layers"],
            num_heads=shape["num_heads"],
            hidden_dim=shape["hidden_dim"],
            intermediate_dim=shape["mlp_dim"],
            dropout=0.0,
            max_sequence_length=args.context,
        )
        for jit in reversed(jits):
            causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
            causal_lm.compile(sampler="greedy", jit_compile=jit)
            hub["xla" if jit else "graph"] = causal_lm
    except ImportError:
        print("keras-hub is not installed (pip install -e '.[bench]'): no peer figures", flush=True)

    fast, slow = {}, {}
    for batch in (int(b) for b in args.batches.split(",")):
        prompts = PROMPTS[:batch]
        tokens = batch * n

        def ours(use_cache, jit, prompts=prompts, tokens=tokens):
            def run():
                out = generate(
                    model,
                    tokenizer,
                    prompts,
                    max_new_tokens=n,
                    temperature=0.0,
                    use_cache=use_cache,
                    jit_compile=jit,
                )
                assert len(out[0]) == n, len(out[0])
                return tokens

            return run

        def savedmodel(jit, prompts=prompts, tokens=tokens):
            def run():
                out = exported[jit](prompt=tf.constant(prompts))["continuation"].numpy()
                assert len(out[0]) == n
                return tokens

            return run

        fast[f"ours_cached_graph_b{batch}"] = ours(True, False)
        fast[f"exported_b{batch}"] = savedmodel(False)
        if not args.quick:
            fast[f"ours_cached_xla_b{batch}"] = ours(True, True)
            fast[f"exported_xla_b{batch}"] = savedmodel(True)
        ids = np.zeros((batch, len(prompts[0]) + n), np.int32)
        mask = np.zeros_like(ids, dtype=bool)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = tokenizer.encode(p)
            mask[i, : len(p)] = True
        hub_inputs = {"token_ids": tf.constant(ids), "padding_mask": tf.constant(mask)}
        for kind, causal_lm in hub.items():

            def run_hub(causal_lm=causal_lm, tokens=tokens, hub_inputs=hub_inputs, width=ids.shape[1]):
                out = causal_lm.generate(hub_inputs, stop_token_ids=None)
                assert out["token_ids"].shape[1] == width
                return tokens

            fast[f"hub_{kind}_b{batch}"] = run_hub
        if args.uncached_rounds > 0 and not args.quick:
            slow[f"ours_uncached_xla_b{batch}"] = ours(False, True)

    print(f"timing {len(fast)} variants, {args.rounds} rounds...", flush=True)
    results = common.alternate(fast, rounds=args.rounds, seconds=args.seconds, warmup=warmup)
    print(f"timing {len(slow)} uncached variants, {args.uncached_rounds} rounds of one call...", flush=True)
    if slow:
        results.update(common.alternate(slow, rounds=args.uncached_rounds, warmup=1, repeats=1))

    summary = {}
    for name, r in results.items():
        kind, batch = name.rsplit("_b", 1)
        cached = results.get(f"ours_cached_xla_b{batch}", {}).get("median")
        hub_xla = results.get(f"hub_xla_b{batch}", {}).get("median")
        summary[name] = {
            "new_tokens_per_sec": r["median"],
            "batch": int(batch),
            "seconds_per_call": r["seconds_per_call"],
            "rounds": r["rounds"],
            "first_call_seconds": r.get("first_call_seconds"),
            "vs_ours_cached_xla": r["median"] / cached if cached else None,
            "vs_hub_xla": r["median"] / hub_xla if hub_xla else None,
        }
    common.emit(
        "generation",
        {
            "size": args.size,
            "quick": args.quick,
            "new_tokens": n,
            "context": args.context,
            "shape": shape,
            "variants": summary,
            "raw": results,
        },
        args.out,
    )


def rows(result):
    """RESULTS.md's rows: the cache's gain, ours against keras-hub, the export against ours, batching.

    Each compares the XLA variants (a --quick run has only the graph ones, and compares those).
    """
    v, n = result["variants"], result["new_tokens"]
    batches = sorted({x["batch"] for x in v.values()})

    def pick(batch, *kinds):  # the first of `kinds` measured at `batch`: (name, its figures)
        return next(((k, v[f"{k}_b{batch}"]) for k in kinds if f"{k}_b{batch}" in v), (None, None))

    out = []
    for b in batches:
        cached, uncached = v.get(f"ours_cached_xla_b{b}"), v.get(f"ours_uncached_xla_b{b}")
        if cached and uncached:
            gain, goal = (
                cached["new_tokens_per_sec"] / uncached["new_tokens_per_sec"],
                TARGETS["cached_over_uncached"],
            )
            out.append(
                common.row(
                    f"cached / uncached decoding (XLA), batch {b}, {n} new tokens",
                    (gain, f"{gain:.1f}x"),
                    (">=", goal, f"{goal:.0f}x"),
                )
            )
    for b in batches:
        ours, cached = pick(b, "ours_cached_xla", "ours_cached_graph")
        hub, peer = pick(b, "hub_xla", "hub_graph")
        export, exported = pick(b, "exported_xla", "exported")
        if cached and peer:
            ratio, goal = (
                cached["new_tokens_per_sec"] / peer["new_tokens_per_sec"],
                TARGETS["vs_hub_xla"].get(b),
            )
            out.append(
                common.row(
                    f"`{ours}` / keras-hub's `GPT2CausalLM.generate` (`{hub}`), batch {b}",
                    (ratio, f"{ratio:.2f}x"),
                    (">=", goal, f"{goal}x") if goal else None,
                )
            )
        if cached and exported:
            ratio, goal = (
                exported["new_tokens_per_sec"] / cached["new_tokens_per_sec"],
                TARGETS["exported_xla_vs_ours"],
            )
            out.append(
                common.row(
                    f"the export (`{export}`) / in-process `{ours}`, batch {b}",
                    (ratio, f"{ratio:.2f}x"),
                    (">=", goal, f"{goal}x"),
                )
            )
    ours, one = pick(1, "ours_cached_xla", "ours_cached_graph")
    _, most = pick(batches[-1], ours)
    if one and most and batches[-1] > 1:
        ratio, goal = most["new_tokens_per_sec"] / one["new_tokens_per_sec"], TARGETS["batch_scaling"]
        out.append(
            common.row(
                f"new tokens/s at batch {batches[-1]} / batch 1, `{ours}`",
                (ratio, f"{ratio:.2f}x"),
                (">=", goal, f"{goal:.0f}x"),
            )
        )
    return out


if __name__ == "__main__":
    main()
