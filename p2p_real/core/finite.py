"""The one check that no NaN or infinity leaves the edit loop or the VAE as an image."""

from __future__ import annotations

import torch

LIKELY_CAUSES = (
    "likely causes: a huge guidance_scale or reweight factor, half precision overflowing (try dtype float32), "
    "or broken model weights"
)


class NonFiniteError(ValueError):
    """Sampling or decoding produced NaN or infinite values; the message names what and the likely causes."""


def check_finite(values: torch.Tensor, what: str, settings: str = "") -> torch.Tensor:
    """Return `values` if every entry is finite; else raise NonFiniteError naming `what` (and `settings`)."""
    if bool(torch.isfinite(values).all()):
        return values
    bad = int((~torch.isfinite(values)).sum())
    detail = f" ({settings})" if settings else ""
    raise NonFiniteError(
        f"{what} contain {bad} NaN or infinite values out of {values.numel()}{detail}; {LIKELY_CAUSES}"
    )
