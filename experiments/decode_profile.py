"""Where a cached decode step's time goes: the same XLA while loop of N steps, doing less and less.

The model: generation.py's (a `TransformerLM` of the CPU preset's shape, context 1024,
random weights). Each variant is one `tf.function(jit_compile=True)` running a
`tf.while_loop` of `--steps` iterations at batch B; it reports microseconds per step:

- `decode`: `lm_keras.generation.decode`, greedy: the real loop (phases of growing
  cache, sampling, token writes), per new token.
- `step_S<n>`: `call_with_cache` on one token against a cache of n slots, plus an
  argmax, in a bare loop: the model step's cost as a function of the slots it attends
  over (the phases keep S within 2x of the filled part).
- `sample`: `sample_next_tokens` alone on fixed logits (greedy, then temperature 0.9
  with top_k 40 and top_p 0.9): what sampling adds per step.
- `empty`: a loop that carries the same state and does one add: the loop's own cost.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.decode_profile
"""

from benchmarks import common

common.setup_environment()


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.steps, args.context = 2, 0.2, 16, 128

    import keras
    import tensorflow as tf

    from lm_keras.generation import decode, decoder_for
    from lm_keras.generation.sampling import sample_next_tokens
    from lm_keras.models import TransformerLM

    keras.utils.set_random_seed(1)
    vocab = 65
    model = TransformerLM(
        vocab_size=vocab, seq_len=args.context, num_layers=4, num_heads=4, hidden_dim=128, mlp_dim=512
    )
    decoder = decoder_for(model)
    n = args.steps
    variants = {}
    for batch in (int(b) for b in args.batches.split(",")):
        ids = tf.ones([batch, 6], tf.int32)
        lengths = tf.fill([batch], 6)
        zeros, ones = tf.zeros([batch]), tf.ones([batch])
        seeds = tf.range(batch, dtype=tf.int64)

        @tf.function(jit_compile=True)
        def full(ids=ids, lengths=lengths, zeros=zeros, ones=ones, seeds=seeds, batch=batch):
            return decode(decoder, ids, lengths, n, n, zeros, tf.zeros([batch], tf.int32), ones, seeds)

        def step_loop(slots, batch=batch):
            @tf.function(jit_compile=True)
            def run():
                def body(i, token, cache):
                    logits, cache = model.call_with_cache(token, cache, i % slots)
                    return i + 1, tf.argmax(logits[:, -1], axis=-1, output_type=tf.int32)[:, None], cache

                return tf.while_loop(
                    lambda i, *_: i < n,
                    body,
                    (tf.constant(0), tf.ones([batch, 1], tf.int32), model.init_cache(batch, slots)),
                )[1]

            return run

        def sample_loop(temperature, top_k, top_p, batch=batch, seeds=seeds):
            logits = tf.random.normal([batch, vocab])

            @tf.function(jit_compile=True)
            def run():
                def body(i, total):
                    token = sample_next_tokens(
                        logits,
                        tf.fill([batch], temperature),
                        tf.fill([batch], top_k),
                        tf.fill([batch], top_p),
                        seeds,
                        i,
                    )
                    return i + 1, total + token

                return tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), tf.zeros([batch], tf.int32)))[
                    1
                ]

            return run

        @tf.function(jit_compile=True)
        def empty(batch=batch):
            def body(i, state):
                return i + 1, state + 1.0

            return tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), tf.zeros([batch, vocab])))[1]

        def timed(fn):
            def run():
                fn().numpy()
                return n

            return run

        variants[f"decode_b{batch}"] = timed(full)
        for slots in (args.context // 8, args.context // 2, args.context):
            variants[f"step_S{slots}_b{batch}"] = timed(step_loop(slots))
        variants[f"sample_greedy_b{batch}"] = timed(sample_loop(0.0, 0, 1.0))
        variants[f"sample_topk_topp_b{batch}"] = timed(sample_loop(0.9, 40, 0.9))
        variants[f"empty_b{batch}"] = timed(empty)

    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds)
    rows = []
    for name, r in results.items():
        kind, batch = name.rsplit("_b", 1)
        rows.append([kind, batch, f"{1e6 / r['median']:,.1f}", f"{r['median']:,.0f}"])
    print()
    print(f"{n} steps per loop, context {args.context}, XLA")
    print(common.table(["variant", "batch", "us/step", "steps/s"], rows))
    common.emit("decode_profile", {"steps": n, "context": args.context, "raw": results}, args.out)


if __name__ == "__main__":
    main()
