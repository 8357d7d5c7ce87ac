"""Corpora of any size: prepare once into token shards, then train from them in constant memory.

On generated corpora of 0.2, 2 and 10 GB (tiny Shakespeare's lines in seeded random
orders), in one run:

- `python -m lm_keras.prepare` (char tokenizer): wall time, MB/s of text, peak RSS;
- 20 training steps of the default preset from the prepared folder (`python -m
  lm_keras.train --corpus=DIR`): peak RSS and steps/s (its metrics.jsonl); then the time
  from the process's start to its first training step, alternated round by round
  (--rounds) with the same on tiny Shakespeare's prepared folder, each run in a fresh
  model directory and killed when its metrics.jsonl records the first step;
- the shard pipeline alone (`train_dataset` over the prepared train split, batches of the
  default preset) in batches/s, warm (pages cached) and cold (the shards' pages dropped
  from the page cache first), against the training step's steps/s of the 20-step run.

Then SentencePiece: `prepare --tokenizer_from` (a BPE tokenizer of 1,024 ids) on a 16 MB
corpus against sentencepiece's own threaded batch encode (`encode(lines, num_threads=all
cores)`) of the same lines, alternated round by round.

Peak RSS is each command's own high-water mark (VmHWM, read as it exits: a child's
ru_maxrss would start from this parent's, which has TensorFlow loaded). Every figure comes
from this run, with the machine's float32 matmul rate measured in it.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.datasets [--sizes 0.2,2,10]

The generated corpora and datasets live under --scratch and are deleted as each size is
done (--keep keeps them).
"""

import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import common

common.setup_environment()

GB = 10**9
STEPS = 20
BATCH, SEQ_LEN = 12, 64  # the default preset's, given as flags so steps/s follows from tokens/s
# --quick: a tiny model without XLA, whose first step comes fast; its figures mean nothing.
TINY_FLAGS = [
    "--num_layers=1",
    "--num_heads=2",
    "--hidden_dim=32",
    "--jit_compile=false",
    "--eval_tokens=1000",
]
POLL_SECONDS = 0.05
TARGETS = {  # issue 13's
    "train_peak_rss_mib": 1536,
    "first_step_ratio": 2.0,
    "encode_mb_per_s": 50.0,
    "sentencepiece_ratio": 0.8,
    "pipeline_over_step": 10.0,
}


def generate_corpus(path, size_bytes, seed=0):
    """Writes about `size_bytes` of text: tiny Shakespeare's lines, shuffled afresh every 64 MB."""
    import numpy as np

    from lm_keras.data import load_corpus

    lines = np.array(load_corpus("tiny_shakespeare").text.splitlines(keepends=True), dtype=object)
    rng = np.random.default_rng(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size_bytes:
            chunk = "".join(lines[rng.permutation(len(lines))]) * 60  # ~64 MB
            chunk = chunk[: size_bytes - written]
            f.write(chunk)
            written += len(chunk)
    return written


# Runs `python -m MODULE ARGS...` and, as it exits, prints its peak resident memory.
_MEASURED = (
    "import atexit, re, runpy, sys\n"
    "atexit.register(lambda: print('PEAK_RSS_KB', re.search(r'VmHWM:\\s+(\\d+)', "
    "open('/proc/self/status').read()).group(1), flush=True))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def run_command(module, *flags, model_dir=None):
    """Runs `python -m module flags...`; returns (wall seconds, peak RSS bytes, output, and
    the seconds from its start to the first training step in `model_dir`'s metrics.jsonl)."""
    start, to_first = time.monotonic(), None
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _MEASURED, module, *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=common.REPO,
        )
        while process.poll() is None:
            if model_dir and to_first is None and trained_steps(model_dir):
                to_first = time.monotonic() - start
            time.sleep(POLL_SECONDS)
        wall = time.monotonic() - start
        log.seek(0)
        output = log.read()
    peak = re.findall(r"^PEAK_RSS_KB (\d+)$", output, flags=re.M)
    if process.returncode != 0 or not peak:
        raise RuntimeError(f"{module} {flags} failed ({process.returncode}):\n{output[-3000:]}")
    return wall, int(peak[-1]) * 1024, output, to_first


def trained_steps(model_dir):
    """The training records of a run's metrics.jsonl so far (the trainer's own log of its steps)."""
    path = pathlib.Path(model_dir) / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
    records = [json.loads(line) for line in lines if line.endswith("\n")]  # the last may be half written
    return [r for r in records if r["kind"] == "train"]


def seconds_to_first_step(model_dir, corpus, quick):
    """Seconds from `python -m lm_keras.train`'s start to its first step; the run is then killed."""
    shutil.rmtree(model_dir, ignore_errors=True)
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "lm_keras.train", *train_flags(model_dir, corpus, quick)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=common.REPO,
    )
    while process.poll() is None:
        if trained_steps(model_dir):
            seconds = time.monotonic() - start
            process.kill()
            process.wait()
            shutil.rmtree(model_dir, ignore_errors=True)
            return seconds
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"lm_keras.train on {corpus} ended (exit {process.returncode}) before its first step")


def startup_side_by_side(scratch, data, shakespeare, rounds, quick):
    """Median seconds to the first step on `data` and on tiny Shakespeare, alternated round by round."""
    ours, base = [], []
    for _ in range(rounds):
        base.append(seconds_to_first_step(scratch / "startup_shakespeare", shakespeare, quick))
        ours.append(seconds_to_first_step(scratch / "startup_data", data, quick))
    return statistics.median(ours), statistics.median(base), ours, base


def train_flags(model_dir, corpus, quick):
    steps = 5 if quick else STEPS
    flags = [
        f"--model_dir={model_dir}",
        f"--corpus={corpus}",
        f"--max_steps={steps}",
        f"--eval_every={steps}",
        f"--checkpoint_every={steps}",
        "--log_every=5",
        "--sample_tokens=0",
        f"--batch_size={BATCH}",
        f"--seq_len={SEQ_LEN}",
    ]
    return flags + (TINY_FLAGS if quick else [])


def step_rate(model_dir):
    """Steps/s of the compiled step after the first: the last progress record of metrics.jsonl."""
    return trained_steps(model_dir)[-1]["tokens_per_sec"] / (BATCH * SEQ_LEN)


def drop_cached_pages(folder):
    """Asks the kernel to forget the cached pages of every file below `folder` (no root needed)."""
    for path in pathlib.Path(folder).rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def pipeline_rate(data_dir, seconds, cold):
    """Batches/s of the default preset's training pipeline over a prepared dataset's train split."""
    from lm_keras.data import PreparedDataset, train_dataset

    split = PreparedDataset(data_dir).train
    if cold:
        drop_cached_pages(pathlib.Path(data_dir) / "shards")
    batches = iter(train_dataset(split, seq_len=SEQ_LEN, batch_size=BATCH, seed=int(cold) + 7))
    next(batches)
    count, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        next(batches)
        count += 1
    return count / (time.monotonic() - start)


def sentencepiece_side_by_side(scratch, rounds, megabytes):
    """Prepare's encoding against sentencepiece's own threaded batch encode, alternated; MB/s each."""
    import sentencepiece

    from lm_keras import tokenizers
    from lm_keras.data import load_corpus

    corpus = scratch / "sp_corpus.txt"
    size = generate_corpus(corpus, megabytes * 10**6, seed=99)
    tokenizer = tokenizers.train("bpe", load_corpus("tiny_shakespeare").text, vocab_size=1024)
    tokenizer.save(scratch / "sp_tokenizer")
    lines = corpus.read_text(encoding="utf-8").split("\n")
    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer.model_proto)
    ours, whole, theirs = [], [], []
    for r in range(rounds):
        out = scratch / f"sp_ds{r}"
        wall, _, output, _ = run_command(
            "lm_keras.prepare",
            f"--corpus={corpus}",
            f"--output_dir={out}",
            f"--tokenizer_from={scratch / 'sp_tokenizer'}",
        )
        shutil.rmtree(out)
        whole.append(size / wall / 1e6)
        ours.append(encode_rate(output))
        t0 = time.monotonic()
        processor.encode(lines, num_threads=os.cpu_count())
        theirs.append(size / (time.monotonic() - t0) / 1e6)
        print(
            f"  sentencepiece round {r + 1}: prepare's encoding pass {ours[-1]:.2f} MB/s (the whole "
            f"command {whole[-1]:.2f}), sentencepiece's batch encode alone {theirs[-1]:.2f} MB/s",
            flush=True,
        )
    corpus.unlink()
    return {
        "megabytes": size / 1e6,
        "prepare_encode_mb_per_s": statistics.median(ours),
        "prepare_command_mb_per_s": statistics.median(whole),
        "sentencepiece_mb_per_s": statistics.median(theirs),
        "ratio": statistics.median(o / t for o, t in zip(ours, theirs)),
        "ratio_whole_command": statistics.median(w / t for w, t in zip(whole, theirs)),
        "rounds": {"prepare_encode": ours, "prepare_command": whole, "sentencepiece": theirs},
    }


def encode_rate(output):
    """MB/s of prepare's encoding pass (read, encode, write the shards), from its last progress line."""
    rates = re.findall(r"prepare \| encode .*? \| ([\d.,]+) MB/s .*took", output)
    return float(rates[-1].replace(",", ""))


def matmul_gflops(quick):
    variants = common.matmul_ceiling_variants(n=256 if quick else 2048, dtypes=("float32",))
    rounds, warmup = (1, 1) if quick else (3, 2)
    return (
        common.alternate(variants, rounds, 0.1 if quick else 1.0, warmup, log=None)["matmul_float32"][
            "median"
        ]
        / 1e9
    )


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.2,2,10", help="corpus sizes in GB")
    parser.add_argument("--scratch", default="/tmp/lm_keras_datasets_bench", help="where corpora go")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpora and datasets")
    parser.add_argument("--sp_megabytes", type=int, default=16, help="size of the SentencePiece corpus")
    args = parser.parse_args(argv)
    if args.quick:  # no start-up rounds: the 5-step runs' own first steps stand in
        args.sizes, args.sp_megabytes, args.rounds, args.seconds = "0.002", 1, 0, 0.2
    scratch = pathlib.Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    summary = {"gflops_float32": matmul_gflops(args.quick), "sizes": {}}
    print(f"float32 matmul: {summary['gflops_float32']:.1f} GFLOP/s", flush=True)

    shakespeare, run_dir = scratch / "shakespeare", scratch / "run_shakespeare"
    run_command("lm_keras.prepare", "--corpus=tiny_shakespeare", f"--output_dir={shakespeare}")
    _, rss, _, first = run_command(
        "lm_keras.train", *train_flags(run_dir, shakespeare, args.quick), model_dir=run_dir
    )
    summary["shakespeare"] = {
        "train_peak_rss": rss,
        "first_step_seconds": first,
        "steps_per_sec": step_rate(run_dir),
        "pipeline_warm": pipeline_rate(shakespeare, args.seconds * 2, cold=False),
    }
    print(f"tiny Shakespeare: first step after {first:.1f} s, peak RSS {rss / 2**20:,.0f} MiB", flush=True)

    for size in (float(s) for s in args.sizes.split(",")):
        name = f"{size:g}GB"
        corpus, data, run_dir = (
            scratch / f"corpus_{name}.txt",
            scratch / f"data_{name}",
            scratch / f"run_{name}",
        )
        t0 = time.monotonic()
        written = generate_corpus(corpus, int(size * GB), seed=int(size * 10))
        print(f"{name}: generated {written / 1e6:,.0f} MB in {time.monotonic() - t0:.0f} s", flush=True)
        wall, rss, output, _ = run_command("lm_keras.prepare", f"--corpus={corpus}", f"--output_dir={data}")
        result = {"bytes": written, "prepare_seconds": wall, "prepare_mb_per_s": written / wall / 1e6}
        result["encode_pass_mb_per_s"] = encode_rate(output)
        result["prepare_peak_rss"] = rss
        result["shard_files"] = len(os.listdir(data / "shards"))
        if not args.keep:
            corpus.unlink()
        _, rss, _, first = run_command(
            "lm_keras.train", *train_flags(run_dir, data, args.quick), model_dir=run_dir
        )
        result.update(train_peak_rss=rss, steps_per_sec=step_rate(run_dir))
        if args.rounds:
            ours, base, ours_all, base_all = startup_side_by_side(
                scratch, data, shakespeare, args.rounds, args.quick
            )
        else:
            ours, base, ours_all, base_all = first, summary["shakespeare"]["first_step_seconds"], [], []
        result.update(first_step_seconds=ours, shakespeare_first_step_seconds=base)
        result.update(first_step_rounds=ours_all, shakespeare_first_step_rounds=base_all)
        result["pipeline_warm"] = pipeline_rate(data, args.seconds * 2, cold=False)
        result["pipeline_cold"] = pipeline_rate(data, args.seconds * 2, cold=True)
        summary["sizes"][name] = result
        print(f"{name}: {json.dumps(result)}", flush=True)
        if not args.keep:
            shutil.rmtree(data)
            shutil.rmtree(run_dir)

    summary["sentencepiece"] = sentencepiece_side_by_side(scratch, max(args.rounds, 1), args.sp_megabytes)
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    common.emit("datasets", {"quick": args.quick, **summary}, args.out)


def rows(result):
    """RESULTS.md's rows: issue 13's targets on the largest corpus of the run."""
    name, r = list(result["sizes"].items())[-1]
    sp, goal = result["sentencepiece"], TARGETS
    rss = max(x["train_peak_rss"] for x in result["sizes"].values()) / 2**20
    first = r["first_step_seconds"] / r["shakespeare_first_step_seconds"]
    cold = r["pipeline_cold"] / r["steps_per_sec"]
    return [
        common.row(
            f"training peak RSS, every corpus up to {name}",
            (rss, f"{rss:,.0f} MiB"),
            ("<=", goal["train_peak_rss_mib"], f"{goal['train_peak_rss_mib']:,} MiB"),
        ),
        common.row(
            f"seconds to the first training step, {name} / tiny Shakespeare",
            (first, f"{first:.2f}x ({r['first_step_seconds']:.1f} s)"),
            ("<=", goal["first_step_ratio"], f"{goal['first_step_ratio']:.0f}x"),
        ),
        common.row(
            f"prepare's encoding pass, char tokenizer, {name}",
            (r["encode_pass_mb_per_s"], f"{r['encode_pass_mb_per_s']:.1f} MB/s"),
            (">=", goal["encode_mb_per_s"], f"{goal['encode_mb_per_s']:.0f} MB/s"),
        ),
        common.row(
            "prepare's SentencePiece encoding / sentencepiece's threaded batch encode",
            (sp["ratio"], f"{sp['ratio']:.2f}x"),
            (">=", goal["sentencepiece_ratio"], f"{goal['sentencepiece_ratio']}x"),
        ),
        common.row(
            f"shard pipeline, pages dropped, / training steps/s, {name}",
            (cold, f"{cold:.0f}x"),
            (">=", goal["pipeline_over_step"], f"{goal['pipeline_over_step']:.0f}x"),
        ),
    ]


if __name__ == "__main__":
    main()
