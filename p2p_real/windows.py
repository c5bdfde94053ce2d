"""Injection windows: during which denoising steps attention is injected, per target row and token."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from p2p_real.alignment import Tokens, target_word_indices

Window = float | tuple[float, float]
CrossWindow = Window | Mapping[str, Window]
DEFAULT_KEY = "default_"


def step_range(window: Window, num_steps: int, name: str) -> range:
    """Steps [int(T * start), int(T * end)) of a fraction `end` or a (start, end) pair of fractions."""
    if isinstance(window, bool):
        raise ValueError(f"{name} must be a fraction or a (start, end) pair, got {window!r}")
    if isinstance(window, (int, float)):
        start, end = 0.0, float(window)
    elif isinstance(window, Sequence) and len(window) == 2:
        start, end = (float(v) for v in window)
    else:
        raise ValueError(f"{name} must be a fraction or a (start, end) pair, got {window!r}")
    if not (math.isfinite(start) and math.isfinite(end) and 0.0 <= start <= end <= 1.0):
        raise ValueError(f"{name} must satisfy 0 <= start <= end <= 1, got {window!r}")
    return range(int(num_steps * start), int(num_steps * end))


def cross_alphas(
    window: CrossWindow, num_steps: int, tokenizer: PreTrainedTokenizerBase, targets: Sequence[Tokens]
) -> torch.Tensor:
    """alpha[step, target, token] = 1 where the target's cross-attention is injected at that step.

    `window` is one window for every token, or a dict {"default_": window, word: window, ...} giving
    the words of the target prompts their own windows (a dict without "default_" injects always).
    """
    per_word = dict(window) if isinstance(window, Mapping) else {DEFAULT_KEY: window}
    default = per_word.pop(DEFAULT_KEY, 1.0)
    n_tokens = targets[0].max_length if targets else 0
    alpha = torch.zeros(num_steps, len(targets), n_tokens)
    steps = step_range(default, num_steps, "cross_replace_steps")
    alpha[steps.start : steps.stop] = 1.0
    for word, word_window in per_word.items():
        steps = step_range(word_window, num_steps, f"cross_replace_steps[{word!r}]")
        for j, idx in target_word_indices(tokenizer, targets, word, "cross_replace_steps"):
            alpha[:, j, idx] = 0.0
            alpha[steps.start : steps.stop, j, idx] = 1.0
    return alpha
