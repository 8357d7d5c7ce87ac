"""ARCHITECTURE.md is true: it names every part of lm_keras, and the import rules it states hold.

The rules are read from its code map (the last column: what each part must never import,
"TensorFlow" meaning at import time). Imports are read from the source, function-level ones
included, so a lazy import that breaks the layering fails here too.
"""

import ast
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lm_keras"


def parts():
    """Every package and top-level module under lm_keras/, by its name there."""
    names = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    names |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return names


def code_map():
    """{part: set of the parts it never imports, "TensorFlow" among them where it says so}."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rules = {}
    for line in text.splitlines():
        row = re.match(r"\| `([a-z_]+)` \| .* \| ([^|]+) \|$", line)
        if row is None:
            continue
        part, never = row.group(1), [n.strip() for n in row.group(2).split(",")]
        everything = parts() - {part}
        banned = set()
        for name in never:
            if name.startswith("every other part"):
                allowed = {
                    n.strip()
                    for n in name.removeprefix("every other part").removeprefix(" but ").split(" and ")
                }
                banned |= everything - {n for n in allowed if n}
            elif name.startswith("nothing"):
                continue
            else:
                banned.add(name)
        rules[part] = banned
    return rules


def imports_of(part):
    """The parts of lm_keras that `part`'s source imports anywhere (module or function level)."""
    path = PACKAGE / part
    files = sorted(path.rglob("*.py")) if path.is_dir() else [PACKAGE / f"{part}.py"]
    found = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                pieces = name.split(".")
                if pieces[0] == "lm_keras" and len(pieces) > 1 and pieces[1] in parts():
                    found.add(pieces[1])
    return found - {part}


def test_the_code_map_names_every_part():
    assert set(code_map()) == parts()


def test_no_part_imports_what_the_code_map_forbids():
    broken = {
        part: sorted(imports_of(part) & banned)
        for part, banned in code_map().items()
        if imports_of(part) & banned
    }
    assert broken == {}


def test_the_parts_it_calls_tensorflow_free_load_no_tensorflow():
    free = sorted(part for part, banned in code_map().items() if "TensorFlow" in banned)
    assert {"config", "model_dir", "families", "errors", "files"} <= set(free)
    probe = (
        "import sys\n"
        + "".join(f"import lm_keras.{p}\n" for p in free)
        + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr[-2000:]


def test_the_check_catches_a_forbidden_import(tmp_path, monkeypatch):
    # The rules bite: serving importing training (what this layout removed) is caught.
    fake = tmp_path / "lm_keras"
    (fake / "serving").mkdir(parents=True)
    (fake / "training").mkdir()
    for folder in ("serving", "training"):
        (fake / folder / "__init__.py").write_text("")
    (fake / "serving" / "export.py").write_text("def f():\n    from lm_keras.training.trainer import train\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert imports_of("serving") == {"training"}
