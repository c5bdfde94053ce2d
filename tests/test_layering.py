"""The layering of the packages (docs/design.md §10, "Dependencies point one way"; /work/shared/ARCHITECTURE.md §1),
read from the source: every import of every module of p2p_real, inversion, masks and cli.py, deferred imports and
imports for type checking included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("p2p_real", "inversion", "masks")
EDITOR_CORE = ("p2p_real.editor", "p2p_real.testing")  # never import the demo world (p2p_real.toyworld)

# Breaks of the layering the code has (none since issue 29). A break that must stay for a while is listed here with
# its reason, so that the tests fail on any new one, and on a listed one once it is gone: then strike it.
KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_IMPORTS: set[tuple[str, str]] = set()


# The sub-packages by role (docs/design.md §10): each group never imports the groups named after it. The order reads
# from the bottom up: settings, then the P2P core and model loading, result files, the editor, then what drives
# the editor (batches, evaluation) and the front ends (commands, ui) and the demo world.
P2P_SETTINGS = ("p2p_real.defaults", "p2p_real.schema", "p2p_real.spec", "p2p_real.notation", "p2p_real.sweep_grid")
P2P_ABOVE_CORE = ("p2p_real.files", "p2p_real.editor", "p2p_real.editing", "p2p_real.batches", "p2p_real.evaluation")
FRONT_ENDS = ("p2p_real.commands", "p2p_real.ui", "p2p_real.toyworld")
# the inversion itself, above its loops, encoders, photo files and storage
INVERSION_TOP = ("inversion.methods", "inversion.settings", "inversion.artifact", "inversion.cache", "inversion.invert")
NEVER_IMPORTS = {
    P2P_SETTINGS: ("p2p_real.core", "p2p_real.models", *P2P_ABOVE_CORE, *FRONT_ENDS),
    ("p2p_real.core",): ("p2p_real.models", *P2P_ABOVE_CORE, *FRONT_ENDS),
    ("p2p_real.models",): ("p2p_real.core", *P2P_ABOVE_CORE, *FRONT_ENDS),
    ("p2p_real.files",): (
        "p2p_real.models",
        "p2p_real.editor",
        "p2p_real.editing",
        "p2p_real.batches",
        "p2p_real.evaluation",
        *FRONT_ENDS,
    ),
    ("p2p_real.editor", "p2p_real.editing"): ("p2p_real.batches", "p2p_real.evaluation", *FRONT_ENDS),
    ("p2p_real.batches", "p2p_real.evaluation"): FRONT_ENDS,
    ("inversion.storage", "inversion.validation", "inversion.devices", "inversion.lazy_imports"): (
        "inversion.encoding",
        "inversion.photos",
        "inversion.loops",
        *INVERSION_TOP,
    ),
    ("inversion.encoding", "inversion.photos"): ("inversion.loops", *INVERSION_TOP),
    ("inversion.loops",): ("inversion.photos", *INVERSION_TOP),
}


def module_name(path: Path) -> str:
    """The dotted name of a source file below ROOT (a package's __init__.py is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Module name -> file, for every module of the packages and cli.py."""
    files = {"cli": ROOT / "cli.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            files[module_name(path)] = path
    return files


def imported_names(path: Path, name: str) -> set[str]:
    """Every module name an import statement anywhere in the file mentions (`from a import b` gives a and a.b)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the project it imports (names that are not modules of the project are dropped)."""
    files = source_files()
    return {
        name: {other for other in imported_names(path, name) if other in files and other != name}
        for name, path in files.items()
    }


GRAPH = import_graph()


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A shortest import path from `start` back to itself, or None."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for name in frontier:
            for other in sorted(graph[name]):
                if other == start:
                    return [*paths[name], start]
                if other not in paths:
                    paths[other] = [*paths[name], other]
                    following.append(other)
        frontier = following
    return None


def imports_of(target: str, sources) -> set[tuple[str, str]]:
    """(importer, imported) for each import of `target` or a module below it by one of `sources`, less the known
    breaks."""
    found = {(name, other) for name in sources for other in GRAPH[name] if under(other, target)}
    return found - KNOWN_IMPORTS


def test_the_known_breaks_are_still_there():
    """Strike a break from KNOWN_IMPORTS once it is gone, so that it cannot come back unnoticed."""
    assert {(name, other) for name, other in KNOWN_IMPORTS if other in GRAPH.get(name, ())} == KNOWN_IMPORTS


def test_the_graph_is_read_from_every_module():
    assert {"cli", "p2p_real.editor", "inversion.invert", "masks.paste", "p2p_real.toyworld.scenes"} <= GRAPH.keys()
    assert "masks.paste" in GRAPH["p2p_real.editor"] or "masks.local_blend" in GRAPH["p2p_real.core.sampling"]


def test_there_are_no_import_cycles_between_modules():
    # a package's __init__ loading its modules on first use is not a dependency of the modules on it
    graph = {name: {other for other in imports if not under(name, other)} for name, imports in GRAPH.items()}
    found = [cycle for name in graph if (cycle := cycle_from(name, graph))]
    assert {frozenset(cycle) for cycle in found} == KNOWN_CYCLES, [" -> ".join(cycle) for cycle in found]


@pytest.mark.parametrize("package", ["inversion", "masks"])
def test_inversion_and_masks_never_import_p2p_real(package):
    assert imports_of("p2p_real", [name for name in GRAPH if under(name, package)]) == set()


def test_masks_imports_neither_inversion_nor_p2p_real():
    masks = [name for name in GRAPH if under(name, "masks")]
    assert imports_of("inversion", masks) | imports_of("p2p_real", masks) == set()


def reachable(start: str) -> set[str]:
    """Every module that importing `start` may import, directly or through others."""
    seen, todo = {start}, [start]
    while todo:
        for other in GRAPH[todo.pop()] - seen:
            seen.add(other)
            todo.append(other)
    return seen


def test_the_editor_and_its_test_kit_never_import_the_demo_world():
    assert imports_of("p2p_real.toyworld", EDITOR_CORE) == set()
    assert not any(under(name, "p2p_real.toyworld") for name in reachable("p2p_real.editor"))  # nor through others


def test_the_page_never_imports_command_line_code():
    page = [name for name in GRAPH if under(name, "p2p_real.ui")]
    assert imports_of("p2p_real.commands", page) | imports_of("cli", page) == set()


def test_dependencies_point_away_from_the_command_line():
    """cli.py -> p2p_real -> (inversion, masks): no module of the packages imports cli.py."""
    assert imports_of("cli", [name for name in GRAPH if name != "cli"]) == set()


RULES = [(lower, upper) for lowers, uppers in NEVER_IMPORTS.items() for lower in lowers for upper in uppers]


@pytest.mark.parametrize(("lower", "upper"), RULES, ids=[f"{lower}-not-{upper}" for lower, upper in RULES])
def test_each_sub_package_imports_only_the_layers_below_it(lower, upper):
    assert imports_of(upper, [name for name in GRAPH if under(name, lower)]) == set()


def test_the_layering_rules_name_modules_that_exist():
    named = {name for lowers, uppers in NEVER_IMPORTS.items() for name in (*lowers, *uppers)}
    assert {name for name in named if not any(under(module, name) for module in GRAPH)} == set()
