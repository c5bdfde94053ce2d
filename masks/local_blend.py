"""Local blend: cross-attention maps of chosen words -> a latent mask that confines the edit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def word_maps(maps: torch.Tensor, weights: torch.Tensor, map_size: tuple[int, int]) -> torch.Tensor:
    """Sum over the chosen tokens: maps (rows, pixels, tokens) x weights (rows, tokens) -> (rows, 1, h, w)."""
    summed = maps @ weights.to(maps)[:, :, None]
    return summed.reshape(maps.shape[0], 1, *map_size)


def threshold_mask(maps: torch.Tensor, latent_size: tuple[int, int], threshold: float, pool: int) -> torch.Tensor:
    """Max-pool of radius `pool` map cells (0: none, 1: 3x3), upsample to the latent (nearest), divide by the
    max, threshold: bool mask.

    Nearest upsampling commutes with the normalisation and the threshold, so both run at map size.
    """
    if pool > 0:
        maps = F.max_pool2d(maps, kernel_size=2 * pool + 1, stride=1, padding=pool)
    peak = maps.amax(dim=(2, 3), keepdim=True)
    mask = (maps > peak * threshold) & (peak > 0)
    return F.interpolate(mask.to(torch.uint8), size=latent_size, mode="nearest").bool()


def blend_mask(
    maps: torch.Tensor,
    map_size: tuple[int, int],
    latent_size: tuple[int, int],
    add_weights: torch.Tensor,
    subtract_weights: torch.Tensor | None = None,
    threshold: float | Sequence[float] = 0.3,
    pool: int | Sequence[int] = 1,
) -> torch.Tensor:
    """Float mask (targets, 1, h, w) of each target row: its blend words' region united with the source's,
    minus the regions of the subtract words (built without pooling). `pool` grows the blend words' maps by
    that many map cells before the threshold (1, a 3x3 max-pool, as the reference does; docs/design.md §3).
    A sequence of thresholds or pools gives each target row its own (the source's region is then made with
    each row's; docs/sweep.md)."""
    if isinstance(threshold, Sequence) or isinstance(pool, Sequence):
        return _rows_blend_mask(maps, map_size, latent_size, add_weights, subtract_weights, threshold, pool)
    add = threshold_mask(word_maps(maps, add_weights, map_size), latent_size, threshold, pool=pool)
    add = add[:1] | add
    if subtract_weights is not None:
        sub = threshold_mask(word_maps(maps, subtract_weights, map_size), latent_size, threshold, pool=0)
        add = add & ~(sub[:1] | sub)
    return add[1:].float()


def _rows_blend_mask(
    maps: torch.Tensor,
    map_size: tuple[int, int],
    latent_size: tuple[int, int],
    add_weights: torch.Tensor,
    subtract_weights: torch.Tensor | None,
    threshold: float | Sequence[float],
    pool: int | Sequence[int],
) -> torch.Tensor:
    """blend_mask with a threshold and pool per target row: each row's mask is the one blend_mask makes of the
    source and that row alone with its own settings."""
    n_targets = maps.shape[0] - 1
    thresholds = list(threshold) if isinstance(threshold, Sequence) else [threshold] * n_targets
    pools = list(pool) if isinstance(pool, Sequence) else [pool] * n_targets
    if len(thresholds) != n_targets or len(pools) != n_targets:
        raise ValueError(
            f"blend thresholds and pools need one value per target row ({n_targets}), got "
            f"{len(thresholds)} and {len(pools)}"
        )
    rows = []
    for k in range(1, n_targets + 1):
        pair = [0, k]
        rows.append(
            blend_mask(
                maps[pair],
                map_size,
                latent_size,
                add_weights[pair],
                None if subtract_weights is None else subtract_weights[pair],
                float(thresholds[k - 1]),
                int(pools[k - 1]),
            )
        )
    return torch.cat(rows)


def combine_user_mask(mask: torch.Tensor, user: torch.Tensor | None, mode: str = "replace") -> torch.Tensor:
    """Use a user-supplied mask (1, 1, h, w) in [0, 1] instead of ("replace") or within ("intersect") `mask`."""
    if user is None:
        return mask
    if mode == "replace":
        return user.to(mask).expand_as(mask).clone()
    if mode == "intersect":
        return mask * user.to(mask)
    raise ValueError(f"mask_mode must be 'replace' or 'intersect', got {mode!r}")


def apply_blend(latents: torch.Tensor, mask: torch.Tensor, rows: Sequence[bool] | None = None) -> torch.Tensor:
    """z_target = z_source + mask * (z_target - z_source) for rows 1.. of `latents`; row 0 is kept. `rows`, one
    flag per target row, blends only the rows flagged (the others are kept as they are)."""
    source = latents[:1]
    blended = torch.lerp(source, latents[1:], mask.to(latents))
    if rows is not None and not all(rows):
        chosen = torch.tensor(list(rows), device=latents.device)[:, None, None, None]
        blended = torch.where(chosen, blended, latents[1:])
    return torch.cat([source, blended])
