"""Injection windows: during which denoising steps attention is injected, per target row and token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from inversion import validation
from p2p_real.core.alignment import Tokens, target_word_indices
from p2p_real.spec import DEFAULT_KEY, CrossWindow, Window


def step_range(window: Window, num_steps: int, name: str) -> range:
    """Steps [int(T * start), int(T * end)) of a fraction `end` or a (start, end) pair of fractions."""
    checked = validation.window(window, name)
    start, end = checked if isinstance(checked, tuple) else (0.0, checked)
    return range(int(num_steps * start), int(num_steps * end))


def cross_alphas(
    window: CrossWindow,
    num_steps: int,
    tokenizer: PreTrainedTokenizerBase,
    targets: Sequence[Tokens],
    name: str = "cross_replace_steps",
) -> torch.Tensor:
    """alpha[step, target, token] = 1 where the target's cross-attention is injected at that step.

    `window` is one window for every token, or a dict {"default_": window, word: window, ...} giving
    the words of the target prompts their own windows (a dict without "default_" injects always).
    """
    per_word = dict(window) if isinstance(window, Mapping) else {DEFAULT_KEY: window}
    default = per_word.pop(DEFAULT_KEY, 1.0)
    n_tokens = targets[0].max_length if targets else 0
    alpha = torch.zeros(num_steps, len(targets), n_tokens)
    steps = step_range(default, num_steps, name)
    alpha[steps.start : steps.stop] = 1.0
    for word, word_window in per_word.items():
        steps = step_range(word_window, num_steps, f"{name}[{word!r}]")
        for j, idx in target_word_indices(tokenizer, targets, word, name):
            alpha[:, j, idx] = 0.0
            alpha[steps.start : steps.stop, j, idx] = 1.0
    return alpha
