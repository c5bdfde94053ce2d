"""docs/design.md opens with a map of the packages and the path of one edit through the code (issue 29 item 5): every
sub-package has its line, every line a package, and every function, class or module the path names exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("cli", "p2p_real", "inversion", "masks")


def map_section() -> str:
    """The design note's text from its map to its section 1."""
    text = (ROOT / "docs/design.md").read_text()
    start = text.index("## The map: packages, and the path of one edit")
    return text[start : text.index("\n## 1. ", start)]


def mapped_folders() -> set[str]:
    """The folders the map's package lines name, as paths (a two-space indent is a sub-package of the line above)."""
    block = map_section().split("```")[1]
    folders, parent = set(), ""
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.endswith("/"):
            continue
        if line.startswith("  "):
            folders.add(parent + name.rstrip("/"))
        else:
            parent = name
            folders.add(name.rstrip("/"))
    return folders


def resolve(name: str) -> list[tuple[str, Any]]:
    """Each part of a dotted name with the object it stands for: the longest importable module prefix, then
    attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        chain = [(parts[cut - 1], found)]
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
            chain.append((attribute, found))
        return chain
    raise ModuleNotFoundError(name)


def public(name: str) -> Any:
    """A name of the public API: p2p_real's, else inversion's."""
    import inversion
    import p2p_real

    return getattr(p2p_real, name) if hasattr(p2p_real, name) else getattr(inversion, name)


def named_in_path() -> list[str]:
    """The code names of the path of one edit: dotted ones, classes, and functions with an underscore."""
    words = re.findall(r"`([A-Za-z_][\w.]*)`", map_section().split("```")[2])
    return [w for w in words if "." in w or w[0].isupper() or "_" in w]


def test_every_package_has_its_line_in_the_map_and_every_line_is_a_package():
    packages = {
        str(p.parent.relative_to(ROOT))
        for root in ("p2p_real", "inversion")
        for p in (ROOT / root).glob("*/__init__.py")
    }
    top = {"p2p_real", "inversion", "masks", "training", "benchmarks", "tests"}
    assert mapped_folders() == packages | top


def test_every_name_on_the_path_of_one_edit_exists():
    names = named_in_path()
    assert len(names) >= 40, names
    known: dict[str, Any] = {}  # the parts of the full names given, for the short ones (PhotoRequest.check_files)
    missing = []
    for name in names:
        head, *rest = name.split(".")
        try:
            if head in ROOTS:
                known.update(resolve(name))
                continue
            found = known[head] if head in known else public(head)
            for attribute in rest:
                found = getattr(found, attribute)
        except (AttributeError, ModuleNotFoundError, KeyError):
            missing.append(name)
    assert not missing, f"docs/design.md's path of one edit names what the code lacks: {missing}"
