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
        self._step_sum: torch.Tensor | None = None
        self._layers = 0

    def add(self, maps: torch.Tensor) -> None:
        """Add one layer's head-averaged maps (rows, pixels, tokens) for the current step."""
        maps = maps.float()
        self._step_sum = maps if self._step_sum is None else self._step_sum + maps
        self._layers += 1

    def end_step(self) -> None:
        """Fold the current step's layer average into the running sum."""
        if self._step_sum is None:
            return
        step_mean = self._step_sum / self._layers
        self.total = step_mean if self.total is None else self.total + step_mean
        self.steps += 1
        self._step_sum, self._layers = None, 0

    def mean(self) -> torch.Tensor | None:
        """Maps averaged over the steps seen so far (rows, pixels, tokens)."""
        return None if self.total is None else self.total / self.steps
