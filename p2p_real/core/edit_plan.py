"""An edit resolved against its prompts: tokens, the cross-attention edit and the local-blend words.

Resolving is what can fail on a misspelt word or a prompt that is too long, and it needs only the
tokenizer: Editor.check runs it before any slow work, the denoising loop runs it again to get the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from p2p_real.core.alignment import PromptError, Tokens, tokenize, word_indices
from p2p_real.core.controllers import CrossEdit, build_cross_edit
from p2p_real.spec import EditSpec, Window, Words


def prompt_list(prompts: str | Sequence[str], name: str = "prompts") -> list[str]:
    """One prompt or a list of them, as a non-empty list of non-blank strings."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, Sequence):  # a number, a dict, None: a ValueError, not a TypeError
        raise PromptError(f"{name} must be a prompt or a non-empty list of strings, got {type(prompts).__name__}")
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
    threshold: float | list[float]  # a list: one per target row (a sweep's batch), as pool and start_step
    pool: int | list[int]  # max-pool radius in map cells
    start_step: int | list[int]
    user_mask: torch.Tensor | None  # (1, 1, h, w) at latent size
    mode: str

    @property
    def active(self) -> bool:
        """Whether any mask applies: blend words or a user mask."""
        return self.add is not None or self.user_mask is not None

    def started(self, step: int, n_targets: int) -> list[bool]:
        """Per target row: whether blending has started at denoising step `step`."""
        starts = self.start_step if isinstance(self.start_step, list) else [self.start_step] * n_targets
        return [step >= start for start in starts]


@dataclass
class EditPlan:
    """What the denoising loop of one edit needs from its prompts and settings."""

    prompts: list[str]
    tokens: list[Tokens]
    cross_edit: CrossEdit | None  # None for a single prompt
    blend: BlendPlan
    self_windows: Window | list[Window]  # self-attention injection: one window, or one per target row
    self_max_res: float | list[float]


def _word_weights(
    tokenizer: PreTrainedTokenizerBase, tokens: list[Tokens], words: Words | None, name: str, device: torch.device | str
) -> torch.Tensor | None:
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
    spec: EditSpec | Sequence[EditSpec],
    num_steps: int,
    mask: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> EditPlan:
    """Tokenize the prompts and resolve every word of the spec against them; errors name the setting.
    `mask` is a user mask (1, 1, h, w) at latent size; it and the blend weights go to `device`.
    A sequence of specs, one per target prompt, gives each target row its own settings (see plan_rows)."""
    if not isinstance(spec, EditSpec):
        return plan_rows(tokenizer, prompts, list(spec), num_steps, mask, device)
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
    return EditPlan(prompts, tokens, cross_edit, blend, spec.self_replace_steps, spec.self_replace_max_res)


ROW_SETTINGS = (
    "edit",
    "cross_replace_steps",
    "self_replace_steps",
    "self_replace_max_res",
    "blend_threshold",
    "blend_pool",
    "blend_start",
    "equalizer",
    "feather",
)  # what rows of one batch may set each their own


def plan_rows(
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    specs: list[EditSpec],
    num_steps: int,
    mask: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> EditPlan:
    """plan_edit with one spec per target prompt: each target row gets its own ROW_SETTINGS (the injection
    windows, the edit kind, reweighting, the blend threshold, pool and start); the other settings (the blend
    and subtract words, the mask mode) must agree, since the source row serves every target."""
    if len(specs) != len(prompts) - 1 or not specs:
        raise ValueError(f"per-row settings need one EditSpec per target prompt ({len(prompts) - 1}), got {len(specs)}")
    first = specs[0]
    for spec in specs[1:]:
        for name in ("blend_words", "subtract_words", "mask_mode"):
            if getattr(spec, name) != getattr(first, name):
                raise ValueError(
                    f"rows of one batch must share {name}: {getattr(first, name)!r} and {getattr(spec, name)!r} differ"
                )
    rows = [plan_edit(tokenizer, [prompts[0], target], spec, num_steps) for target, spec in zip(prompts[1:], specs)]
    edits = [row.cross_edit for row in rows if row.cross_edit is not None]  # each row has one: it has two prompts
    cross_edit = CrossEdit(
        kinds=[kind for edit in edits for kind in edit.kinds],
        mapper=torch.cat([edit.mapper for edit in edits]),
        partner=torch.cat([edit.partner for edit in edits]),
        scale=torch.cat([edit.scale for edit in edits]),
        alpha=torch.cat([edit.alpha for edit in edits], dim=1),
    )
    tokens = [rows[0].tokens[0], *(row.tokens[1] for row in rows)]
    blend = BlendPlan(
        add=_word_weights(tokenizer, tokens, first.blend_words, first.name("blend_words"), device),
        subtract=_word_weights(tokenizer, tokens, first.subtract_words, first.name("subtract_words"), device),
        threshold=[spec.blend_threshold for spec in specs],
        pool=[spec.blend_pool for spec in specs],
        start_step=[int(num_steps * spec.blend_start) for spec in specs],
        user_mask=None if mask is None else mask.to(device, torch.float32),
        mode=first.mask_mode,
    )
    return EditPlan(
        prompts,
        tokens,
        cross_edit,
        blend,
        [spec.self_replace_steps for spec in specs],
        [spec.self_replace_max_res for spec in specs],
    )
