"""Prompt-to-Prompt attention control: what each attention layer does to the target rows at each step.

Edits are linear in the attention maps, so they run on the fused attention kernel: with the source row's
maps M_src, a target's own maps M_tgt, its values V and per-token coefficients a, b of the current step,

    edited maps            M* = M_src @ mapper @ diag(a) + M_tgt @ diag(b)
    edited output     M* @ V  = attend(Q_src, K_src, mapper diag(a) V) + attend(Q_tgt, K_tgt, diag(b) V)

where a = alpha * partner * c and b = alpha * (1 - partner) * c + (1 - alpha) for the injection window
alpha (0/1 per step and token), the token map (mapper, partner) of a replace or refine edit and the
reweight factors c. Self-attention injection attends the target's values with the source's queries and
keys. Maps are only materialised in the layers the attention store reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from inversion import validation
from p2p_real.core.alignment import PromptError, Tokens, choose_edit, target_word_indices, token_map
from p2p_real.core.store import AttentionStore
from p2p_real.core.windows import cross_alphas, step_range
from p2p_real.defaults import DEFAULT_ATTENTION_RES
from p2p_real.spec import EditSpec, Equalizer, Window, reweight_factor

if TYPE_CHECKING:
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel


@dataclass
class CrossEdit:
    """Per target row: token map, partner mask, reweight factors and injection window over steps."""

    kinds: list[str]
    mapper: torch.Tensor  # (targets, source tokens, target tokens)
    partner: torch.Tensor  # (targets, tokens)
    scale: torch.Tensor  # (targets, tokens), reweight factors c
    alpha: torch.Tensor  # (steps, targets, tokens)


def _equalizer_values(word: str, value: float | Sequence[float], n_targets: int, name: str) -> list[float]:
    values = list(value) if isinstance(value, Sequence) else [value] * n_targets
    if len(values) != n_targets:
        raise PromptError(
            f"{name}[{word!r}] gives {len(values)} values for {n_targets} target prompts (give one, or one per target)"
        )
    return [reweight_factor(v, f"{name}[{word!r}]") for v in values]


def reweight_factors(
    tokenizer: PreTrainedTokenizerBase,
    targets: Sequence[Tokens],
    equalizer: Equalizer | None,
    name: str = "equalizer",
) -> torch.Tensor:
    """c[target, token]: the equalizer's factor on the tokens of its words in each target, 1 elsewhere."""
    scale = torch.ones(len(targets), targets[0].max_length)
    for word, value in (equalizer or {}).items():
        values = _equalizer_values(word, value, len(targets), name)
        for j, idx in target_word_indices(tokenizer, targets, word, name):
            scale[j, idx] = values[j]
    return scale


def build_cross_edit(
    tokenizer: PreTrainedTokenizerBase,
    source: Tokens,
    targets: Sequence[Tokens],
    spec: EditSpec,
    num_steps: int,
) -> CrossEdit:
    """Everything the cross-attention edit of each target row needs, for `num_steps` steps."""
    kinds = [choose_edit(source, t, spec.edit, spec.name("edit")) for t in targets]
    maps = [token_map(source, t, kind) for t, kind in zip(targets, kinds)]
    mapper = torch.stack([m for m, _ in maps])
    partner = torch.stack([p for _, p in maps])
    scale = reweight_factors(tokenizer, targets, spec.equalizer, spec.name("equalizer"))
    alpha = cross_alphas(spec.cross_replace_steps, num_steps, tokenizer, targets, spec.name("cross_replace_steps"))
    return CrossEdit(kinds, mapper, partner, scale, alpha)


def unet_levels(unet: UNet2DConditionModel) -> tuple[int, set[int]]:
    """(number of resolution levels, levels that have cross-attention) from the UNet's layer names."""
    n_down = len(getattr(unet, "down_blocks", [])) or 4
    n_up = len(getattr(unet, "up_blocks", [])) or n_down
    cross = set()
    for name in unet.attn_processors:
        if ".attn2." not in name:
            continue
        if match := re.match(r"down_blocks\.(\d+)\.", name):
            cross.add(int(match.group(1)))
        elif match := re.match(r"up_blocks\.(\d+)\.", name):
            cross.add(n_up - 1 - int(match.group(1)))
        elif name.startswith("mid_block"):
            cross.add(n_down - 1)
    return n_down, cross


def level_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """(height, width) of each UNet level for a latent of height x width (each level halves, rounding up)."""
    sizes = []
    for _ in range(levels + 1):
        sizes.append((height, width))
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    return sizes


def _max_res_level(fraction: float, name: str) -> int:
    """The first UNet level whose side is at most `fraction` of the latent's (level k has side latent / 2^k)."""
    return math.ceil(math.log2(1 / validation.side_fraction(fraction, name)) - 1e-9)


def _self_injection(
    self_replace_steps: Window | list[Window], self_replace_max_res: float | list[float], n_targets: int, num_steps: int
) -> tuple[list[range], list[int]]:
    """Self-attention injection per target row: its steps and the first UNet level it applies at. A list gives each
    row its own window and layer limit (a sweep batches rows that differ in them); a single value applies to all."""
    windows = self_replace_steps if isinstance(self_replace_steps, list) else [self_replace_steps] * n_targets
    limits = self_replace_max_res if isinstance(self_replace_max_res, list) else [self_replace_max_res] * n_targets
    if len(windows) != n_targets or len(limits) != n_targets:
        raise ValueError(
            f"self_replace_steps and self_replace_max_res need one value per target row ({n_targets})"
            f", got {len(windows)} and {len(limits)}"
        )
    ranges = [step_range(w, num_steps, "self_replace_steps") for w in windows]
    return ranges, [_max_res_level(r, "self_replace_max_res") for r in limits]


class P2PController:
    """Decides and computes, per layer call, the attention of rows [source, targets...] of one edit.

    The batch seen by each layer is [unconditional rows, conditional rows] with classifier-free guidance
    or the conditional rows alone; only the conditional target rows are changed.
    """

    def __init__(
        self,
        n_rows: int,
        guidance: bool,
        latent_size: tuple[int, int],
        unet: UNet2DConditionModel,
        cross_edit: CrossEdit | None,
        self_replace_steps: Window | list[Window],
        self_replace_max_res: float | list[float],
        num_steps: int,
        store_res: float = DEFAULT_ATTENTION_RES,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.n_rows = n_rows
        self.cond_start = n_rows if guidance else 0
        self.batch = 2 * n_rows if guidance else n_rows
        n_levels, cross_levels = unet_levels(unet)
        self.sizes = level_sizes(*latent_size, n_levels)
        self.levels: dict[int, int] = {}
        for level, (h, w) in enumerate(self.sizes):
            self.levels.setdefault(h * w, level)
        self._self_ranges, self._self_levels = _self_injection(
            self_replace_steps, self_replace_max_res, max(n_rows - 1, 0), num_steps
        )
        self._self_rows: list[bool] = []  # per target: injected at this step
        self._row_choice: dict[tuple[bool, ...], torch.Tensor] = {}  # (targets,) bool masks on the device
        self._device = device
        wanted = _max_res_level(store_res, "store_res")
        self.store_level = min(cross_levels or {wanted}, key=lambda lv: (abs(lv - wanted), lv))
        self.store_size = self.sizes[min(self.store_level, len(self.sizes) - 1)]
        self.store = AttentionStore()
        self.step = 0
        self._self_on = self._cross_on = self._own_needed = False
        # Coefficients of every step, computed once and moved to the device once: the loop never waits
        # for a host-to-device copy.
        self._cross_steps = [False] * num_steps
        self._own_steps = [False] * num_steps
        self._identity_steps = [False] * num_steps
        # this step's coefficients of the cross-attention edit: set by begin_step at the steps that edit
        self.value_map = self.own_scale = torch.empty(0)
        if cross_edit is not None and n_rows > 1:
            self._set_cross_coefficients(cross_edit, device, dtype)
        self._kept: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _set_cross_coefficients(self, cross_edit: CrossEdit, device: torch.device | str, dtype: torch.dtype) -> None:
        """Every step's value maps (mapper diag(a)) and own-map scales b, on the device; the steps that use them."""
        alpha = cross_edit.alpha
        a = alpha * cross_edit.partner * cross_edit.scale
        b = alpha * (1 - cross_edit.partner) * cross_edit.scale + (1 - alpha)
        value_maps = cross_edit.mapper[None] * a[:, :, None, :]
        self._cross_steps = alpha.flatten(1).any(1).tolist()
        self._own_steps = b.flatten(1).any(1).tolist()
        eye = torch.eye(value_maps.shape[-1])
        self._identity_steps = [bool((m == eye).all()) for m in value_maps]
        self._value_maps = value_maps.to(device, dtype)
        self._own_scales = b.to(device, dtype)

    def begin_step(self, step: int) -> None:
        """Select the coefficients of denoising step `step` (0 = first sampling step)."""
        self.step = step
        self._self_rows = [step in r for r in self._self_ranges]
        self._self_on = self.n_rows > 1 and any(self._self_rows)
        self._cross_on = self._cross_steps[step]
        self._own_needed = self._own_steps[step]
        if self._cross_on:
            self.value_map = self._value_maps[step]
            self.own_scale = self._own_scales[step]

    def end_step(self) -> None:
        """Add the maps the rows used at this step, averaged over the kept layers and heads, to the store."""
        if not self._kept:
            return
        query = torch.stack([q for q, _ in self._kept])  # (layers, rows, heads, queries, dim)
        key = torch.stack([k for _, k in self._kept])
        self._kept = []
        scores = (query * query.shape[-1] ** -0.5) @ key.transpose(-1, -2)
        maps = scores.softmax(-1, dtype=torch.float32).mean(dim=(0, 2))  # (rows, queries, tokens)
        if self._cross_on:
            edited = edit_maps(maps[0], maps[1:], self.value_map.float(), self.own_scale.float())
            maps = torch.cat([maps[:1], edited])
        self.store.add(maps)

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        is_cross: bool,
    ) -> torch.Tensor:
        """Attention output (batch, heads, queries, dim) with this step's edits applied.

        The target rows are the last rows of the batch: rows before them run untouched in one call, the
        targets attend with the source row's queries and keys in another.
        """
        if query.shape[0] != self.batch:  # not a call of this edit (e.g. another batch): leave it alone
            return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        level = self.levels.get(query.shape[2], 0)
        src = self.cond_start
        if is_cross and level == self.store_level:
            self._kept.append((query[src:], key[src:]))
        edit_cross = is_cross and self._cross_on
        self_rows = (
            [on and level >= lv for on, lv in zip(self._self_rows, self._self_levels)]
            if (not is_cross and self._self_on)
            else []
        )
        edit_self = any(self_rows)
        if not (edit_cross or edit_self):
            return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        if edit_self and not all(self_rows):
            return self._attend_some_self(query, key, value, mask, self_rows)
        head, tgt, n_tgt = slice(0, src + 1), slice(src + 1, None), self.n_rows - 1
        out_head = F.scaled_dot_product_attention(
            query[head], key[head], value[head], attn_mask=None if mask is None else mask[head]
        )
        tgt_mask = None if mask is None else mask[tgt]
        src_query = query[src : src + 1].expand(n_tgt, -1, -1, -1)
        src_key = key[src : src + 1].expand(n_tgt, -1, -1, -1)
        tgt_value = value[tgt]
        if edit_cross and not self._identity_steps[self.step]:
            tgt_value = self.value_map[:, None] @ tgt_value
        out_tgt = F.scaled_dot_product_attention(src_query, src_key, tgt_value, attn_mask=tgt_mask)
        if edit_cross and self._own_needed:
            own_value = value[tgt] * self.own_scale[:, None, :, None]
            out_tgt = out_tgt + F.scaled_dot_product_attention(query[tgt], key[tgt], own_value, attn_mask=tgt_mask)
        return torch.cat([out_head, out_tgt])

    def _attend_some_self(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, rows: list[bool]
    ) -> torch.Tensor:
        """A self-attention layer where only some target rows inject: those attend with the source row's queries
        and keys, the others with their own."""
        choice = self._row_choice.get(tuple(rows))
        if choice is None:
            choice = torch.tensor(rows, device=self._device)[:, None, None, None]
            self._row_choice[tuple(rows)] = choice
        src = self.cond_start
        head, tgt = slice(0, src + 1), slice(src + 1, None)
        out_head = F.scaled_dot_product_attention(
            query[head], key[head], value[head], attn_mask=None if mask is None else mask[head]
        )
        tgt_query = torch.where(choice, query[src : src + 1], query[tgt])
        tgt_key = torch.where(choice, key[src : src + 1], key[tgt])
        out_tgt = F.scaled_dot_product_attention(
            tgt_query, tgt_key, value[tgt], attn_mask=None if mask is None else mask[tgt]
        )
        return torch.cat([out_head, out_tgt])


def edit_maps(
    source: torch.Tensor, targets: torch.Tensor, value_map: torch.Tensor, own_scale: torch.Tensor
) -> torch.Tensor:
    """Explicit edited maps M* = M_src @ mapper diag(a) + M_tgt diag(b) for every target row.

    source (..., queries, tokens); targets (k, ..., queries, tokens); value_map (k, tokens, tokens);
    own_scale (k, tokens). The fused path in `P2PController.attend` computes M* @ V without M*.
    """
    shape = (-1,) + (1,) * (targets.dim() - 3) + value_map.shape[1:]
    mapped = source.unsqueeze(0) @ value_map.reshape(shape)
    return mapped + targets * own_scale.reshape(own_scale.shape[0], *([1] * (targets.dim() - 2)), -1)
