"""The page's sweep: try several values of one edit setting at once (Editor.sweep), show the contact sheet and
one tile per combination, and give back each combination's slider values so that clicking its tile loads them
into the edit controls.

No Gradio here: errors are the library's ValueErrors; the page turns them into messages. Design note: docs/sweep.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from p2p_real.sweep_grid import parse_values
from p2p_real.ui.choices import EditChoices

# the settings the page sweeps, by the labels of their controls; each has a slider a pick can set
PAGE_SWEEPS = {
    "cross-attention steps": "cross_replace_steps",
    "self-attention steps": "self_replace_steps",
    "blend threshold": "blend_threshold",
}


@dataclass
class SweepView:
    """What the page shows of a sweep."""

    sheet: Image.Image  # the contact sheet
    picks: list[str]  # "K: cross=0.2", one per combination
    sliders: list[dict[str, Any]]  # per combination: {"cross": ..., "self": ..., "threshold": ...}
    files: list[Path]  # the sheet and each combination's sidecar
    tiles: list[tuple[Image.Image, str]]  # per combination: its edit (at most TILE_SIDE a side) and its pick


TILE_SIDE = 256  # longest side of a combination's tile


def tile_settings(sliders: list[dict[str, Any]], index: int | None) -> dict[str, Any]:
    """The slider values of the combination whose tile is at `index`; ValueError if there is none."""
    if index is None or not 0 <= index < len(sliders):
        raise ValueError("run a sweep, then click one of its tiles")
    return sliders[index]


def sweep_page(studio: Any, ws: Any, choices: EditChoices, setting: str, values: str) -> SweepView:
    """Run the page's sweep of `setting` (a PAGE_SWEEPS label) over `values` ('0.2,0.5,0.8') from the page's
    other settings, and write its files into the studio's edits folder (STEM-sweep-K.*)."""
    if ws is None:
        raise ValueError("invert a photo first")
    if not choices.target.strip():
        raise ValueError("write a target prompt first: the caption with your change")
    if setting not in PAGE_SWEEPS:
        raise ValueError(f"choose the setting to sweep: one of {', '.join(PAGE_SWEEPS)}")
    field = PAGE_SWEEPS[setting]
    chosen = parse_values(field, values or "")
    if not all(isinstance(v, float) for v in chosen):
        raise ValueError(f"the page sweeps {setting} over fractions of the steps, e.g. 0.2,0.5,0.8, got {values!r}")
    spec = choices.spec()
    start = time.perf_counter()
    mask = getattr(choices, "mask", None)  # a brush mask (p2p_real/ui/brush.py) applies to every combination
    res = studio.editor.sweep(  # a tile gives its settings, never a continuation: no trajectories
        ws.inversion, choices.target, spec=spec, mask=mask, progress=False, keep_trajectory=False, **{field: chosen}
    )
    seconds = round(time.perf_counter() - start, 3)
    k = 1
    while (studio.edits / f"{ws.name}-sweep-{k}.sweep.json").exists():
        k += 1
    written = res.save(studio.edits, f"{ws.name}-sweep-{k}", {"ui": {"sweep_s": seconds}})
    sliders = [
        {"kind": s.edit, "cross": s.cross_replace_steps, "self": s.self_replace_steps, "threshold": s.blend_threshold}
        for s in res.specs
    ]
    picks = [f"{c.index}: {c.label}" for c in res.combinations]
    files = [p for p in written if p.name.endswith((".sweep.png", ".json"))]
    tiles = []
    for result, label in zip(res.results, picks):
        tile = result.images[1].copy()
        tile.thumbnail((TILE_SIDE, TILE_SIDE))
        tiles.append((tile, label))
    return SweepView(res.sheet, picks, sliders, files, tiles)
