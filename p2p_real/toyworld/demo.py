"""The offline demo: a toy-world scene inverted (direct inversion by default), then the five edit kinds
(colour, shape, background, an added object, a size reweight), each with local blend, as one labelled grid
with each edit's mask, timing and check, and the caption's word heat maps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from inversion.methods import DEFAULT_METHOD
from masks.visualize import labelled_grid, mask_overlay, word_heatmaps
from p2p_real.editor import Editor
from p2p_real.toyworld.edits import KINDS, ToyEdit, check_edit, make_edit
from p2p_real.toyworld.scenes import RenderedScene, Scene, SceneObject, render

# A scene like the training scenes (one big object on a plain background, room on the left for the added
# object), drawn by `random_scene` from a generator the training streams never use (seed 555). It was picked
# among seven such scenes as one on which the shipped model makes every edit with every new word it was
# tried with (two of the seven did; docs/toyworld.md): the demo shows what the edits look like when they
# work, `benchmarks/toyworld.py` measures how often they do.
DEMO_SCENE = Scene(
    objects=(
        SceneObject(
            colour="green",
            shape="square",
            size="big",
            center=(0.70, 0.44),
            radius_u=0.97,
            angle=-3.1,
            tint=(-2.3, -2.8, -7.1),
            shade=(-0.016, -0.001),
        ),
    ),
    background="blue",
    bg_tint=(3.5, -2.9, 5.5),
    noise_std=1.84,
    seed=2_133_954_319,
)
# The inversion the demo edits from. With the toy model, edits from direct inversion work far more often
# than from null-text inversion (benchmarks/toyworld.py measures both; docs/toyworld.md, "Which inversion"):
# null-text's tuned unconditional embeddings are given to the target rows too and pull them to the source.
DEMO_METHOD = DEFAULT_METHOD  # direct inversion
# The new word each demo edit asks for: on this scene every colour, shape and background tried works, and an
# added object of each of the five colours.
DEMO_CHOICES: dict[str, str | None] = {
    "colour": "red",
    "shape": "star",
    "background": "purple",
    "add": "yellow",
    "size": None,
}


def demo_edits(rendered: RenderedScene) -> list[ToyEdit]:
    """The five edits of the demo scene."""
    return [make_edit(kind, rendered, prefer=DEMO_CHOICES[kind]) for kind in KINDS]


@dataclass
class DemoResult:
    """The grid and what went into it."""

    grid: Image.Image
    photo: Image.Image
    images: list[Image.Image]
    info: dict[str, Any] = field(default_factory=dict)


def run_demo(editor: Editor, scene: Scene = DEMO_SCENE, progress: bool = True, method: str = DEMO_METHOD) -> DemoResult:
    """Invert the rendered scene (with `method`), make the five edits, check them and lay them out as a grid."""
    size = editor.default_size[0]
    rendered = render(scene, size)
    caption = rendered.caption
    timings: dict[str, float] = {}
    start = time.perf_counter()
    inv = editor.invert(rendered.image, caption, method=method, progress=progress)
    timings["invert_s"] = time.perf_counter() - start
    rec = editor.reconstruct(inv, progress=progress)
    photo = Image.fromarray(rendered.image)
    top = [(photo, f"photo: {caption}"), (rec.image, f"reconstruction {rec.psnr:.1f} dB")]
    masks_row: list[Any] = [None, None]
    images, edits_info = [], []
    attention = None
    for edit in demo_edits(rendered):
        start = time.perf_counter()
        res = editor.edit(inv, edit.target, progress=progress, **edit.options)
        seconds = time.perf_counter() - start
        timings[edit.kind] = seconds
        image = res.images[1]
        check = check_edit(edit, rendered, image)
        images.append(image)
        mark = "ok" if check.success else "missed"
        top.append((image, f"{edit.label} ({seconds:.1f} s, {mark})"))
        masks_row.append(None if not res.masks else (mask_overlay(image, np.asarray(res.masks[0])), "local-blend mask"))
        attention = attention or res.attention
        edits_info.append(
            {
                "kind": edit.kind,
                "label": edit.label,
                "target": edit.target,
                "success": check.success,
                "check": check.detail,
                **{k: repr(v) for k, v in edit.options.items()},
            }
        )
    heat = word_heatmaps(photo, attention.per_word(0)) if attention is not None else []
    grid = labelled_grid([top, masks_row, heat], cell_height=max(128, size * 2))
    info = {
        "caption": caption,
        "method": method,
        "edits": edits_info,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "reconstruction": {
            "psnr": rec.psnr,
            "ssim": rec.ssim,
            "vae_psnr": rec.vae_psnr,
            "latent_error": rec.latent_error,
        },
    }
    return DemoResult(grid, photo, images, info)
