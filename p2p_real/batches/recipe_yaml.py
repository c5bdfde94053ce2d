"""Reading YAML recipes with aliases bounded: a recipe whose anchors and aliases expand to more than
MAX_NODES values (a "billion laughs" file of a few hundred bytes) or refer to themselves is refused before
anything is built from it. Plain values are built by yaml.SafeLoader (no Python objects, no code)."""

from __future__ import annotations

from typing import Any

MAX_NODES = 100_000  # values in a recipe once its aliases are expanded (a recipe of 1,000 edits has ~20,000)


class AliasBombError(ValueError):
    """A YAML document whose aliases expand beyond MAX_NODES values, or that contains itself."""


def _expanded_size(node: Any, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values `node` stands for once every alias in it is expanded (each shared node counted once per
    use, computed once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise AliasBombError("an alias refers to a node that contains it (a recursive structure)")
    open_nodes.add(key)
    total = 1
    value = node.value
    if isinstance(value, list):
        for item in value:
            children = item if isinstance(item, tuple) else (item,)  # mappings hold (key, value) pairs
            for child in children:
                total += _expanded_size(child, sizes, open_nodes)
                if total > MAX_NODES:
                    raise AliasBombError(f"its aliases expand to more than {MAX_NODES:,} values")
    open_nodes.discard(key)
    sizes[key] = total
    return total


def safe_load_bounded(text: str) -> Any:
    """yaml.safe_load(text), refusing (AliasBombError) a document that expands beyond MAX_NODES values."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()
