"""An edit's local-blend mask again, at another threshold, from the attention maps its result keeps.

Changing the threshold needs no sampling: the mask is a threshold of the stored maps of the blend words
(docs/design.md §3). The maps kept are the step average and the loop thresholds the step sum, which
give the same mask, since the threshold is relative to each map's maximum. What it shows is the mask of
the last step; an edit run at the new threshold blends with it from `blend_start` on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from masks.local_blend import blend_mask
from masks.paste import DILATE, feathered_mask
from p2p_real.core.edit_plan import plan_edit
from p2p_real.editing.photo_edit import feather_width
from p2p_real.files.results import EditResult
from p2p_real.spec import EditSpec


def blend_masks(result: EditResult, tokenizer: Any, threshold: float | None = None) -> torch.Tensor | None:
    """The edit's local-blend masks (targets, 1, h, w) at latent size, recomputed from its stored attention maps
    at `threshold` (default: the edit's own); None when it had no blend words. A user mask is not applied."""
    spec = result.spec or EditSpec()
    if spec.blend_words is None or result.attention is None:
        return None
    if threshold is not None:
        spec = spec.replace(blend_threshold=threshold)
    steps = int(result.parameters.get("steps") or 1)
    plan = plan_edit(tokenizer, list(result.prompts), spec, steps)
    if plan.blend.add is None:  # no blend words (as checked above)
        return None
    maps = result.attention.maps  # (rows, h, w, tokens)
    rows, h, w, tokens = maps.shape
    latent = _latent_size(result)
    return blend_mask(
        maps.reshape(rows, h * w, tokens),
        (h, w),
        latent,
        plan.blend.add,
        plan.blend.subtract,
        spec.blend_threshold,
        spec.blend_pool,
    )


def photo_masks(result: EditResult, masks: torch.Tensor) -> list[Image.Image]:
    """Latent masks (targets, 1, h, w) of an edit of a photo as the feathered masks that paste-back uses, at the
    photo's resolution (grayscale, white = edited)."""
    inv = result.inversion
    if inv is None:
        raise ValueError("photo masks need an edit of a photo (a result of Editor.edit)")
    x0, y0, x1, y1 = inv.box
    feather = feather_width((result.spec or EditSpec()).feather, result.attention)
    soft = feathered_mask(masks.float().cpu(), (y1 - y0, x1 - x0), feather, DILATE)
    height, width = inv.original.shape[:2]
    out = []
    for m in soft:
        full = np.zeros((height, width), dtype=np.float32)
        full[y0:y1, x0:x1] = m[0].numpy()
        out.append(Image.fromarray((full * 255).round().astype(np.uint8)))
    return out


def _latent_size(result: EditResult) -> tuple[int, int]:
    """(h, w) of the edit's latents."""
    if result.inversion is not None:
        return result.inversion.latent_size
    if result.latents is None:
        raise ValueError("the result keeps neither its inversion nor its latents: its latent size is unknown")
    h, w = result.latents.shape[-2:]
    return h, w
