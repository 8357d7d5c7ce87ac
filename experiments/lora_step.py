"""LoRA against full fine-tuning at the GPT-2 124M shape: step time and peak memory, whole processes.

Each variant runs in its own process (peak RSS is a process's), one after the other: GPT-2
small's shape (12 x 768, MLP 3072, context 1024, vocabulary 50,257, biases, GELU tanh, tied
head) with random weights, trained on `--batch` windows of `--train_len` tokens (the model
keeps its 1,024 positions) by benchmarks/gpt2.py's loop: AdamW with global-norm clipping, one
`tf.function(jit_compile=True)` per step.

- `full`: every weight trains (124M parameters, two Adam moments each).
- `lora`: `TransformerLM.enable_lora(--rank, --rank, "attention")`, query and value adapters;
  the base is frozen and only the adapters (and their moments) are in the optimizer.

Reported per variant: the first step (tracing and XLA's compile), the median of `--steps`
timed steps after it, tokens/s, the trainable parameters, the peak RSS (ru_maxrss) after
building the model and at the end, and the head's share: the final norm, tied 50,257-way
projection and cross-entropy with their backward, compiled alone (`head_and_loss_s`).

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.lora_step
"""

import json
import resource
import statistics
import subprocess
import sys
import time

from benchmarks import common

common.setup_environment()

GPT2 = dict(vocab_size=50257, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072, seq_len=1024)
TINY = dict(vocab_size=512, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64, seq_len=64)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def head_seconds(model, args, tf, np, trains_embedding):
    """Median seconds of the head alone, compiled: final norm, the tied 50,257-way projection, the
    cross-entropy and their backward to the hidden states (and to the embedding when it trains)."""
    hidden = tf.random.normal((args.batch, args.train_len, model.hidden_dim))
    labels = tf.zeros((args.batch, args.train_len), tf.int32)
    embeddings = model.token_embedding.embeddings

    @tf.function(jit_compile=not args.quick)
    def head(h, y):
        with tf.GradientTape() as tape:
            tape.watch(h)
            logits = model.token_embedding(model.final_norm(h), reverse=True)  # (B, T, V)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        targets = [h, embeddings.value] if trains_embedding else [h]
        return tape.gradient(loss, targets)

    [g.numpy() for g in head(hidden, labels)]  # compile
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        [g.numpy() for g in head(hidden, labels)]
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def run_variant(args):
    """Builds, compiles and times one variant in this process; returns its record."""
    import keras
    import numpy as np
    import tensorflow as tf

    from benchmarks.gpt2 import logits_loss, train_step
    from lm_keras.models import TransformerLM

    shape = dict(TINY if args.quick else GPT2)
    keras.utils.set_random_seed(1)
    model = TransformerLM(use_bias=True, mlp="gelu_tanh", **shape)
    if args.variant == "lora":
        model.enable_lora(args.rank, float(args.rank), "attention")
    built_rss = peak_rss_mb()
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    rng = np.random.default_rng(0)
    windows = rng.integers(0, shape["vocab_size"], (args.steps + 1, args.batch, args.train_len + 1), np.int32)
    batches = [(tf.constant(w[:, :-1]), tf.constant(w[:, 1:])) for w in windows]
    loss = logits_loss(lambda x: model(x, training=True))
    step = train_step(loss, model.trainable_variables, batches, not args.quick)
    started = time.perf_counter()
    tokens = step()
    first = time.perf_counter() - started
    seconds = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    head = None if args.skip_head_timing else head_seconds(model, args, tf, np, args.variant == "full")
    return {
        "head_and_loss_s": head and round(head, 3),
        "variant": args.variant,
        "batch": args.batch,
        "train_len": args.train_len,
        "parameters": int(model.count_params()),
        "trainable": trainable,
        "first_step_s": round(first, 2),
        "step_s": round(median, 3),
        "steps_s": [round(s, 3) for s in seconds],
        "tokens_per_s": round(tokens / median, 1),
        "rss_after_build_mb": round(built_rss),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("full", "lora"), default=None, help="run one variant here")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--train_len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--skip_head_timing", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.train_len = 2, 16
    if args.variant:
        print(json.dumps(run_variant(args)), flush=True)
        return
    records = []
    for variant in ("full", "lora"):
        command = [sys.executable, "-m", "experiments.lora_step", f"--variant={variant}"]
        command += [f"--batch={args.batch}", f"--train_len={args.train_len}", f"--steps={args.steps}"]
        command += [f"--rank={args.rank}"] + (["--quick"] if args.quick else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        records.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(records[-1]), flush=True)
    full, lora = records
    print(
        f"LoRA r={args.rank} (attention) against full fine-tuning, batch {args.batch} x {args.train_len}: "
        f"step {full['step_s'] / lora['step_s']:.2f}x faster, peak RSS "
        f"{lora['peak_rss_mb'] / full['peak_rss_mb']:.2f}x ({lora['peak_rss_mb']} MB against "
        f"{full['peak_rss_mb']} MB), trainable {lora['trainable']:,} of {lora['parameters']:,}",
        flush=True,
    )
    common.emit("lora_step", {"records": records}, args.out)


if __name__ == "__main__":
    main()
