"""DDIM inversion: the deterministic DDIM update run backwards (0 -> T) on the source caption, guidance 1."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from inversion.devices import module_dtype
from inversion.loops.ddim import ddim_inverse_step
from inversion.loops.graphed_unet import UNetCalls


@dataclass
class InversionStep:
    """What a per-step callback of an inversion loop sees."""

    index: int  # 0-based position in the loop
    timestep: int
    latents: torch.Tensor  # the latent the step produced
    stage: str = "ddim"  # "ddim", "null-text" or "direct"
    loss: float | None = None  # null-text: the reconstruction loss with the step's final embedding


StepCallback = Callable[[InversionStep], None]


def _timesteps(scheduler: DDIMScheduler, num_steps: int | None) -> torch.Tensor:
    """The scheduler's sampling timesteps (T first), after set_timesteps(num_steps) when given."""
    if num_steps is not None:
        scheduler.set_timesteps(num_steps)
    if scheduler.num_inference_steps is None:
        raise ValueError("the scheduler has no timesteps: pass num_steps or call set_timesteps first")
    return scheduler.timesteps


@torch.no_grad()
def ddim_invert(
    unet: torch.nn.Module,
    scheduler: DDIMScheduler,
    z0: torch.Tensor,
    cond: torch.Tensor,
    num_steps: int | None = None,
    *,
    progress: bool = True,
    callback: StepCallback | None = None,
    unet_calls: UNetCalls | None = None,
) -> list[torch.Tensor]:
    """The pivot trajectory [z*_0, ..., z*_T] (float32) of z0 under the source embedding `cond` (1, 77, D).

    Step k goes from alpha(t - stride) to alpha(t) with the model output at t, for t in the sampling
    timesteps walked backwards, so z*_k is the latent that sampling step T - k starts from.
    """
    timesteps = _timesteps(scheduler, num_steps)
    dtype = module_dtype(unet)
    cond = cond.to(device=z0.device, dtype=dtype)
    latents = z0.float()
    calls = unet_calls if unet_calls is not None else UNetCalls(unet, scheduler, latents, cond, graphs=False)
    trajectory = [latents]
    walk = timesteps.flip(0)
    numbers = walk.tolist()  # the timesteps as ints, read from the device once
    for k, t in enumerate(tqdm(walk, desc="DDIM inversion", disable=not progress, leave=False)):
        out = calls(latents, t, cond)
        latents = ddim_inverse_step(scheduler, out, t, latents)
        trajectory.append(latents)
        if callback is not None:
            callback(InversionStep(k, numbers[k], latents))
    return trajectory
