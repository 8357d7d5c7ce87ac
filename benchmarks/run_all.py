"""Runs the maintained benchmarks, one process each, and renders their rows into RESULTS.md.

    flock /tmp/lm_keras_heavy.lock .venv/bin/python -m benchmarks.run_all
    .venv/bin/python -m benchmarks.run_all --only=train_throughput,generation
    .venv/bin/python -m benchmarks.run_all --quick      # a check that each one runs (minutes)
    .venv/bin/python -m benchmarks.run_all --render_only

Each benchmark `benchmarks/NAME.py` writes `OUT_DIR/NAME.json` and says in its
`rows(result)` which rows of the current table it gives. This script replaces the
rows of the benchmarks it ran (or, with `--render_only`, of every JSON in OUT_DIR),
in the table between the `<!-- results:begin -->` and `<!-- results:end -->` markers,
and keeps every other row as it was: each row names the date and machine of its
measurement. `--quick` runs at tiny sizes, so its figures mean nothing: it writes into
benchmarks/out/quick/ and RESULTS_quick.md there, never into RESULTS.md.
"""

import argparse
import importlib
import json
import pathlib
import subprocess
import sys
import time

from benchmarks import BENCHMARKS, common

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
HEADERS = ["benchmark", "figure", "measured", "goal", "verdict", "measured on"]


def measured_on(result):
    """The date and machine of a result, as its rows name them."""
    m = result["machine"]
    where = f"{m['cpu']}, {m['nproc']} cores" + (f", {m['gpu']}" if m.get("gpu") else "")
    return f"{result['time'][:10]}, {where}"


def render_rows(name, result):
    """The table rows of one benchmark's result (`benchmarks/NAME.py`'s `rows`)."""
    module = importlib.import_module(f"benchmarks.{name}")
    when = measured_on(result)
    return [
        "| " + " | ".join([name, r["figure"], r["measured"], r["goal"], r["verdict"], when]) + " |"
        for r in module.rows(result)
    ]


def merge(block, rendered):
    """The table of `block` with the rows of each benchmark in `rendered` replaced.

    Args:
        block: the text between the markers (a table of HEADERS, or empty).
        rendered: dict benchmark name -> its new rows.

    Returns:
        the new block: the maintained benchmarks' rows in BENCHMARKS' order, then the
        other rows (the experiments') in their order.
    """
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells != HEADERS and not set(line) <= set("|- "):
            rows.setdefault(cells[0], []).append(line)
    rows.update(rendered)
    order = [n for n in BENCHMARKS if n in rows] + [n for n in rows if n not in BENCHMARKS]
    return common.table(HEADERS, []) + "\n" + "".join(line + "\n" for n in order for line in rows[n])


def write_results(rendered, path):
    """Replaces the rows of `rendered`'s benchmarks in the table between the markers of `path`."""
    path = pathlib.Path(path)
    current = path.read_text() if path.is_file() else "# Benchmark results\n"
    if BEGIN not in current:
        current += f"\n{BEGIN}\n{END}\n"
    head, rest = current.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{merge(block, rendered)}{END}{tail}")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--size", choices=("cpu", "gpu"), default="cpu", help="model sizes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that each one runs")
    parser.add_argument("--render_only", action="store_true", help="render the JSON already in OUT_DIR")
    parser.add_argument("--out_dir", default=None, help="the JSON folder (default benchmarks/out/)")
    parser.add_argument("--results", default=None, help="the file to write (default RESULTS.md)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"--only: unknown benchmarks {unknown}; choose from {', '.join(BENCHMARKS)}")
    default_out = common.OUT_DIR / ("quick" if args.quick else "gpu" if args.size == "gpu" else "")
    out_dir = pathlib.Path(args.out_dir or default_out)
    results = args.results or (
        out_dir / "RESULTS_quick.md"
        if args.quick
        else common.BENCH_DIR / ("RESULTS_GPU.md" if args.size == "gpu" else "RESULTS.md")
    )
    failed, started = [], time.time()
    if not args.render_only:
        for name in names:
            command = [sys.executable, "-m", f"benchmarks.{name}", "--size", args.size]
            command += ["--out", str(out_dir / f"{name}.json")] + (["--quick"] if args.quick else [])
            print(f"=== {name}: {' '.join(command)} (load {common.load_average()})", flush=True)
            t0 = time.monotonic()
            done = subprocess.run(command, cwd=common.REPO)
            print(f"=== {name}: exit {done.returncode} after {time.monotonic() - t0:.0f} s", flush=True)
            if done.returncode != 0:
                failed.append(name)
    rendered = {}
    for name in names:
        path = out_dir / f"{name}.json"
        # A benchmark that failed renders only if it wrote its JSON (serve_load exits 1 when
        # the server does not hold: that is a figure, "missed"); a stale JSON never does.
        if path.is_file() and (args.render_only or path.stat().st_mtime >= started):
            rendered[name] = render_rows(name, json.loads(path.read_text()))
    print("".join(line + "\n" for rows in rendered.values() for line in rows), end="")
    print(f"rows of {', '.join(rendered) or 'nothing'} written into {write_results(rendered, results)}")
    if failed:
        sys.exit(f"run_all: {', '.join(failed)} exited non-zero (see above)")


if __name__ == "__main__":
    main()
