"""The offline demo: a held-out toy-world scene inverted with null-text inversion, then a swap, a
refinement and a reweight, each with local blend, shown as one labelled grid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from masks.visualize import labelled_grid, mask_overlay, word_heatmaps
from p2p_real.editor import Editor
from p2p_real.toyworld.scenes import RenderedScene, Scene, SceneObject, render

# A scene the training data never shows exactly (its seed is outside the training streams).
DEMO_SCENE = Scene(
    objects=(SceneObject(colour="red", shape="circle", size="big", center=(0.38, 0.45), radius_u=0.6),),
    background="yellow",
    texture="gradient",
    texture_strength=0.25,
    gradient_angle=30.0,
    seed=987_654_321,
)


@dataclass
class DemoEdit:
    """One edit of the demo: a target caption and the P2P options that make it."""

    label: str
    target: str
    options: dict[str, Any]


def demo_edits(caption: str) -> list[DemoEdit]:
    """The swap, the refinement and the reweight applied to the demo caption."""
    return [
        DemoEdit("swap circle -> star", caption.replace("circle", "star"),
                 {"blend_words": (["circle"], ["star"])}),
        DemoEdit("refine: add a small blue square",
                 caption.replace(" on a", " and a small blue square on a"),
                 {"blend_words": ([], ["square"])}),
        DemoEdit("reweight 'big' x3", caption, {"equalizer": {"big": 3.0}, "blend_words": (["circle"], ["circle"])}),
    ]


@dataclass
class DemoResult:
    """The grid and what went into it."""

    grid: Image.Image
    photo: Image.Image
    images: list[Image.Image]
    info: dict[str, Any] = field(default_factory=dict)


def run_demo(editor: Editor, scene: Scene = DEMO_SCENE, progress: bool = True) -> DemoResult:
    """Invert the rendered scene (null-text), make the three edits, and lay them out as a grid."""
    size = editor.default_size[0]
    rendered: RenderedScene = render(scene, size)
    caption = rendered.caption
    timings: dict[str, float] = {}
    start = time.perf_counter()
    inv = editor.invert(rendered.image, caption, method="null-text", progress=progress)
    timings["invert_s"] = time.perf_counter() - start
    rec = editor.reconstruct(inv, progress=progress)
    photo = Image.fromarray(rendered.image)
    top = [(photo, f"photo: {caption}"), (rec.image, f"reconstruction {rec.psnr:.1f} dB")]
    masks_row: list[Any] = [None, None]
    images, edits_info = [], []
    attention = None
    for edit in demo_edits(caption):
        start = time.perf_counter()
        res = editor.edit(inv, edit.target, progress=progress, **edit.options)
        timings[edit.label] = time.perf_counter() - start
        image, mask = res.images[1], res.masks[0]
        images.append(image)
        top.append((image, f"{edit.label}: {edit.target}"))
        masks_row.append((mask_overlay(image, np.asarray(mask)), "local-blend mask"))
        attention = attention or res.attention
        edits_info.append({"label": edit.label, "target": edit.target,
                           **{k: repr(v) for k, v in edit.options.items()}})
    heat = word_heatmaps(photo, attention.per_word(0)) if attention is not None else []
    grid = labelled_grid([top, masks_row, heat], cell_height=max(128, size * 2))
    info = {"caption": caption, "edits": edits_info, "seconds": {k: round(v, 2) for k, v in timings.items()},
            "reconstruction": {"psnr": rec.psnr, "ssim": rec.ssim, "vae_psnr": rec.vae_psnr,
                               "latent_error": rec.latent_error}}
    return DemoResult(grid, photo, images, info)
