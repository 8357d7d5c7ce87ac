"""GPT-2 124M: training and cached generation tokens/s beside keras-hub's GPT2CausalLM, and the export's.

The shape of GPT-2 small (12 layers, 12 heads, 768 wide, MLP 3072, context 1024,
vocabulary 50,257, biases, GELU tanh, tied head; 124,439,808 parameters) with random
weights: speed does not depend on them. One process, variants alternated round by
round (medians after warm-up):

- training, `ours_train` / `hub_train`: lm_keras's `TransformerLM` (what
  `python -m lm_keras.convert` builds from GPT-2) and keras-hub's `GPT2Backbone` in
  the same loop: AdamW, global-norm clipping, one `tf.function(jit_compile=True)` per
  step, the same random batches of `--batch` x `--train_len` tokens (a 2-core CPU
  cannot train on 1024-token windows in useful time; the context is still 1024).
- cached greedy generation of `--new_tokens` after a 16-token prompt, batch 1:
  `ours_generate` (`lm_keras.generation.generate`, XLA, key/value cache),
  `hub_generate` (`GPT2CausalLM.generate`, `compile(sampler="greedy",
  jit_compile=True)`, its own cache), and `exported` (the SavedModel of
  `lm_keras.serving`, tokenizer and loop in the graph, no XLA, as TF Serving runs it).
- `matmul_float32`: the machine's float32 matmul rate in the same rounds.

The tokenizer of the generation variants is a stand-in of GPT-2's size (256 bytes,
50,000 merges of byte pairs, <|endoftext|>), as no GPT-2 files can be downloaded here.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.gpt2
"""

from benchmarks import common

common.setup_environment()

GPT2 = dict(vocab_size=50257, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072, seq_len=1024)
# --quick: a model and tokenizer small enough to build in seconds; their figures mean nothing.
TINY = dict(vocab_size=512, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64, seq_len=64)
PROMPT = "First Citizen: Before we proceed any further, hear me speak."


def stand_in_tokenizer(vocab_size):
    """A byte-level BPE tokenizer of `vocab_size` ids: bytes, merges of byte pairs, <|endoftext|>."""
    from lm_keras.tokenizers import ByteLevelBPETokenizer
    from lm_keras.tokenizers.byte_level_bpe_tokenizer import BYTE_CHARS, END_OF_TEXT

    chars = [BYTE_CHARS[b] for b in range(256)]
    vocab = {c: i for i, c in enumerate(chars)}
    merges = [(a, b) for a in chars for b in chars][: vocab_size - 257]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[END_OF_TEXT] = len(vocab)
    return ByteLevelBPETokenizer(vocab, merges)


def adamw():
    """The optimizer of every training variant here: AdamW as GPT-2 is fine-tuned, clipped at 1."""
    import keras

    return keras.optimizers.AdamW(3e-4, weight_decay=0.1, beta_2=0.99, epsilon=1e-8, global_clipnorm=1.0)


def train_step(model_loss, variables, batches, jit):
    """The same loop for both models: AdamW, clipping, XLA; returns a callable giving tokens done.
    `model_loss(x, y)` is the batch's mean loss."""
    import tensorflow as tf

    optimizer = adamw()
    optimizer.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) < 2])
    optimizer.build(variables)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = model_loss(x, y)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    batch_iter = iter(batches)

    def run():
        x, y = next(batch_iter)
        float(step(x, y))
        return int(x.shape[0] * x.shape[1])

    return run


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--train_len", type=int, default=256)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--train_only", action="store_true", help="time training only, not generation")
    args = parser.parse_args(argv)
    shape, warmup = dict(GPT2), 2
    if args.quick:
        args.rounds, args.seconds, args.new_tokens, args.train_len, warmup = 1, 0.05, 4, 16, 1
        shape.update(TINY)
    jit = not args.quick  # --quick: XLA's compile takes too long

    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    from lm_keras.generation import generate
    from lm_keras.models import TransformerLM
    from lm_keras.serving.generation_module import GenerationModule
    from lm_keras.serving.saved_model_export import save_version

    keras.utils.set_random_seed(1)
    print("building the models...", flush=True)
    ours = TransformerLM(use_bias=True, mlp="gelu_tanh", **shape)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=shape["vocab_size"],
        num_layers=shape["num_layers"],
        num_heads=shape["num_heads"],
        hidden_dim=shape["hidden_dim"],
        intermediate_dim=shape["mlp_dim"],
        dropout=0.0,
        max_sequence_length=shape["seq_len"],
    )
    parameters = {"ours": ours.count_params(), "keras_hub": backbone.count_params()}
    print(f"parameters: {parameters}", flush=True)

    rng = np.random.default_rng(0)
    windows = rng.integers(0, shape["vocab_size"], (64, args.batch, args.train_len + 1), dtype=np.int32)
    batches = [(tf.constant(w[:, :-1]), tf.constant(w[:, 1:])) for w in windows]
    mask = tf.ones((args.batch, args.train_len), tf.bool)
    variants = dict(common.matmul_ceiling_variants(256 if args.quick else 4096, dtypes=("float32",)))
    variants["ours_train"] = train_step(
        logits_loss(lambda x: ours(x, training=True)), ours.trainable_variables, batches, jit
    )
    variants["hub_train"] = train_step(
        logits_loss(
            lambda x: backbone.token_embedding(
                backbone({"token_ids": x, "padding_mask": mask}, training=True), reverse=True
            )
        ),
        backbone.trainable_variables,
        batches,
        jit,
    )
    variants["hub_fit_train"] = hub_fit_step(backbone, batches, mask, jit)
    if args.train_only:
        return finish(args, shape, parameters, variants, warmup)

    tokenizer = stand_in_tokenizer(shape["vocab_size"])
    prompt_ids = tokenizer.encode(PROMPT)[:16]
    prompt = tokenizer.decode(prompt_ids)
    n = args.new_tokens

    def ours_generate():
        generate(ours, tokenizer, [prompt], max_new_tokens=n, temperature=0.0, jit_compile=jit)
        return n

    causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    causal_lm.compile(sampler="greedy", jit_compile=jit)
    ids = np.zeros((1, len(prompt_ids) + n), np.int32)
    ids[0, : len(prompt_ids)] = prompt_ids
    prompt_mask = np.arange(ids.shape[1])[None, :] < len(prompt_ids)
    hub_inputs = {"token_ids": tf.constant(ids), "padding_mask": tf.constant(prompt_mask)}

    def hub_generate():
        out = causal_lm.generate(hub_inputs, stop_token_ids=None)
        assert out["token_ids"].shape[1] == ids.shape[1]
        return n

    print("exporting the SavedModel...", flush=True)
    path = save_version(
        GenerationModule(ours, tokenizer, max_new_tokens=n, temperature=0.0),
        common.scratch_dir(prefix="bench_gpt2_"),
    )
    exported = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run_exported():
        exported(prompt=tf.constant([prompt]))["continuation"].numpy()
        return n

    variants.update(ours_generate=ours_generate, hub_generate=hub_generate, exported=run_exported)
    finish(args, shape, parameters, variants, warmup, new_tokens=n, prompt_tokens=len(prompt_ids))


def logits_loss(model_logits):
    """The mean cross-entropy of the logits `model_logits(x)` (B, T, V)."""
    import tensorflow as tf

    def loss(x, y):
        logits = tf.cast(model_logits(x), tf.float32)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    return loss


def hub_fit_step(backbone, batches, mask, jit):
    """keras-hub's GPT2CausalLM as users train it: `compile(jit_compile=...)` with the loop's AdamW
    (and clipping), its default loss and accuracy metric, Keras's own train step."""
    import keras_hub

    causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    optimizer = adamw()
    causal_lm.compile(optimizer=optimizer, jit_compile=jit)
    batch_iter = iter(batches)

    def run():
        x, y = next(batch_iter)
        causal_lm.train_on_batch({"token_ids": x, "padding_mask": mask}, y)  # returns numbers: synchronised
        return int(x.shape[0] * x.shape[1])

    return run


def finish(args, shape, parameters, variants, warmup, new_tokens=None, prompt_tokens=None):
    """Times the variants side by side and writes the record."""
    print(f"timing {len(variants)} variants, {args.rounds} rounds of ~{args.seconds}s each...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds, warmup=warmup)
    ceiling = results.pop("matmul_float32")["median"]
    flops_per_token = common.transformer_flops_per_token(
        shape["num_layers"], shape["hidden_dim"], shape["mlp_dim"], args.train_len, shape["vocab_size"]
    )
    summary = {}
    for name, r in results.items():
        peer = results["hub_train" if "train" in name else "hub_generate"]["median"]
        summary[name] = {
            "tokens_per_sec": r["median"],
            "seconds_per_call": r["seconds_per_call"],
            "first_call_seconds": r.get("first_call_seconds"),
            "vs_keras_hub": r["median"] / peer,
            "rounds": r["rounds"],
        }
        if "train" in name:
            summary[name]["vs_keras_hub_fit"] = r["median"] / results["hub_fit_train"]["median"]
            summary[name]["mfu_vs_float32_ceiling"] = r["median"] * flops_per_token / ceiling
    common.emit(
        "gpt2",
        {
            "quick": args.quick,
            "shape": shape,
            "parameters": parameters,
            "train": {"batch": args.batch, "length": args.train_len, "flops_per_token": flops_per_token},
            "new_tokens": new_tokens,
            "prompt_tokens": prompt_tokens,
            "ceiling_flops_float32": ceiling,
            "variants": summary,
            "raw": results,
        },
        args.out,
    )


def rows(result):
    """RESULTS.md's rows: ours beside keras-hub at GPT-2's shape, training and generating."""
    v, train = result["variants"], result["train"]
    what = {"ours_train": f"training tokens/s, batches of {train['batch']} x {train['length']}"}
    if result["new_tokens"]:
        what["ours_generate"] = f"cached greedy generation, {result['new_tokens']} new tokens, batch 1"
        what["exported"] = "the same through the exported SavedModel (no XLA)"
    return [
        common.row(
            f"GPT-2 {result['parameters']['ours']:,} parameters: {text}",
            (
                v[name]["tokens_per_sec"],
                f"{v[name]['tokens_per_sec']:,.1f} ({v[name]['vs_keras_hub']:.2f}x keras-hub)",
            ),
        )
        for name, text in what.items()
    ]


if __name__ == "__main__":
    main()
