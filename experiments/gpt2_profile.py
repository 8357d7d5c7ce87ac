"""Where a full fine-tuning step of GPT-2 124M's shape spends its time, part by part, compiled by XLA.

One process, GPT-2 small's shape (12 x 768, 12 heads, MLP 3072, vocabulary 50,257, biases, GELU
tanh, tied head) with random weights, batch `--batch` of `--train_len`-token windows. Each part is
its own `tf.function(jit_compile=True)`, timed alternately round by round (medians):

- `step`: the whole training step as the trainer runs it (AdamW with weight decay and
  global-norm clipping);
- `forward_backward`: the loss and every gradient, no update;
- `forward`: the training loss alone;
- `optimizer`: the AdamW update with clipping, on fixed gradients;
- `blocks`: the 12 blocks' forward and backward (into their inputs and weights), no embedding or head;
- `attention_core`: softmax(Q K^T / sqrt(D)) V with its causal mask, forward and backward, for
  the 12 layers (what is neither a projection nor elementwise work of the block);
- `head`: the final norm, the tied 50,257-way projection and the cross-entropy, forward and
  backward (into the hidden states and the embedding).

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.gpt2_profile --train_len=256
"""

from benchmarks import common

common.setup_environment()

GPT2 = dict(vocab_size=50257, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072, seq_len=1024)
TINY = dict(vocab_size=512, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64, seq_len=64)


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--train_len", type=int, default=256)
    args = parser.parse_args(argv)
    shape = dict(TINY if args.quick else GPT2)
    if args.quick:
        args.rounds, args.seconds, args.train_len = 1, 0.05, 16

    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.gpt2 import adamw, logits_loss, train_step
    from lm_keras.models import TransformerLM

    keras.utils.set_random_seed(1)
    model = TransformerLM(use_bias=True, mlp="gelu_tanh", **shape)
    variables = model.trainable_variables
    b, t, d, h = args.batch, args.train_len, shape["hidden_dim"], shape["num_heads"]
    rng = np.random.default_rng(0)
    windows = rng.integers(0, shape["vocab_size"], (64, b, t + 1), dtype=np.int32)
    batches = [(tf.constant(w[:, :-1]), tf.constant(w[:, 1:])) for w in windows]
    x, y = batches[0]
    loss_fn = logits_loss(lambda x: model(x, training=True))
    jit = not args.quick

    def timed(fn, *inputs):
        def run():
            [o.numpy() for o in tf.nest.flatten(fn(*inputs)) if o is not None]
            return 1

        return run

    @tf.function(jit_compile=jit)
    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(x, y)
        return loss, [tf.reduce_sum(tf.convert_to_tensor(g)) for g in tape.gradient(loss, variables)]

    @tf.function(jit_compile=jit)
    def forward(x, y):
        return loss_fn(x, y)

    with tf.GradientTape() as tape:
        loss = loss_fn(x, y)
    fixed = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
    optimizer = adamw()
    optimizer.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) < 2])
    optimizer.build(variables)

    @tf.function(jit_compile=jit)
    def optimizer_only(grads):
        optimizer.apply(grads, variables)
        return tf.constant(0.0)

    hidden = tf.random.normal((b, t, d))
    block_variables = [v for block in model.blocks for v in block.trainable_variables]

    @tf.function(jit_compile=jit)
    def blocks(hidden):
        with tf.GradientTape() as tape:
            tape.watch(hidden)
            out = hidden
            for block in model.blocks:
                out = block(out, training=True)
            loss = tf.reduce_sum(out * out)
        return [tf.reduce_sum(g) for g in tape.gradient(loss, [hidden, *block_variables])]

    qkv = tf.random.normal((3, b, t, h, d // h))

    @tf.function(jit_compile=jit)
    def attention_core(qkv):
        with tf.GradientTape() as tape:
            tape.watch(qkv)
            total = 0.0
            causal = tf.range(t)[:, None] >= tf.range(t)[None, :]
            for _ in range(shape["num_layers"]):
                scores = tf.einsum("bthk,bshk->bhts", qkv[0] / np.sqrt(d // h), qkv[1])
                weights = tf.nn.softmax(tf.where(causal, scores, -1e9), axis=-1)
                total += tf.reduce_sum(tf.einsum("bhts,bshk->bthk", weights, qkv[2]) ** 2)
        return tape.gradient(total, qkv)[0, 0, 0, 0, 0]

    matrix = model.token_embedding.embeddings

    @tf.function(jit_compile=jit)
    def head(hidden, y):
        with tf.GradientTape() as tape:
            tape.watch(hidden)
            logits = model.token_embedding(model.final_norm(hidden), reverse=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        dh, de = tape.gradient(loss, [hidden, matrix])
        return tf.reduce_sum(dh), tf.reduce_sum(tf.convert_to_tensor(de))

    variants = {
        "step": train_step(loss_fn, variables, batches, jit),
        "forward_backward": timed(forward_backward, x, y),
        "forward": timed(forward, x, y),
        "optimizer": timed(optimizer_only, fixed),
        "blocks": timed(blocks, hidden),
        "attention_core": timed(attention_core, qkv),
        "head": timed(head, hidden, y),
    }
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds, warmup=2)
    ms = {name: 1000 * r["seconds_per_call"] for name, r in results.items()}
    step = ms["step"]
    print(f"\nGPT-2 124M's shape, batch {b} x {t} tokens, XLA: ms per call, and against the whole step")
    print(
        common.table(
            ["part", "ms", "of the step"], [[k, f"{v:,.0f}", f"{v / step:.2f}"] for k, v in ms.items()]
        )
    )
    common.emit(
        f"gpt2_profile_{b}x{t}",
        {"quick": args.quick, "shape": shape, "batch": b, "train_len": t, "ms": ms, "raw": results},
        args.out,
    )


if __name__ == "__main__":
    main()
