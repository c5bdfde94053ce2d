"""Edits of edits: one row of a photo edit made the Inversion of the edited image (docs/design.md, "Edits of
edits").

The row's own latents after every step (after local blend and the step callback: what the next step started
from) become the pivots that the source row of the next edit follows, as direct inversion's do; the
unconditional embeddings the row used come along per step; the start latent is the edit's shared z_T. So the
next edit starts from the first one without inverting its image again, and its row 0 is edit k itself.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from inversion.artifact import Inversion
from inversion.photos.image import pixel_sha256
from p2p_real.files.outputs import shareable_path
from p2p_real.spec import EditSpec

CHAIN = "chain"  # the method name of an inversion made from an edit (inversion.methods.METHODS)
HOW = (
    "edit the photo with Editor.edit (keep_trajectory=True, the default) and output_type 'pil' or 'np', "
    "or invert the edited image anew"
)


class EditRows(Protocol):
    """What a continued edit reads of its result (p2p_real.files.results.EditResult, which imports this module)."""

    images: Any
    prompts: list[str]
    inversion: Inversion | None
    trajectory: torch.Tensor | None
    unconditional: torch.Tensor | None
    spec: EditSpec | None
    parameters: dict[str, Any]


def edited_pixels(image: Any) -> np.ndarray:
    """An edit's image (PIL, or an (H, W, 3) float array in [0, 1] made from 8-bit pixels) as (H, W, 3) uint8."""
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    return (np.asarray(image, dtype=np.float64) * 255).round().clip(0, 255).astype(np.uint8)


def missing_trajectory(result: EditRows) -> str | None:
    """Why `result` cannot be continued (None if it can)."""
    if result.inversion is None:
        return "this result was generated, not made from a photo's inversion: it has no photo to continue from; " + HOW
    if not isinstance(result.images, (list, np.ndarray)):
        return "this result holds latents only (output_type 'latent'), not the edited image; " + HOW
    if result.trajectory is None or result.unconditional is None:
        return (
            "this edit recorded no trajectory (made with keep_trajectory=False, or by a call that records none); " + HOW
        )
    return None


def chain_link(result: EditRows, k: int) -> dict[str, Any]:
    """What a continued edit records of edit k: the photo and inversion it edited (file names, image sha256,
    caption, method), the target, the row and the settings, any user mask, and the model (its name)."""
    inv, parameters = result.inversion, result.parameters
    if inv is None:
        raise ValueError(missing_trajectory(result))
    model = parameters.get("model")
    return {
        "photo": parameters.get("photo"),
        "image_sha256": inv.image_sha256,
        "inversion": parameters.get("inversion"),
        "prompt": inv.prompt,
        "method": inv.method,
        "target": result.prompts[k],
        "row": k,
        "spec": result.spec.to_dict() if result.spec is not None else None,
        "mask": parameters.get("mask"),
        "mask_sha256": parameters.get("mask_sha256"),
        "model": shareable_path(model) if isinstance(model, str) else None,
    }


def edit_as_inversion(result: EditRows, k: int) -> Inversion:
    """Row k of a photo edit (0: the reconstruction, 1...: the targets) as the Inversion of its image at the
    photo's resolution; ValueError if the result cannot be continued or k is no row of it."""
    problem = missing_trajectory(result)
    if problem is not None:
        raise ValueError(problem)
    rows = len(result.prompts)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < rows:
        raise ValueError(
            f"k must be a row of the edit, 0 to {rows - 1} (0 the reconstruction, then one per target), got {k!r}"
        )
    k = int(k)
    parent = result.inversion
    assert parent is not None and result.trajectory is not None  # missing_trajectory checked both
    image = edited_pixels(result.images[k])
    if image.shape != parent.original.shape:
        raise ValueError(
            f"row {k}'s image is {image.shape[1]}x{image.shape[0]}, not the photo's "
            f"{parent.original.shape[1]}x{parent.original.shape[0]}: it was changed after the edit"
        )
    pivots = result.trajectory[:, k]
    return Inversion(
        latent_T=parent.latent_T,
        z0=pivots[-1:],
        prompt=result.prompts[k],
        method=CHAIN,
        num_inference_steps=parent.num_inference_steps,
        guidance_scale=parent.guidance_scale,
        size=parent.size,
        box=parent.box,
        original=image,
        image_sha256=pixel_sha256(image),
        model_id=parent.model_id,
        scheduler_id=parent.scheduler_id,
        uncond_embeddings=result.unconditional,
        pivots=pivots,
        vae_scale_factor=parent.vae_scale_factor,
        source=None,
        info=parent.info,
        model_family=parent.model_family,
        chain=[*parent.chain, chain_link(result, k)],
    )
