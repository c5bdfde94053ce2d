"""The denoising loop shared by generation, reconstruction and editing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from inversion.loops.ddim import ddim_step, guidance_embeddings, predict_noise
from p2p_real.core.finite import check_finite

StepCallback = Callable[[int, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample(
    unet: torch.nn.Module,
    scheduler: DDIMScheduler,
    latents: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | Sequence[torch.Tensor] | None,
    guidance_scale: float,
    *,
    begin_step: Callable[[int], None] | None = None,
    callback: StepCallback | None = None,
    progress: bool = True,
    desc: str = "sampling",
) -> torch.Tensor:
    """Deterministic DDIM sampling of rows `latents` (one per row of `cond`) over scheduler.timesteps.

    `uncond` is one unconditional embedding for every step, or one per step (null-text inversion).
    `begin_step(i)` runs before step i's model call; `callback(i, latents)` after its update and returns
    the latents to continue from (local blend, direct inversion's pivots). NaN or infinite latents at the end
    raise NonFiniteError.
    """
    per_step = uncond if isinstance(uncond, Sequence) else None
    timesteps = scheduler.timesteps
    if per_step is not None and len(per_step) != len(timesteps):
        raise ValueError(f"{len(per_step)} unconditional embeddings given for {len(timesteps)} steps")
    n = latents.shape[0]
    # one unconditional embedding for every step; with one per step, made again at each step
    embeddings = guidance_embeddings(cond, None if isinstance(uncond, Sequence) else uncond, n, guidance_scale)
    for i, t in enumerate(tqdm(timesteps, desc=desc, disable=not progress, leave=False)):
        if begin_step is not None:
            begin_step(i)
        if per_step is not None:
            embeddings = guidance_embeddings(cond, per_step[i], n, guidance_scale)
        noise = predict_noise(unet, scheduler, latents, t, embeddings, guidance_scale)
        latents = ddim_step(scheduler, noise, t, latents)
        if callback is not None:
            latents = callback(i, latents)
    return check_finite(latents, "the sampled latents", f"guidance_scale={guidance_scale:g}")


def unconditional_per_step(uncond: torch.Tensor | Sequence[torch.Tensor], steps: int) -> torch.Tensor:
    """The unconditional embedding of every step (steps, tokens, D), float32 on the CPU, from one for all steps
    (1, tokens, D) or one per step."""
    if torch.is_tensor(uncond):
        return uncond.detach().float().cpu().expand(steps, -1, -1)
    return torch.cat([u.detach().float().cpu() for u in uncond])
