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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from p2p_real.alignment import PromptError, Tokens, choose_edit, token_map, word_indices
from p2p_real.store import AttentionStore
from p2p_real.windows import CrossWindow, Window, cross_alphas, step_range

Equalizer = Mapping[str, float | Sequence[float]]


@dataclass
class CrossEdit:
    """Per target row: token map, partner mask, reweight factors and injection window over steps."""

    kinds: list[str]
    mapper: torch.Tensor  # (targets, source tokens, target tokens)
    partner: torch.Tensor  # (targets, tokens)
    scale: torch.Tensor  # (targets, tokens), reweight factors c
    alpha: torch.Tensor  # (steps, targets, tokens)


def _equalizer_values(word: str, value: float | Sequence[float], n_targets: int) -> list[float]:
    values = [value] * n_targets if isinstance(value, (int, float)) else list(value)
    if len(values) != n_targets:
        raise PromptError(f"equalizer[{word!r}] gives {len(values)} values for {n_targets} target prompts")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PromptError(f"equalizer[{word!r}] must be a finite number, got {v!r}")
        out.append(float(v))
    return out


def reweight_factors(
    tokenizer: PreTrainedTokenizerBase, targets: Sequence[Tokens], equalizer: Equalizer | None
) -> torch.Tensor:
    """c[target, token]: the equalizer's factor on the tokens of its words in each target, 1 elsewhere."""
    scale = torch.ones(len(targets), targets[0].max_length)
    for word, value in (equalizer or {}).items():
        values = _equalizer_values(word, value, len(targets))
        present = False
        for j, tokens in enumerate(targets):
            try:
                idx = word_indices(tokenizer, tokens, word)
            except PromptError:
                continue
            present = True
            scale[j, idx] = values[j]
        if not present:
            prompts = ", ".join(repr(t.prompt) for t in targets)
            raise PromptError(f"equalizer word {word!r} is in no target prompt ({prompts})")
    return scale


def build_cross_edit(
    tokenizer: PreTrainedTokenizerBase,
    source: Tokens,
    targets: Sequence[Tokens],
    edit: str,
    cross_replace_steps: CrossWindow,
    num_steps: int,
    equalizer: Equalizer | None = None,
) -> CrossEdit:
    """Everything the cross-attention edit of each target row needs, for `num_steps` steps."""
    kinds = [choose_edit(source, t, edit) for t in targets]
    if edit == "reweight" and not equalizer:
        raise PromptError("edit='reweight' needs an equalizer, e.g. {'fluffy': 2.0}")
    maps = [token_map(source, t, kind) for t, kind in zip(targets, kinds)]
    mapper = torch.stack([m for m, _ in maps])
    partner = torch.stack([p for _, p in maps])
    scale = reweight_factors(tokenizer, targets, equalizer)
    alpha = cross_alphas(cross_replace_steps, num_steps, tokenizer, targets)
    return CrossEdit(kinds, mapper, partner, scale, alpha)


def unet_levels(unet: torch.nn.Module) -> tuple[int, set[int]]:
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
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"{name} must be a fraction of the latent side in (0, 1], got {fraction!r}")
    return math.ceil(math.log2(1 / fraction) - 1e-9)


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
        unet: torch.nn.Module,
        cross_edit: CrossEdit | None,
        self_replace_steps: Window = 0.4,
        self_replace_max_res: float = 0.25,
        num_steps: int = 50,
        store_res: float = 0.25,
    ) -> None:
        self.n_rows = n_rows
        self.cond_start = n_rows if guidance else 0
        self.batch = 2 * n_rows if guidance else n_rows
        n_levels, cross_levels = unet_levels(unet)
        self.sizes = level_sizes(*latent_size, n_levels)
        self.levels: dict[int, int] = {}
        for level, (h, w) in enumerate(self.sizes):
            self.levels.setdefault(h * w, level)
        self.cross_edit = cross_edit
        self.self_steps = step_range(self_replace_steps, num_steps, "self_replace_steps")
        self.self_min_level = _max_res_level(self_replace_max_res, "self_replace_max_res")
        wanted = _max_res_level(store_res, "store_res")
        self.store_level = min(cross_levels or {wanted}, key=lambda lv: (abs(lv - wanted), lv))
        self.store_size = self.sizes[min(self.store_level, len(self.sizes) - 1)]
        self.store = AttentionStore()
        self.step = 0
        self._cross_on = False
        self._self_on = False

    def begin_step(self, step: int) -> None:
        """Set the coefficients of denoising step `step` (0 = first sampling step)."""
        self.step = step
        self._self_on = self.n_rows > 1 and step in self.self_steps
        self._cross_on = False
        edit = self.cross_edit
        if edit is None or self.n_rows == 1:
            return
        alpha = edit.alpha[step]
        self._cross_on = bool(alpha.any())
        if self._cross_on:
            self._a = alpha * edit.partner * edit.scale
            self._b = alpha * (1 - edit.partner) * edit.scale + (1 - alpha)
            self._value_map = edit.mapper * self._a[:, None, :]
            self._own_needed = bool(self._b.any())
            self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def end_step(self) -> None:
        """Close the current step in the attention store."""
        self.store.end_step()

    def _coefficients(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = (self._value_map.to(*key), self._b.to(*key))
        return self._cache[key]

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        is_cross: bool,
    ) -> torch.Tensor:
        """Attention output (batch, heads, queries, dim) with this step's edits applied."""
        if query.shape[0] != self.batch:  # not a call of this edit (e.g. another batch): leave it alone
            return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        level = self.levels.get(query.shape[2], 0)
        src, tgt = self.cond_start, slice(self.cond_start + 1, self.cond_start + self.n_rows)
        if is_cross and self._cross_on:
            value_map, own_scale = self._coefficients(value)
            q, k, v = query.clone(), key.clone(), value.clone()
            q[tgt], k[tgt] = query[src], key[src]
            v[tgt] = torch.einsum("jst,jhtd->jhsd", value_map, value[tgt])
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            if self._own_needed:
                own_v = value[tgt] * own_scale[:, None, :, None]
                own_mask = None if mask is None else mask[tgt]
                out[tgt] += F.scaled_dot_product_attention(query[tgt], key[tgt], own_v, attn_mask=own_mask)
        elif not is_cross and self._self_on and level >= self.self_min_level:
            q, k = query.clone(), key.clone()
            q[tgt], k[tgt] = query[src], key[src]
            out = F.scaled_dot_product_attention(q, k, value, attn_mask=mask)
        else:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        if is_cross and level == self.store_level:
            rows = slice(src, src + self.n_rows)
            self.store.add(self.used_maps(query[rows], key[rows], mask[rows] if mask is not None else None))
        return out

    def used_maps(self, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The head-averaged cross-attention maps (rows, queries, tokens) each row used at this step."""
        scores = query.float() @ key.float().transpose(-1, -2) * query.shape[-1] ** -0.5
        if mask is not None:
            scores = scores + mask.float()
        maps = scores.softmax(-1).mean(1)
        if self._cross_on:
            maps = maps.clone()
            edited = edit_maps(maps[0], maps[1:], self._value_map.to(maps), self._b.to(maps))
            maps[1:] = edited
        return maps


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
