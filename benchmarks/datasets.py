"""Corpora of any size: prepare once into token shards, then train from them in constant memory.

On generated corpora of 0.2, 2 and 10 GB (tiny Shakespeare's lines in seeded random
orders), in one run:

- `python -m lm_keras.prepare` (char tokenizer): wall time, MB/s of text, peak RSS;
- 20 training steps of the default preset from the prepared folder (`python -m
  lm_keras.train --corpus=DIR`): peak RSS and steps/s; then the time from the process's
  start to its first training step, alternated round by round (--rounds) with the same on
  tiny Shakespeare's prepared folder, each run in a fresh model directory and killed at
  its first step line;
- the shard pipeline alone (`train_dataset` over the prepared train split, batches of the
  default preset) in batches/s, warm (pages cached) and cold (the shards' pages dropped
  from the page cache first), against the training step's steps/s of the 20-step run.

Then SentencePiece: `prepare --tokenizer_from` (a BPE tokenizer of 1,024 ids) on a 16 MB
corpus against sentencepiece's own threaded batch encode (`encode(lines, num_threads=all
cores)`) of the same lines, alternated round by round.

Peak RSS is each command's own high-water mark (VmHWM, read as it exits: a child's
ru_maxrss would start from this parent's, which has TensorFlow loaded). Every figure comes
from this run, with the machine's float32 matmul rate measured in it.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python benchmarks/datasets.py [--sizes 0.2,2,10]

The generated corpora and datasets live under --scratch and are deleted as each size is
done (--keep keeps them).
"""

import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import time

from benchmarks import common

common.setup_environment()

GB = 10**9
STEPS = 20


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


def run_command(module, *flags, first_step=False):
    """Runs `python -m module flags...`; returns (wall seconds, peak RSS bytes, seconds to its
    first step line, output)."""
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", _MEASURED, module, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=common.REPO,
    )
    lines, to_first = [], None
    for line in process.stdout:
        lines.append(line)
        if first_step and to_first is None and _is_first_step(line):
            to_first = time.monotonic() - start
    process.wait()
    wall = time.monotonic() - start
    output = "".join(lines)
    peak = re.findall(r"^PEAK_RSS_KB (\d+)$", output, flags=re.M)
    if process.returncode != 0 or not peak:
        raise RuntimeError(f"{module} {flags} failed ({process.returncode}):\n{output[-3000:]}")
    return wall, int(peak[-1]) * 1024, to_first, output


def _is_first_step(line):
    return line.startswith("step ") and " first step " in line


def seconds_to_first_step(model_dir, corpus):
    """Seconds from `python -m lm_keras.train`'s start to its first step line; the run is then killed."""
    shutil.rmtree(model_dir, ignore_errors=True)
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "lm_keras.train", *train_flags(model_dir, corpus)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=common.REPO,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if _is_first_step(line):
            seconds = time.monotonic() - start
            process.kill()
            process.wait()
            shutil.rmtree(model_dir, ignore_errors=True)
            return seconds
    process.wait()
    raise RuntimeError(f"lm_keras.train on {corpus} ended before its first step:\n{''.join(lines)[-3000:]}")


def startup_side_by_side(scratch, data, shakespeare, rounds):
    """Median seconds to the first step on `data` and on tiny Shakespeare, alternated round by round."""
    ours, base = [], []
    for _ in range(rounds):
        base.append(seconds_to_first_step(scratch / "startup_shakespeare", shakespeare))
        ours.append(seconds_to_first_step(scratch / "startup_data", data))
    return statistics.median(ours), statistics.median(base), ours, base


def train_flags(model_dir, corpus):
    return [
        f"--model_dir={model_dir}",
        f"--corpus={corpus}",
        f"--max_steps={STEPS}",
        f"--eval_every={STEPS}",
        f"--checkpoint_every={STEPS}",
        "--log_every=5",
        "--sample_tokens=0",
    ]


def step_rate(output):
    """Steps/s of the compiled step after the first, from the last progress line."""
    ms = re.findall(r"\| ([\d.]+) ms/step \|", output)
    return 1000.0 / float(ms[-1])


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
    from lm_keras.config import preset
    from lm_keras.data import PreparedDataset, train_dataset

    cfg = preset("shakespeare_char_cpu")
    split = PreparedDataset(data_dir).train
    if cold:
        drop_cached_pages(pathlib.Path(data_dir) / "shards")
    batches = iter(
        train_dataset(split, seq_len=cfg.model.seq_len, batch_size=cfg.train.batch_size, seed=int(cold) + 7)
    )
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
        wall, _, _, output = run_command(
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


def matmul_gflops():
    variants = common.matmul_ceiling_variants(n=2048, dtypes=("float32",))
    return common.alternate(variants, rounds=3, seconds=1.0, log=None)["matmul_float32"]["median"] / 1e9


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.2,2,10", help="corpus sizes in GB")
    parser.add_argument("--scratch", default="/tmp/lm_keras_datasets_bench", help="where corpora go")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpora and datasets")
    parser.add_argument("--sp_megabytes", type=int, default=16, help="size of the SentencePiece corpus")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.sp_megabytes, args.rounds, args.seconds = "0.01", 2, 1, 1.0
    scratch = pathlib.Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    summary = {"gflops_float32": matmul_gflops(), "sizes": {}}
    print(f"float32 matmul: {summary['gflops_float32']:.1f} GFLOP/s", flush=True)

    shakespeare = scratch / "shakespeare"
    run_command("lm_keras.prepare", "--corpus=tiny_shakespeare", f"--output_dir={shakespeare}")
    wall, rss, first, output = run_command(
        "lm_keras.train", *train_flags(scratch / "run_shakespeare", shakespeare), first_step=True
    )
    summary["shakespeare"] = {
        "train_peak_rss": rss,
        "first_step_seconds": first,
        "steps_per_sec": step_rate(output),
    }
    summary["shakespeare"]["pipeline_warm"] = pipeline_rate(shakespeare, args.seconds * 2, cold=False)
    print(f"tiny Shakespeare: first step after {first:.1f} s, peak RSS {rss / 2**20:,.0f} MiB", flush=True)

    for size in (float(s) for s in args.sizes.split(",")):
        name = f"{size:g}GB"
        corpus, data = scratch / f"corpus_{name}.txt", scratch / f"data_{name}"
        t0 = time.monotonic()
        written = generate_corpus(corpus, int(size * GB), seed=int(size * 10))
        print(f"{name}: generated {written / 1e6:,.0f} MB in {time.monotonic() - t0:.0f} s", flush=True)
        wall, rss, _, output = run_command("lm_keras.prepare", f"--corpus={corpus}", f"--output_dir={data}")
        print(
            "\n".join(line for line in output.splitlines() if " took " in line or " done" in line), flush=True
        )
        result = {"bytes": written, "prepare_seconds": wall, "prepare_mb_per_s": written / wall / 1e6}
        result["encode_pass_mb_per_s"] = encode_rate(output)
        result["prepare_peak_rss"] = rss
        result["shard_files"] = len(os.listdir(data / "shards"))
        if not args.keep:
            corpus.unlink()
        wall, rss, first, output = run_command(
            "lm_keras.train", *train_flags(scratch / f"run_{name}", data), first_step=True
        )
        result.update(train_peak_rss=rss, steps_per_sec=step_rate(output))
        ours, base, ours_all, base_all = startup_side_by_side(scratch, data, shakespeare, args.rounds)
        result.update(first_step_seconds=ours, shakespeare_first_step_seconds=base)
        result.update(first_step_rounds=ours_all, shakespeare_first_step_rounds=base_all)
        result["pipeline_warm"] = pipeline_rate(data, args.seconds * 2, cold=False)
        result["pipeline_cold"] = pipeline_rate(data, args.seconds * 2, cold=True)
        summary["sizes"][name] = result
        print(
            f"{name}: prepare {result['prepare_mb_per_s']:.1f} MB/s, peak RSS "
            f"{result['prepare_peak_rss'] / 2**20:,.0f} MiB; training peak RSS {rss / 2**20:,.0f} MiB, "
            f"first step after {ours:.1f} s (tiny Shakespeare {base:.1f} s); "
            f"pipeline {result['pipeline_warm']:,.0f} (warm) / "
            f"{result['pipeline_cold']:,.0f} (cold) batches/s, step {result['steps_per_sec']:.1f}/s",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(data)
            shutil.rmtree(scratch / f"run_{name}")

    summary["sentencepiece"] = sentencepiece_side_by_side(scratch, args.rounds, args.sp_megabytes)
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(render(summary))
    common.emit("datasets", summary, args.out)


def render(summary):
    """The Markdown tables of RESULTS.md's section on corpora of any size."""
    mib = 2**20
    base = summary["shakespeare"]
    rows = []
    for name, r in summary["sizes"].items():
        rows.append(
            [
                name,
                common.fmt(r["prepare_seconds"], 0),
                f"{r['prepare_mb_per_s']:.1f} ({r['encode_pass_mb_per_s']:.1f})",
                common.fmt(r["prepare_peak_rss"] / mib),
                common.fmt(r["shard_files"]),
                common.fmt(r["train_peak_rss"] / mib),
                f"{r['first_step_seconds']:.1f} s / {r['shakespeare_first_step_seconds']:.1f} s "
                f"({r['first_step_seconds'] / r['shakespeare_first_step_seconds']:.2f}x)",
                f"{r['pipeline_warm']:,.0f} / {r['pipeline_cold']:,.0f}",
                f"{r['steps_per_sec']:.1f}",
                f"{r['pipeline_cold'] / r['steps_per_sec']:.0f}x",
            ]
        )
    rows.append(
        [
            "tiny Shakespeare",
            "",
            "",
            "",
            "",
            common.fmt(base["train_peak_rss"] / mib),
            f"{base['first_step_seconds']:.1f} s (its 20-step run)",
            f"{base['pipeline_warm']:,.0f} / -",
            f"{base['steps_per_sec']:.1f}",
            f"{base['pipeline_warm'] / base['steps_per_sec']:.0f}x",
        ]
    )
    sp = summary["sentencepiece"]
    return "\n".join(
        [
            f"float32 matmul rate of this machine in this run: {summary['gflops_float32']:.1f} GFLOP/s",
            "",
            common.table(
                [
                    "corpus",
                    "prepare s",
                    "prepare MB/s (its encoding pass)",
                    "prepare peak RSS MiB",
                    "shards",
                    "training peak RSS MiB",
                    "to first step: it / tiny Shakespeare, alternated (median of rounds)",
                    "pipeline batches/s warm / cold",
                    "training steps/s",
                    "pipeline (cold) / step",
                ],
                rows,
            ),
            "",
            common.table(
                ["SentencePiece BPE 1,024 ids", "MB/s", "ratio"],
                [
                    [
                        "prepare's encoding pass (read, encode, write the shards)",
                        f"{sp['prepare_encode_mb_per_s']:.2f}",
                        f"{sp['ratio']:.2f}x",
                    ],
                    [
                        "the whole prepare command (start-up, scan, encoding, manifest)",
                        f"{sp['prepare_command_mb_per_s']:.2f}",
                        f"{sp['ratio_whole_command']:.2f}x",
                    ],
                    [
                        "sentencepiece's threaded batch encode alone",
                        f"{sp['sentencepiece_mb_per_s']:.2f}",
                        "1.00x",
                    ],
                ],
            ),
        ]
    )


if __name__ == "__main__":
    main()
