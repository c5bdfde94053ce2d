"""Small modules and short functions (issue 29, "Done means"; /work/shared/ARCHITECTURE.md §4, one concept per
module): no module of the package code (p2p_real/, inversion/, masks/, cli.py) over 400 lines and no function over
60, counted from its `def` line to its last line, docstring included. Tests, benchmarks and training are not held
to it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("p2p_real", "inversion", "masks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def package_files(root: Path = ROOT) -> list[Path]:
    """cli.py and every module of the packages."""
    return [root / "cli.py", *(path for package in PACKAGES for path in sorted((root / package).rglob("*.py")))]


def oversized(path: Path, root: Path = ROOT) -> list[str]:
    """'FILE: N lines' for a module over the limit and 'FILE:LINE NAME: N lines' for each function over it
    (methods and nested functions each counted on their own)."""
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(root).as_posix()
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{where}: {lines} lines (module, limit {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                limit = f"(function, limit {MAX_FUNCTION_LINES})"
                found.append(f"{where}:{node.lineno} {node.name}: {length} lines {limit}")
    return found


def test_the_files_measured_are_the_package_code():
    names = {path.relative_to(ROOT).as_posix() for path in package_files()}
    assert {"cli.py", "p2p_real/editor.py", "inversion/artifact.py", "masks/paste.py"} <= names
    assert not any(name.startswith(("tests/", "benchmarks/", "training/")) for name in names)


def test_the_measure_names_a_long_module_and_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))  # def line + 60 = 61 lines
    short = "def short():\n" + "\n".join(f"    y{i} = {i}" for i in range(MAX_FUNCTION_LINES - 1))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n\n\n{short}\n" + "\n" * MAX_MODULE_LINES)
    assert oversized(tmp_path / "long.py", tmp_path) == [
        f"long.py: {MAX_FUNCTION_LINES * 2 + 3 + MAX_MODULE_LINES} lines (module, limit {MAX_MODULE_LINES})",
        f"long.py:1 long: {MAX_FUNCTION_LINES + 1} lines (function, limit {MAX_FUNCTION_LINES})",
    ]


def test_no_module_over_400_lines_and_no_function_over_60():
    found = [problem for path in package_files() for problem in oversized(path)]
    assert found == [], "split these (issue 29):\n" + "\n".join(found)
