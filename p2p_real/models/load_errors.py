"""What loading a model refuses: the error it raises, and whether this torch may read pickled weights at all.

loading, sdxl_loading and adapters all raise ModelLoadError; it lives here so that none of them imports another
to get it (docs/design.md §10: no import cycles)."""

from __future__ import annotations

import re

SAFE_PICKLE_TORCH = (2, 6)  # torch.load(weights_only=True) runs no code from the file from here on (CVE-2025-32434)


class ModelLoadError(ValueError):
    """The model could not be found or loaded; the message says what to point `model` at instead."""


def torch_loads_pickles_safely(version: str | None = None) -> bool:
    """Whether torch.load(weights_only=True) of this torch (or of `version`) is a safe guard against code in
    pickled weights. Before torch 2.6 it is not (CVE-2025-32434): a crafted .ckpt/.bin file runs code."""
    if version is None:
        import torch

        version = str(torch.__version__)
    match = re.match(r"(\d+)\.(\d+)", str(version))
    return match is not None and (int(match[1]), int(match[2])) >= SAFE_PICKLE_TORCH
