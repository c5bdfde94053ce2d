"""Photo -> Inversion: load, encode, invert with the chosen method, and package the result as an artifact."""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers import DDIMScheduler

from inversion.artifact import METHODS, Inversion
from inversion.ddim_inversion import StepCallback, ddim_invert
from inversion.fingerprint import pipeline_fingerprint, scheduler_fingerprint
from inversion.graphed_unet import UNetCalls
from inversion.image import Source, load_image
from inversion.null_text import LR, null_text_optimize
from inversion.vae import encode_image, vae_scale_factor


class PromptTooLongError(ValueError):
    """The prompt has more tokens than the text encoder reads."""


def check_prompt(tokenizer: Any, prompt: str) -> None:
    """Reject a non-string prompt or one longer than the tokenizer's model_max_length, naming it."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    limit = tokenizer.model_max_length
    n_tokens = len(tokenizer(prompt, truncation=False).input_ids)
    if n_tokens > limit:
        raise PromptTooLongError(
            f"prompt {prompt!r} has {n_tokens} tokens (with start/end), "
            f"more than the {limit} the text encoder reads"
        )


@torch.no_grad()
def prompt_embeddings(pipe: Any, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond) embeddings (1, 77, D) of the prompt and of "", as the pipeline computes them."""
    check_prompt(pipe.tokenizer, prompt)
    device = pipe.unet.device
    if hasattr(pipe, "encode_prompt"):
        cond, uncond = pipe.encode_prompt(prompt, device, 1, True, negative_prompt="")
        return cond, uncond
    tok = pipe.tokenizer
    ids = tok(
        [prompt, ""], padding="max_length", max_length=tok.model_max_length, return_tensors="pt"
    ).input_ids
    emb = pipe.text_encoder(ids.to(device))[0]
    return emb[:1], emb[1:]


def invert(
    pipe: Any,
    scheduler: DDIMScheduler,
    image: Source,
    prompt: str,
    method: str = "null-text",
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    num_inner_steps: int = 10,
    epsilon: float = 1e-5,
    progress: bool = True,
    size: tuple[int, int] | None = None,
    square: bool = False,
    *,
    learning_rate: float = LR,
    callback: StepCallback | None = None,
    cuda_graphs: bool = True,
) -> Inversion:
    """Invert a photo (path, PIL image or array) under its caption with DDIM and the chosen method.

    method: "ddim" (pivot only), "null-text" (per-step unconditional embeddings), "negative-prompt"
    (the caption as unconditional embedding) or "direct" (the pivot trajectory, which the source row
    follows exactly while editing). The working size
    keeps the photo's aspect ratio with about (sample_size * vae factor)^2 pixels unless `size` or
    `square` say otherwise. `scheduler` is the DDIM scheduler sampling will use; its timesteps are set.
    On a GPU the UNet passes replay from CUDA graphs (`cuda_graphs=False` runs them one kernel at a time).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if (
        isinstance(num_inference_steps, bool)
        or not isinstance(num_inference_steps, int)
        or num_inference_steps < 1
    ):
        raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)):
        raise ValueError(f"guidance_scale must be a number, got {guidance_scale!r}")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}")
    check_prompt(pipe.tokenizer, prompt)

    factor = vae_scale_factor(pipe.vae)
    side = pipe.unet.config.sample_size * factor
    multiple = math.lcm(8, factor)
    loaded = load_image(image, size=size, square=square, model_pixels=side * side, multiple=multiple)

    device = pipe.unet.device
    z0 = encode_image(pipe.vae, loaded.pixels.to(device))
    cond, uncond = prompt_embeddings(pipe, prompt)
    scheduler.set_timesteps(num_inference_steps, device=device)
    calls = UNetCalls(pipe.unet, scheduler, z0, cond, graphs=cuda_graphs)
    trajectory = ddim_invert(pipe.unet, scheduler, z0, cond, progress=progress, callback=callback, unet_calls=calls)

    uncond_embeddings = pivots = None
    if method == "null-text":
        phis = null_text_optimize(
            pipe.unet, scheduler, trajectory, cond, uncond, float(guidance_scale), num_inner_steps, epsilon,
            learning_rate=learning_rate, progress=progress, callback=callback, unet_calls=calls,
        )
        uncond_embeddings = torch.cat(phis).cpu()
    elif method == "direct":  # z*_{T-1}, ..., z*_0: where the source row is after each sampling step
        pivots = torch.cat(trajectory[-2::-1]).cpu()
    return Inversion(
        latent_T=trajectory[-1].cpu(),
        z0=z0.cpu(),
        prompt=prompt,
        method=method,
        num_inference_steps=num_inference_steps,
        guidance_scale=float(guidance_scale),
        size=loaded.size,
        box=loaded.box,
        original=loaded.original,
        image_sha256=loaded.sha256,
        model_id=pipeline_fingerprint(pipe),
        scheduler_id=scheduler_fingerprint(scheduler),
        uncond_embeddings=uncond_embeddings,
        pivots=pivots,
        vae_scale_factor=factor,
        source=loaded.source,
    )
