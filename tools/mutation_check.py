"""Can each test module fail? Mutate the code it tests once, run it, see whether it notices.

    python tools/mutation_check.py                       # every test module, one mutant each
    python tools/mutation_check.py tests/layers --mutants 3 --seed 1
    python tools/mutation_check.py --list                # the mutants it would try, no runs

For each test module the script picks a mutant of the code under test (the mirrored
module, `tests/layers/test_x.py` -> `lm_keras/layers/x.py`, or the files in `TARGETS`):
a flipped comparison (`<` -> `>=`, `==` -> `!=`, `in` -> `not in`), a dropped term
(`a + b` -> `a`) or a changed constant (`n` -> `n + 1`, `x` -> `2 x`), preferring code
in the functions and classes the test module names. It applies the mutant to a copy
of the working tree, runs that module's default tests there (`pytest -x`, so a caught
mutant stops at the first failure), and reports each mutant as caught (by which test)
or SURVIVED. A survivor is a test that cannot see that change: either a gap to close
or an equivalent mutant (one that changes nothing a test could observe); the report
shows the mutated line so a reader can tell which.

One pass costs at most about one run of the default suite, less where mutants are
caught early; test modules in SKIPPED (a full training run per mutant) run only when
named. The pass holds /tmp/lm_keras_heavy.lock, the lock every benchmark runs under
(`flock /tmp/lm_keras_heavy.lock ...`, as benchmarks/RESULTS.md shows), from its first run
to its last, so other heavy runs neither slow it nor are slowed by it.
"""

import argparse
import ast
import contextlib
import fcntl
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
LOCK = "/tmp/lm_keras_heavy.lock"
COPIED = (
    "lm_keras",
    "tests",
    "benchmarks",
    "experiments",
    "notebooks",
    "data",
    "setup.cfg",
    "setup.py",
    "README.md",
)
# Test modules whose code under test is not (only) the mirrored module. Paths of the command
# modules are tried under lm_keras/commands/ too.
TARGETS = {
    "tests/generation/test_decode.py": [
        "lm_keras/generation/decode_loop.py",
        "lm_keras/generation/transformer_decoder.py",
        "lm_keras/generation/recurrent_decoder.py",
        "lm_keras/generation/window_decoder.py",
    ],
    "tests/tokenizers/test_char_tokenizer_graph.py": [
        "lm_keras/tokenizers/char_tokenizer_graph.py",
        "lm_keras/tokenizers/graph_ops.py",
    ],
    "tests/tokenizers/test_sentence_piece_tokenizer_graph.py": [
        "lm_keras/tokenizers/sentence_piece_tokenizer_graph.py",
        "lm_keras/tokenizers/graph_ops.py",
    ],
    "tests/training/test_reliability.py": ["lm_keras/training/trainer.py"],
    "tests/training/test_quality.py": ["lm_keras/training/trainer.py"],
    "tests/training/test_train_cli.py": ["lm_keras/train.py", "lm_keras/training/trainer.py"],
    "tests/test_export_cli.py": ["lm_keras/export.py", "lm_keras/serving/saved_model_export.py"],
    "tests/test_serve_cli.py": ["lm_keras/serve.py", "lm_keras/serving/model_server.py"],
    "tests/test_benchmarks_smoke.py": [
        "benchmarks/common.py",
        "benchmarks/run_all.py",
        "experiments/quality_spread.py",
        "experiments/ablations.py",
    ],
    "tests/test_notebooks.py": [],  # the notebooks themselves; nothing to mutate in Python
}
# Modules a whole pass leaves out unless named on the command line, and why.
SKIPPED = {
    "tests/training/test_quality.py": "trains the default preset for 2,000 steps per mutant",
}
FLIPPED = {
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Pow)


def targets_of(test_module):
    if test_module in TARGETS:
        paths = TARGETS[test_module]
    else:
        parts = pathlib.PurePosixPath(test_module).parts[1:]  # drop "tests"
        name = re.sub(r"^test_|_cli$", "", parts[-1][: -len(".py")])
        paths = ["/".join(("lm_keras", *parts[:-1], f"{name}.py"))]
    found = []
    for path in paths:
        for candidate in (path, path.replace("lm_keras/", "lm_keras/commands/", 1)):
            if (REPO / candidate).is_file():
                found.append(candidate)
                break
    return found


def names_used(test_module):
    """Every identifier the test module mentions: the functions and classes it exercises."""
    tree = ast.parse((REPO / test_module).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.rsplit(".", 1)[-1])
    return names


class Site:
    """One mutant: `path`'s node at (line, col) .. (end_line, end_col) becomes `replacement`."""

    def __init__(self, path, node, replacement, kind, preferred):
        self.path, self.kind, self.preferred = path, kind, preferred
        self.span = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
        self.original = ast.unparse(node)
        self.replacement = ast.unparse(replacement)

    def __str__(self):
        return f"{self.path}:{self.span[0]} {self.kind}: {self.original}  ->  {self.replacement}"

    def apply(self, source):
        """`source` (bytes) with the mutant in; AST offsets count UTF-8 bytes."""
        lines = source.splitlines(keepends=True)
        start = sum(len(line) for line in lines[: self.span[0] - 1]) + self.span[1]
        end = sum(len(line) for line in lines[: self.span[2] - 1]) + self.span[3]
        return source[:start] + f"({self.replacement})".encode() + source[end:]


def _is_text(node):
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _skipped_nodes(tree):
    """Nodes not worth mutating: messages of raise statements, f-strings, the __main__ guard."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.JoinedStr)) or (
            isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        ):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def sites_in(path, used):
    source = (REPO / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    skipped = _skipped_nodes(tree)
    # Which top-level definition each node belongs to, to prefer the ones the tests name.
    owner = {}
    for top in tree.body:
        names = {getattr(top, "name", None)}
        if isinstance(top, ast.Assign):
            names = {t.id for t in top.targets if isinstance(t, ast.Name)}
        for child in ast.walk(top):
            owner.setdefault(id(child), set()).update(names)
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                for grandchild in ast.walk(child):
                    owner.setdefault(id(grandchild), set()).add(child.name)
    sites = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        preferred = bool(owner.get(id(node), set()) & used)
        if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIPPED:
            flipped = ast.Compare(node.left, [FLIPPED[type(node.ops[0])](), *node.ops[1:]], node.comparators)
            sites.append(Site(path, node, flipped, "flip a comparison", preferred))
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ARITHMETIC)
            and not _is_text(node.left)
            and not _is_text(node.right)
        ):
            sites.append(Site(path, node, node.left, "drop a term", preferred))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            changed = node.value + 1 if isinstance(node.value, int) else (node.value * 2 or 1.0)
            sites.append(Site(path, node, ast.Constant(changed), "change a constant", preferred))
    return sites


def pick(test_module, count, seed):
    sites = [site for path in targets_of(test_module) for site in sites_in(path, names_used(test_module))]
    preferred = [s for s in sites if s.preferred] or sites
    rng = random.Random(f"{seed}:{test_module}")
    return rng.sample(preferred, min(count, len(preferred)))


@contextlib.contextmanager
def heavy_lock():
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_module(copy, test_module, timeout):
    """(outcome, seconds): 'caught by <test>', 'SURVIVED', 'no default tests' or 'timeout'."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("LM_KERAS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    command = [sys.executable, "-m", "pytest", test_module, "-x", "-q", "-p", "no:cacheprovider", "-n", "0"]
    start = time.monotonic()
    try:
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start
    seconds = time.monotonic() - start
    if result.returncode == 0:
        return "SURVIVED", seconds
    if result.returncode == 5:
        return "no default tests", seconds
    failed = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", result.stdout, re.MULTILINE)
    return f"caught by {failed.group(1) if failed else 'exit ' + str(result.returncode)}", seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["tests"], help="test modules or folders")
    parser.add_argument("--mutants", type=int, default=1, help="mutants per test module")
    parser.add_argument("--seed", default="0", help="which mutants are picked")
    parser.add_argument("--timeout", type=int, default=1500, help="seconds per module run")
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    args = parser.parse_args()

    modules = []
    for path in args.paths:
        p = REPO / path
        if not p.is_dir():
            modules.append(str(p.relative_to(REPO)))
            continue
        for found in sorted(p.rglob("test_*.py")):
            module = str(found.relative_to(REPO))
            if module in SKIPPED:
                print(f"{module}: left out, it {SKIPPED[module]} (name it to include it)")
            else:
                modules.append(module)
    plan = [(module, site) for module in modules for site in pick(module, args.mutants, args.seed)]
    for module in sorted(set(modules) - {module for module, _ in plan}):
        print(f"{module}: no Python code under test to mutate", flush=True)
    if args.list:
        for module, site in plan:
            print(f"{module}: {site}")
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # so the copy is removed
    copy = pathlib.Path(tempfile.mkdtemp(prefix="lm_keras_mutation_"))
    try:
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "runs"))
            elif source.is_file():
                shutil.copy2(source, copy / name)
        survivors = []
        with heavy_lock():
            total = time.monotonic()
            for module, site in plan:
                if run_mutant(copy, module, site, args.timeout) == "SURVIVED":
                    survivors.append((module, site))
        print(
            f"\n{len(plan)} mutants, {len(survivors)} survived, {time.monotonic() - total:.0f} s in all",
            flush=True,
        )
        for module, site in survivors:
            print(f"  SURVIVED {module}: {site}")
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def run_mutant(copy, module, site, timeout):
    """Puts `site`'s mutant into the copy, runs `module` there, restores the file."""
    target = copy / site.path
    original = target.read_bytes()
    mutated = site.apply(original)
    try:
        compile(mutated, str(target), "exec")
    except SyntaxError:
        print(f"{module}: skipped, the mutant does not compile: {site}", flush=True)
        return "skipped"
    target.write_bytes(mutated)
    try:
        outcome, seconds = run_module(copy, module, timeout)
    finally:
        target.write_bytes(original)
    print(f"{module}: {outcome} ({seconds:.0f} s) | {site}", flush=True)
    return outcome


if __name__ == "__main__":
    main()
