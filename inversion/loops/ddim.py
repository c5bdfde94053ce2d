"""DDIM building blocks shared by sampling and inversion: scheduler, guided noise, forward/backward steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from diffusers import DDIMScheduler

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def ddim_scheduler(config: Mapping[str, Any]) -> DDIMScheduler:
    """A DDIM scheduler with the model's own betas and prediction type, clip_sample and alpha-to-one off."""
    scheduler = DDIMScheduler.from_config(dict(config), clip_sample=False, set_alpha_to_one=False)
    if scheduler.config.prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"unsupported prediction_type {scheduler.config.prediction_type!r}")
    return scheduler


def step_stride(scheduler: DDIMScheduler) -> int:
    """Distance between two sampling timesteps (20 for 1000 train steps and 50 inference steps)."""
    return scheduler.config.num_train_timesteps // scheduler.num_inference_steps


def alpha_prod(scheduler: DDIMScheduler, t: int | torch.Tensor) -> torch.Tensor:
    """alpha-bar at timestep t; below zero it is the scheduler's final (clean) value, as in DDIM."""
    t = int(t)
    return scheduler.alphas_cumprod[t] if t >= 0 else scheduler.final_alpha_cumprod


def split_prediction(
    scheduler: DDIMScheduler, model_output: torch.Tensor, sample: torch.Tensor, a_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(epsilon, x0) from a model output of any prediction type, for a sample at alpha-bar a_t."""
    a_t = a_t.to(device=sample.device, dtype=sample.dtype) if torch.is_tensor(a_t) else a_t
    b_t = 1 - a_t
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        eps = model_output
        x0 = (sample - b_t**0.5 * eps) / a_t**0.5
    elif kind == "v_prediction":
        x0 = a_t**0.5 * sample - b_t**0.5 * model_output
        eps = a_t**0.5 * model_output + b_t**0.5 * sample
    else:  # "sample"
        x0 = model_output
        eps = (sample - a_t**0.5 * x0) / b_t**0.5
    return eps, x0


def guidance_embeddings(
    cond: torch.Tensor, uncond: torch.Tensor | None, n_rows: int, guidance_scale: float
) -> torch.Tensor:
    """Text embeddings of one model call: [uncond x n, cond x n] with guidance, cond x n without."""
    cond = cond.expand(n_rows, -1, -1)
    if uncond is None or guidance_scale <= 1.0:
        return cond
    uncond = uncond.expand(n_rows, -1, -1) if uncond.shape[0] == 1 else uncond
    return torch.cat([uncond.to(cond), cond])


def predict_noise(
    unet: torch.nn.Module,
    scheduler: DDIMScheduler,
    latents: torch.Tensor,
    t: int | torch.Tensor,
    embeddings: torch.Tensor,
    guidance_scale: float,
) -> torch.Tensor:
    """Model output for `latents` with embeddings from `guidance_embeddings`, guidance applied."""
    guided = embeddings.shape[0] == 2 * latents.shape[0]
    x = torch.cat([latents, latents]) if guided else latents
    out = unet(scheduler.scale_model_input(x, t), t, encoder_hidden_states=embeddings, return_dict=False)[0]
    if not guided:
        return out
    out_uncond, out_cond = out.chunk(2)
    return out_uncond + guidance_scale * (out_cond - out_uncond)


def guided_noise(
    unet: torch.nn.Module,
    scheduler: DDIMScheduler,
    latents: torch.Tensor,
    t: int | torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    guidance_scale: float,
) -> torch.Tensor:
    """The model output with classifier-free guidance, computed as diffusers' pipeline does it.

    `latents` has one row per prompt row of `cond`; `uncond` is one embedding (1, 77, D) shared by all
    rows or one per row. Guidance <= 1 (or no `uncond`) runs the conditional half alone.
    """
    embeddings = guidance_embeddings(cond, uncond, latents.shape[0], guidance_scale)
    return predict_noise(unet, scheduler, latents, t, embeddings, guidance_scale)


def ddim_step(
    scheduler: DDIMScheduler, model_output: torch.Tensor, t: int | torch.Tensor, latents: torch.Tensor
) -> torch.Tensor:
    """One deterministic DDIM sampling step t -> t - stride (eta = 0), as diffusers computes it."""
    return scheduler.step(model_output, t, latents, eta=0.0, return_dict=False)[0]


def ddim_inverse_step(
    scheduler: DDIMScheduler, model_output: torch.Tensor, t: int | torch.Tensor, latents: torch.Tensor
) -> torch.Tensor:
    """One DDIM inversion step from alpha(t - stride) to alpha(t), with the model output predicted at t."""
    a_from = alpha_prod(scheduler, int(t) - step_stride(scheduler))
    a_to = alpha_prod(scheduler, t)
    eps, x0 = split_prediction(scheduler, model_output, latents, a_from)
    a_to = a_to.to(device=latents.device, dtype=latents.dtype)
    return a_to**0.5 * x0 + (1 - a_to) ** 0.5 * eps
