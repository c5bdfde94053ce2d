"""A toy-world PIE set: rendered scenes and their edits written in PIE-Bench's format, with true masks.

DIR/mapping_file.json and DIR/annotation_images/TYPE/KEY.png, as PIE-Bench lays them out: each entry has the
caption (original_prompt), the edited caption with the new word in [brackets] (editing_prompt), the two blend
words (blended_word: source, target) and the run-length code of the region the edit changes, from the
renderer's own masks (docs/evaluate.md, "The toy-world PIE set"). Then, offline:

    python -m p2p_real.toyworld.pie toy-pie --count 12
    p2p-real evaluate --pie-bench toy-pie --model toy
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from p2p_real.evaluation.background import rle_encode
from p2p_real.files.output_sets import OutputSet
from p2p_real.toyworld.edits import make_edit
from p2p_real.toyworld.scenes import RenderedScene, random_scene, render

# the swap edits, each with PIE-Bench's edit type (its editing_type_id and folder name)
PIE_KINDS: dict[str, tuple[str, str]] = {
    "shape": ("1", "change_object"),
    "colour": ("6", "change_attribute_color"),
    "background": ("8", "change_background"),
}
TOY_SIZE = 64  # the shipped toy model's working size


def bracketed(text: str, word: str) -> str:
    """`text` with the first whole-word occurrence of `word` in [brackets]."""
    bracketed_text, count = re.subn(rf"\b{re.escape(word)}\b", f"[{word}]", text, count=1)
    if not count:
        raise ValueError(f"{word!r} is not a word of {text!r}")
    return bracketed_text


def edited_region(kind: str, rendered: RenderedScene, new_word: str, size: int) -> np.ndarray:
    """The pixels the edit changes, from the renderer's masks: the object (before and after a shape swap) or
    the background."""
    if kind == "background":
        return rendered.background_mask
    mask = rendered.objects[0].mask.copy()
    if kind == "shape":
        mask |= render(rendered.scene.with_object(0, shape=new_word), size).objects[0].mask
    return mask


def toy_pie_entries(count: int, size: int = TOY_SIZE, seed: int = 0) -> list[tuple[str, dict[str, Any], RenderedScene]]:
    """`count` toy cases (the three swap kinds in turn): (key, mapping entry, rendered scene)."""
    rng = np.random.default_rng(seed)
    kinds = list(PIE_KINDS)
    cases = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        type_id, folder = PIE_KINDS[kind]
        rendered = render(random_scene(rng, n_objects=1), size)
        edit = make_edit(kind, rendered, rng)
        source_word, new_word = edit.options["blend_words"][0][0], edit.options["blend_words"][1][0]
        key = f"{type_id}{i:011d}"
        entry = {
            "image_path": f"{type_id}_{folder}/{key}.png",
            "original_prompt": edit.source,
            "editing_prompt": bracketed(edit.target, new_word),
            "editing_instruction": f"Change the {source_word} to {new_word}",
            "editing_type_id": type_id,
            "blended_word": f"{source_word} {new_word}",
            "mask": rle_encode(edited_region(kind, rendered, new_word, size)),
        }
        cases.append((key, entry, rendered))
    return cases


def png_writer(image: np.ndarray) -> Callable[[Path], None]:
    """A writer of `image` as a PNG file, for OutputSet.write."""

    def write(path: Path) -> None:
        """Save the image at `path`."""
        Image.fromarray(image).save(path, format="PNG")

    return write


def write_toy_pie_set(
    folder: str | os.PathLike, count: int = 12, size: int = TOY_SIZE, seed: int = 0, overwrite: bool = False
) -> Path:
    """Write `count` toy cases as a PIE-Bench folder (atomically, as one output set; existing files are replaced
    only with `overwrite`); returns the mapping file's path."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    root = Path(os.fspath(folder)).expanduser()
    cases = toy_pie_entries(count, size, seed)
    mapping = root / "mapping_file.json"
    images = [root / "annotation_images" / entry["image_path"] for _, entry, _ in cases]
    with OutputSet(root, "mapping_file", [*images, mapping], overwrite=overwrite) as files:
        for path, (_, _, rendered) in zip(images, cases, strict=True):
            files.write(path, png_writer(rendered.image))
        data = {key: entry for key, entry, _ in cases}
        files.write(mapping, lambda tmp: tmp.write_text(json.dumps(data, indent=1), encoding="utf-8"))
    return mapping


def main(argv: list[str] | None = None) -> int:
    """Write a toy-world PIE set from the command line."""
    parser = argparse.ArgumentParser(prog="python -m p2p_real.toyworld.pie", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to write mapping_file.json and annotation_images/")
    parser.add_argument("--count", type=int, default=12, help="cases (default 12: four of each edit kind)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing set")
    args = parser.parse_args(argv)
    print(f"wrote {write_toy_pie_set(args.folder, args.count, seed=args.seed, overwrite=args.overwrite)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
