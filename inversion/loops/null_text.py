"""Null-text inversion: one optimised unconditional embedding per step, so CFG sampling retraces the pivot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from inversion import validation
from inversion.loops.ddim import ddim_step
from inversion.loops.ddim_inversion import InversionStep, StepCallback
from inversion.loops.graphed_unet import UNetCalls

LR = 1e-2  # Adam learning rate at step 0; it decays by 1% per step index
LR_FLOOR = 0.1  # the decay stops at 10% of LR (only reached beyond 90 steps)
INNER_STEPS = 10  # Adam steps per denoising step at most
EPSILON = 1e-5  # early-stop loss threshold at step index 0
EPSILON_SLACK = 2e-5  # the early-stop threshold grows by this much per step index, as in the reference
FAST_MIN_IMPROVEMENT = 0.001  # method "null-text-fast": a step ends once an Adam step gains < 0.1% of the loss


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
    min_improvement: float | None = None,
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
    `min_improvement` (off by default, so the result is the reference algorithm's) also stops a step
    once an Adam step lowered the loss by less than that fraction of it: the step's last pass serves.
    `unet_calls` (CUDA graphs on a GPU) defaults to plain UNet passes.
    """
    timesteps = scheduler.timesteps
    n_steps = len(timesteps)
    if len(trajectory) != n_steps + 1:
        raise ValueError(f"trajectory has {len(trajectory)} latents, expected {n_steps + 1} for {n_steps} steps")
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
            with calls.fixed_input(latents, t):
                with torch.no_grad():
                    out_cond = calls(latents, t, cond)
                step = _Step(calls, scheduler, latents, t, target, out_cond, guidance_scale, min_improvement)
                phi, latents, loss_value = step.optimize(
                    phi, step_learning_rate(i, learning_rate), epsilon + EPSILON_SLACK * i, num_inner_steps, bar
                )
            embeddings.append(phi.clone())
            bar.set_postfix(loss=f"{loss_value:.2e}")
            if callback is not None:
                callback(InversionStep(i, numbers[i], latents, "null-text", loss_value))
    return embeddings


class _Step:
    """One denoising step of null-text: the Adam steps on phi_t, then the DDIM step with the final phi_t."""

    def __init__(
        self,
        calls: UNetCalls,
        scheduler: DDIMScheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        target: torch.Tensor,
        out_cond: torch.Tensor,
        guidance_scale: float,
        min_improvement: float | None = None,
    ) -> None:
        self.calls, self.scheduler, self.latents, self.t = calls, scheduler, latents, t
        self.target, self.out_cond, self.guidance_scale = target, out_cond, guidance_scale
        self.min_improvement = min_improvement

    def stalled(self, previous: float, loss: float) -> bool:
        """Whether the last Adam step lowered the loss by less than `min_improvement` of it (off: None)."""
        return self.min_improvement is not None and previous - loss < self.min_improvement * previous

    def predict(self, out_uncond: torch.Tensor) -> torch.Tensor:
        """The DDIM step from z_t with CFG of the given unconditional output."""
        guided = out_uncond + self.guidance_scale * (self.out_cond - out_uncond)
        return ddim_step(self.scheduler, guided, self.t, self.latents)

    def optimize(
        self, phi: torch.Tensor, lr: float, threshold: float, inner_steps: int, bar: tqdm
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(phi_t, z_{t-1}, loss): up to `inner_steps` Adam steps, stopping once the loss is below threshold."""
        phi = phi.detach().requires_grad_(True)
        optimizer = torch.optim.Adam([phi], lr=lr)
        previous = float("inf")
        for _ in range(inner_steps):
            prediction = self.predict(self.calls.with_grad(self.latents, self.t, phi))
            loss = F.mse_loss(prediction, self.target)
            loss_value = loss.item()
            bar.set_postfix(loss=f"{loss_value:.2e}", refresh=False)
            if loss_value < threshold or self.stalled(previous, loss_value):
                return phi.detach(), prediction.detach(), loss_value  # this pass made the DDIM step
            previous = loss_value
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        phi = phi.detach()
        with torch.no_grad():
            stepped = self.predict(self.calls(self.latents, self.t, phi))
        return phi, stepped, F.mse_loss(stepped, self.target).item()
