"""The page's brush mask: what a person paints over the photo (Gradio's image editor) as a user mask of the edit,
which replaces the attention mask or keeps only its painted part (EditSpec.mask_mode "replace" / "intersect").

No Gradio here: the editor's value is a plain dict of images. Design note: docs/page_tools.md ("Brush masks").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from inversion.storage.files import atomic_write_bytes
from masks.local_blend import combine_user_mask
from masks.paste import user_mask
from masks.visualize import mask_overlay
from p2p_real.files.results import EditResult
from p2p_real.ui.choices import EditChoices

BRUSH_SIDE = 1024  # longest side of the photo shown in the editor (the mask is scaled to the photo's own size)
MASK_COLOR = (255, 48, 48)  # the brush's colour and the preview's tint
MASK_ALPHA = 0.5  # how strongly the preview tints the painted part
MASK_FOLDER = "masks"  # the folder of --out where painted masks are kept (content-addressed, never replaced)


def editor_value(photo: str | Path | Image.Image | None, mask: str | Path | None = None) -> dict[str, Any] | None:
    """The editor's value that shows `photo` (at most BRUSH_SIDE pixels a side) and one layer to paint on, with
    `mask` (a mask file of the photo, e.g. a history entry's) painted on it, or nothing painted."""
    if photo is None:
        return None
    if isinstance(photo, Image.Image):
        image = photo.convert("RGB")
    else:
        with Image.open(photo) as opened:
            image = opened.convert("RGB")
    image.thumbnail((BRUSH_SIDE, BRUSH_SIDE))
    layer = Image.new("RGBA", image.size, (*MASK_COLOR, 0))  # the brush paints on a layer: one is needed
    if mask is not None:
        with Image.open(mask) as opened:
            painted = opened.convert("L").resize(image.size, Image.Resampling.NEAREST)
        layer.putalpha(painted.point(lambda v: 255 if v > 0 else 0))
    return {"background": image, "layers": [layer], "composite": None}


def _as_image(value: Any) -> Image.Image | None:
    """A layer as a PIL image: from PIL, an array (H, W, C) or a file path; None for None."""
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    if isinstance(value, (str, Path)):
        with Image.open(value) as opened:
            opened.load()
            return opened.copy()
    raise ValueError(f"the brush layer is not an image: {type(value).__name__}")


def painted_mask(value: Mapping[str, Any] | None, photo_size: tuple[int, int]) -> Image.Image | None:
    """The painted part of the editor's value (its layers' opaque pixels) as a mask at the photo's resolution
    (`photo_size` is (width, height); "L", painted = 255, else 0); None when nothing is painted."""
    if not value:
        return None
    painted: np.ndarray | None = None
    for layer in value.get("layers") or []:
        image = _as_image(layer)
        if image is None:
            continue
        if image.mode not in ("RGBA", "LA"):  # a layer without transparency: its non-black pixels are paint
            alpha = np.asarray(image.convert("L")) > 0
        else:
            alpha = np.asarray(image.getchannel("A")) > 0
        if painted is not None and alpha.shape != painted.shape:
            raise ValueError(f"the brush layers differ in size: {painted.shape[::-1]} and {alpha.shape[::-1]}")
        painted = alpha if painted is None else painted | alpha
    if painted is None or not painted.any():
        return None
    mask = Image.fromarray(painted.astype(np.uint8) * 255)
    return mask.resize(photo_size, Image.Resampling.NEAREST) if mask.size != tuple(photo_size) else mask


def mask_preview(photo: Image.Image, mask: Image.Image | None) -> Image.Image:
    """The photo (at most BRUSH_SIDE pixels a side) tinted where the mask is painted."""
    shown = photo.convert("RGB")
    shown.thumbnail((BRUSH_SIDE, BRUSH_SIDE))
    if mask is None:
        return shown
    return mask_overlay(shown, mask, MASK_COLOR, MASK_ALPHA)


def brush_choices(
    choices: EditChoices, mask: Image.Image | None, mode: str | None, out: Path, stem: str
) -> EditChoices:
    """The page's choices with the painted mask (saved under OUT/masks, see save_mask) and its mode; as they are
    when nothing is painted."""
    if mask is None:
        return choices
    return replace(choices, mask=save_mask(mask, out, stem), mask_mode=mode or "replace")


def save_mask(mask: Image.Image, out: str | Path, stem: str) -> Path:
    """Write the mask as PNG to OUT/masks/STEM-HASH.png (HASH: of its pixels), atomically; the same mask painted
    again is the same file, kept as it is (a file is never replaced). Returns the absolute path."""
    gray = mask.convert("L")
    digest = hashlib.sha256(f"{gray.size}".encode() + gray.tobytes()).hexdigest()[:12]
    path = (Path(out) / MASK_FOLDER / f"{stem}-{digest}.png").resolve()
    if path.is_file():
        return path
    data = io.BytesIO()
    gray.save(data, format="PNG")
    with contextlib.suppress(FileExistsError):  # written meanwhile by another page session: the same pixels
        atomic_write_bytes(path, data.getvalue(), make_folder=True, replace=False)
    return path


def applied_mask(result: EditResult, latent: torch.Tensor | None, user: str | Path | None) -> torch.Tensor | None:
    """The latent mask (targets, 1, h, w) an edit with the user mask `user` applied, given its attention mask
    `latent` (None without blend words): the user mask itself ("replace") or the part of `latent` under it
    ("intersect", EditSpec.mask_mode); `latent` as it is without a user mask."""
    inv = result.inversion
    if user is None or inv is None:
        return latent
    photo_size = (inv.original.shape[1], inv.original.shape[0])
    painted = user_mask(user, inv.latent_size, inv.box, photo_size)
    mode = result.spec.mask_mode if result.spec is not None else "replace"
    if latent is None:
        targets = max(len(result.prompts) - 1, 1)
        return painted.expand(targets, 1, *inv.latent_size).clone()
    return combine_user_mask(latent, painted, mode)
