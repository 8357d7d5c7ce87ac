"""Where the time of lm_keras's XLA training step goes.

Two measurements in one process:

1. Ablations, alternated round by round (medians): the whole step as the trainer
   runs it; forward and backward without the optimizer; the forward alone; the
   optimizer update alone (AdamW + clipping, compiled, on fixed gradients); and K
   steps per call (a `tf.while_loop` of K whole steps in one XLA program) to
   expose per-call Python/dispatch overhead.
2. A profile of the compiled step: XLA:CPU traces every thunk (dot, fusion) it
   runs when `--xla_cpu_enable_xprof_traceme=true`; `tf.profiler` records them and
   each thunk is attributed to the model part its HLO came from (the op names in
   XLA's optimised-HLO dump), forward or backward.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m experiments.step_profile
"""

import collections
import glob
import os
import re
import time

from benchmarks import common

DUMP_DIR = common.scratch_dir(prefix="bench_xla_dump_")
# Must be set before TensorFlow loads XLA.
os.environ["XLA_FLAGS"] = " ".join(
    filter(
        None,
        [
            os.environ.get("XLA_FLAGS", ""),
            "--xla_cpu_enable_xprof_traceme=true",
            f"--xla_dump_to={DUMP_DIR}",
            "--xla_dump_hlo_as_text",
            "--xla_dump_hlo_module_re=.*train_step.*",
        ],
    )
)
common.setup_environment()

CATEGORIES = (
    # (category, regex over the lower-cased op names and computation names of a thunk)
    ("optimizer + clipping", r"adam|clip_by_global_norm|global_norm|assignvariable|assignadd"),
    ("layer norm", r"_norm_1/|final_norm|moments|rsqrt|layer_norm"),
    ("GELU", r"gelu|erf"),
    ("softmax + mask", r"softmax(?!_cross)|selectv2"),
    ("loss, head, embeddings", r"cross_entropy|token_embedding|position_embedding"),
    ("slices, transposes, copies", r"strided_slice|transpose|reshape|stack"),
)


def parse_hlo(dump_dir):
    """{instruction name: lower-cased text of its metadata and called computations} of the step's entry."""
    files = [f for f in glob.glob(os.path.join(dump_dir, "*train_step*cpu_after_optimizations.txt"))]
    if not files:
        return {}
    text = open(max(files, key=os.path.getsize)).read()
    computations, entry, current = {}, None, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.rstrip().endswith("{"):
            current = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
            computations[current] = []
            if line.startswith("ENTRY"):
                entry = current
        elif current:
            computations[current].append(line)

    def describe(name, depth=0):
        lines = computations.get(name, [])
        parts = [name] + re.findall(r'op_name="([^"]+)"', "\n".join(lines))
        if depth < 3:
            for called in re.findall(r"(?:calls|to_apply)=%([\w.\-]+)", "\n".join(lines)):
                parts += describe(called, depth + 1)
        return parts

    info = {}
    for line in computations.get(entry, []):
        match = re.match(r"\s+(?:ROOT )?%([\w.\-]+) = \S+ (\w[\w-]*)\(", line)
        if not match:
            continue
        name, opcode = match.groups()
        parts = re.findall(r'op_name="([^"]+)"', line)
        for called in re.findall(r"(?:calls|to_apply)=%([\w.\-]+)", line):
            parts += describe(called)
        info[name] = (opcode, " ".join(parts).lower())
    return info


def categorize(opcode, text):
    backward = "gradient_tape" in text or re.search(r"\baddn", text) is not None  # AddN sums gradients
    if opcode == "dot" or (
        opcode == "fusion"
        and "ynn" in text
        and re.search(r"matmul|einsum|tensordot", text)
        and not re.search(r"adam|moments|/sum", text)
    ):
        return "matmul " + ("(backward)" if backward else "(forward)")
    for category, pattern in CATEGORIES:
        if re.search(pattern, text):
            return (
                category
                if category.startswith("optimizer")
                else f"{category} " + ("(backward)" if backward else "(forward)")
            )
    return "other elementwise " + ("(backward)" if backward else "(forward)")


def thunk_times(logdir, steps):
    """{thunk name: ms per step}, summed over the XLA worker threads and the caller's thread."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(files[0], "rb").read())
    times = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if "Eigen" not in line.name and line.name != "python":
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                times[name] += event.duration_ps / 1e9 / steps
    return times


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8, help="steps per call of the multi-step variant")
    parser.add_argument("--profile_steps", type=int, default=30)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.profile_steps = 2, 0.3, 3

    import tensorflow as tf

    from lm_keras.config import preset
    from lm_keras.data import train_dataset
    from lm_keras.training.evaluation import per_example_loss

    cfg = preset("shakespeare_char_cpu" if args.size == "cpu" else "shakespeare_char").replace(
        max_steps=10**9, jit_compile="true"
    )
    trainer = common.trainer_for(cfg, common.scratch_dir(prefix="bench_profile_"))
    trainer.prepare()
    model, optimizer = trainer.model, trainer.optimizer
    variables = model.trainable_variables
    mc, tc = trainer.config.model, trainer.config.train
    tokens = tc.batch_size * mc.seq_len
    count = float(tokens)
    dataset = train_dataset(trainer.train_split, seq_len=mc.seq_len, batch_size=tc.batch_size, seed=7)
    batches = iter(dataset)
    stacked = iter(dataset.batch(args.k))
    step = trainer.make_train_step()

    def loss_of(x, y):
        return tf.reduce_sum(per_example_loss("next_token", y, model(x, training=True))) / count

    @tf.function(jit_compile=True)
    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(x, y)
        return loss, tape.gradient(loss, variables)

    @tf.function(jit_compile=True)
    def forward(x, y):
        return loss_of(x, y)

    _, fixed_grads = forward_backward(*next(batches))
    fixed_grads = [tf.identity(g) for g in fixed_grads]

    @tf.function(jit_compile=True)
    def optimizer_only(grads):
        optimizer.apply(grads, variables)
        return tf.constant(0.0)

    @tf.function(jit_compile=True)
    def k_steps(xs, ys):
        def body(i, total):
            with tf.GradientTape() as tape:
                loss = loss_of(xs[i], ys[i])
            optimizer.apply(tape.gradient(loss, variables), variables)
            return i + 1, total + loss

        _, total = tf.while_loop(lambda i, total: i < args.k, body, (tf.constant(0), tf.constant(0.0)))
        return total / args.k

    variants = {
        "whole step (trainer)": lambda: (float(step(next(batches))), 1)[1],
        "forward + backward": lambda: (float(forward_backward(*next(batches))[0]), 1)[1],
        "forward only": lambda: (float(forward(*next(batches))), 1)[1],
        "optimizer only": lambda: (float(optimizer_only(fixed_grads)), 1)[1],
        f"{args.k} steps per call": lambda: (float(k_steps(*next(stacked))), args.k)[1],
    }
    print(f"ablations: {args.rounds} rounds...", flush=True)
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds)
    ablation = {name: 1000.0 / r["median"] for name, r in results.items()}  # ms per step

    print(f"profiling {args.profile_steps} whole steps...", flush=True)
    logdir = common.scratch_dir(prefix="bench_profile_trace_")
    for _ in range(3):
        float(step(next(batches)))
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    for _ in range(args.profile_steps):
        float(step(next(batches)))
    wall_ms = 1000 * (time.perf_counter() - t0) / args.profile_steps
    tf.profiler.experimental.stop()
    times = thunk_times(logdir, args.profile_steps)
    hlo = parse_hlo(DUMP_DIR)
    by_category, unattributed = collections.Counter(), 0.0
    for name, ms in times.items():
        if name in hlo:
            by_category[categorize(*hlo[name])] += ms
        elif "Await" in name:
            by_category["thread-pool waits inside thunks"] += ms
    thunk_total = sum(by_category.values())
    unattributed = max(0.0, wall_ms - thunk_total)
    by_category["outside thunks (dispatch, Python, gaps)"] = unattributed
    flops = (
        common.transformer_flops_per_token(
            mc.num_layers, mc.hidden_dim, mc.resolved_mlp_dim, mc.seq_len, mc.vocab_size
        )
        * tokens
    )
    matmul_ms = by_category["matmul (forward)"] + by_category["matmul (backward)"]

    print()
    print(
        common.table(
            ["ablation", "ms per step", "vs whole step"],
            [[k, f"{v:.2f}", f"{v / ablation['whole step (trainer)']:.2f}"] for k, v in ablation.items()],
        )
    )
    print()
    print(
        f"profiled step: {wall_ms:.2f} ms wall (under the profiler); thunks {thunk_total:.2f} ms; "
        f"{len(hlo)} HLO instructions in the step; matmuls run at "
        f"{flops / (matmul_ms / 1000) / 1e9 if matmul_ms else float('nan'):.0f} GFLOP/s"
    )
    rows = [[k, f"{v:.2f}", f"{100 * v / wall_ms:.1f}%"] for k, v in by_category.most_common()]
    print(common.table(["where (XLA thunks, by model part)", "ms per step", "share of wall"], rows))
    top = sorted(((ms, name) for name, ms in times.items() if name in hlo), reverse=True)[:15]
    print("\nlargest thunks:")
    for ms, name in top:
        print(f"  {ms:6.3f} ms  {name:28s} {categorize(*hlo[name])}")
    common.emit(
        f"step_profile_{args.size}",
        {
            "ablation_ms_per_step": ablation,
            "profile": {
                "wall_ms": wall_ms,
                "thunk_ms": thunk_total,
                "by_category_ms": dict(by_category),
                "matmul_gflops": flops / (matmul_ms / 1000) / 1e9 if matmul_ms else None,
                "hlo_instructions": len(hlo),
                "instructions_by_opcode": dict(collections.Counter(op for op, _ in hlo.values())),
            },
            "raw": results,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
