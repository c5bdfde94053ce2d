"""An edit resolved against its prompts: tokens, the cross-attention edit and the local-blend words.

Resolving is what can fail on a misspelt word or a prompt that is too long, and it needs only the
tokenizer: Editor.check runs it before any slow work, the denoising loop runs it again to get the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from p2p_real.alignment import PromptError, Tokens, tokenize, word_indices
from p2p_real.controllers import CrossEdit, build_cross_edit
from p2p_real.spec import EditSpec, Words


def prompt_list(prompts: str | Sequence[str], name: str = "prompts") -> list[str]:
    """One prompt or a list of them, as a non-empty list of non-blank strings."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise PromptError(f"{name} must be a non-empty list of strings, got {prompts!r}")
    if empty := [i for i, p in enumerate(prompts) if not p.strip()]:
        raise PromptError(f"{name} must not be empty or blank: {prompts!r} has an empty one at position {empty[0]}")
    return prompts


def row_words(words: Words, n_rows: int, name: str) -> list[list[str]]:
    """One list of words per row; a (source, target) pair is shared by every target row."""
    entries = list(words)
    if len(entries) == 2 and n_rows > 2:
        entries = [entries[0]] + [entries[1]] * (n_rows - 1)
    if len(entries) != n_rows:
        raise PromptError(f"{name} needs one entry per prompt ({n_rows}) or a (source, target) pair, got {words!r}")
    return [[e] if isinstance(e, str) else list(e) for e in entries]


@dataclass
class BlendPlan:
    """Local-blend settings resolved against the prompts."""

    add: torch.Tensor | None  # (rows, tokens) token weights of the blend words
    subtract: torch.Tensor | None
    threshold: float
    pool: int  # max-pool radius in map cells
    start_step: int
    user_mask: torch.Tensor | None  # (1, 1, h, w) at latent size
    mode: str

    @property
    def active(self) -> bool:
        """Whether any mask applies: blend words or a user mask."""
        return self.add is not None or self.user_mask is not None


@dataclass
class EditPlan:
    """What the denoising loop of one edit needs from its prompts and settings."""

    prompts: list[str]
    tokens: list[Tokens]
    cross_edit: CrossEdit | None  # None for a single prompt
    blend: BlendPlan


def _word_weights(tokenizer: PreTrainedTokenizerBase, tokens: list[Tokens], words: Words | None, name: str,
                  device: torch.device | str) -> torch.Tensor | None:
    """(rows, tokens) on `device`: 1 on the tokens of each row's words."""
    if words is None:
        return None
    weights = torch.zeros(len(tokens), tokens[0].max_length)
    for row, row_words_ in enumerate(row_words(words, len(tokens), name)):
        for word in row_words_:
            weights[row, word_indices(tokenizer, tokens[row], word, name)] = 1.0
    return weights.to(device)


def plan_edit(
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    spec: EditSpec,
    num_steps: int,
    mask: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> EditPlan:
    """Tokenize the prompts and resolve every word of the spec against them; errors name the setting.
    `mask` is a user mask (1, 1, h, w) at latent size; it and the blend weights go to `device`."""
    tokens = [tokenize(tokenizer, p) for p in prompts]
    cross_edit = None
    if len(prompts) > 1:
        cross_edit = build_cross_edit(tokenizer, tokens[0], tokens[1:], spec, num_steps)
    elif spec.equalizer or spec.blend_words is not None:
        raise PromptError(f"{spec.name('equalizer')} and {spec.name('blend_words')} need at least one target prompt")
    blend = BlendPlan(
        add=_word_weights(tokenizer, tokens, spec.blend_words, spec.name("blend_words"), device),
        subtract=_word_weights(tokenizer, tokens, spec.subtract_words, spec.name("subtract_words"), device),
        threshold=spec.blend_threshold,
        pool=spec.blend_pool,
        start_step=int(num_steps * spec.blend_start),
        user_mask=None if mask is None else mask.to(device, torch.float32),
        mode=spec.mask_mode,
    )
    return EditPlan(prompts, tokens, cross_edit, blend)
