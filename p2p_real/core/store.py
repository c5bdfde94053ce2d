"""The attention store: per-token cross-attention at one working resolution, summed over steps."""

from __future__ import annotations

import torch


class AttentionStore:
    """Keeps cross-attention of the conditional rows, averaged over heads and layers, summed over steps.

    Only the running sum is kept (rows, pixels, tokens), never all layers x all steps.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.steps = 0

    def add(self, step_maps: torch.Tensor) -> None:
        """Add one step's maps (rows, pixels, tokens), already averaged over heads and layers."""
        step_maps = step_maps.float()
        self.total = step_maps if self.total is None else self.total + step_maps
        self.steps += 1

    def mean(self) -> torch.Tensor | None:
        """Maps averaged over the steps seen so far (rows, pixels, tokens)."""
        return None if self.total is None else self.total / self.steps
