"""Null-text inversion: one optimised unconditional embedding per step, so CFG sampling retraces the pivot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from inversion import validation
from inversion.ddim import ddim_step
from inversion.ddim_inversion import InversionStep, StepCallback
from inversion.graphed_unet import UNetCalls

LR = 1e-2  # Adam learning rate at step 0; it decays by 1% per step index
LR_FLOOR = 0.1  # the decay stops at 10% of LR (only reached beyond 90 steps)
INNER_STEPS = 10  # Adam steps per denoising step at most
EPSILON = 1e-5  # early-stop loss threshold at step index 0
EPSILON_SLACK = 2e-5  # the early-stop threshold grows by this much per step index, as in the reference


def step_learning_rate(index: int, base: float = LR) -> float:
    """Adam learning rate of step `index`: base * (1 - index / 100), floored at base / 10 (base 1e-2)."""
    return base * max(1.0 - index / 100.0, LR_FLOOR)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Temporarily stop gradients to the module's weights; their requires_grad flags are restored after."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def null_text_optimize(
    unet: torch.nn.Module,
    scheduler: DDIMScheduler,
    trajectory: Sequence[torch.Tensor],
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance_scale: float = 7.5,
    num_inner_steps: int = INNER_STEPS,
    epsilon: float = EPSILON,
    *,
    learning_rate: float = LR,
    progress: bool = True,
    callback: StepCallback | None = None,
    unet_calls: UNetCalls | None = None,
) -> list[torch.Tensor]:
    """Per-step unconditional embeddings phi_T..phi_1 (each (1, 77, D), float32) in sampling order.

    `trajectory` is the DDIM pivot [z*_0, ..., z*_T] for the scheduler's current timesteps, `cond` the
    source embedding and `uncond` the embedding of "" that phi_T starts from. For each step, up to
    `num_inner_steps` Adam steps minimise MSE(z*_{t-1}, DDIM step of z_t with CFG(phi_t, cond)); the
    loop stops early once the loss is below epsilon + 2e-5 * step index. z_t then advances with the
    final phi_t. Only phi is differentiated; the conditional model output is computed once per step.
    `unet_calls` (CUDA graphs on a GPU) defaults to plain UNet passes.
    """
    timesteps = scheduler.timesteps
    n_steps = len(timesteps)
    if len(trajectory) != n_steps + 1:
        raise ValueError(
            f"trajectory has {len(trajectory)} latents, expected {n_steps + 1} for {n_steps} steps"
        )
    validation.whole_number(num_inner_steps, "num_inner_steps", minimum=0)
    device = trajectory[-1].device
    cond = cond.detach().to(device).clone()
    phi = uncond.detach().to(device=device, dtype=torch.float32).clone()
    latents = trajectory[-1].detach().float().clone()
    calls = unet_calls if unet_calls is not None else UNetCalls(unet, scheduler, latents, phi, graphs=False)
    embeddings: list[torch.Tensor] = []
    numbers = timesteps.tolist()  # the timesteps as ints, read from the device once
    bar = tqdm(timesteps, desc="null-text inversion", disable=not progress, leave=False)
    with frozen(unet), torch.enable_grad():
        for i, t in enumerate(bar):
            target = trajectory[n_steps - i - 1].detach().float()
            with torch.no_grad():
                out_cond = calls(latents, t, cond)
            phi = phi.detach().requires_grad_(True)
            optimizer = torch.optim.Adam([phi], lr=step_learning_rate(i, learning_rate))
            threshold = epsilon + EPSILON_SLACK * i
            stepped = None  # the DDIM step with the current phi, when the loop ends on an early stop
            loss_value = float("nan")
            for _ in range(num_inner_steps):
                out_uncond = calls.with_grad(latents, t, phi)
                guided = out_uncond + guidance_scale * (out_cond - out_uncond)
                prediction = ddim_step(scheduler, guided, t, latents)
                loss = F.mse_loss(prediction, target)
                loss_value = loss.item()
                bar.set_postfix(loss=f"{loss_value:.2e}", refresh=False)
                if loss_value < threshold:
                    stepped = prediction.detach()
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            phi = phi.detach()
            if stepped is None:
                with torch.no_grad():
                    out_uncond = calls(latents, t, phi)
                    stepped = ddim_step(
                        scheduler, out_uncond + guidance_scale * (out_cond - out_uncond), t, latents
                    )
                    loss_value = F.mse_loss(stepped, target).item()
            latents = stepped
            embeddings.append(phi.clone())
            bar.set_postfix(loss=f"{loss_value:.2e}")
            if callback is not None:
                callback(InversionStep(i, numbers[i], latents, "null-text", loss_value))
    return embeddings
