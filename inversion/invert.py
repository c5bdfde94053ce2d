"""Photo -> Inversion: load, encode, DDIM-invert, run the chosen method, and package the result as an artifact."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler

from inversion.artifact import Inversion
from inversion.devices import is_offloaded, pipeline_device
from inversion.encoding.prompts import check_prompt, encode_prompts, encode_unconditional, prompt_tokenizer
from inversion.encoding.sdxl import denoiser, model_family
from inversion.encoding.vae import encode_image, vae_scale_factor
from inversion.fingerprint import pipeline_fingerprint, scheduler_fingerprint
from inversion.loops.ddim_inversion import StepCallback, ddim_invert
from inversion.loops.graphed_unet import UNetCalls
from inversion.loops.null_text import EPSILON, INNER_STEPS, LR
from inversion.methods import METHODS, MethodData, Pivot
from inversion.photos.image import LoadedImage, Source, load_for_model
from inversion.settings import ResolvedInversionSettings


def invert(
    pipe: Any,
    scheduler: DDIMScheduler,
    image: Source,
    settings: ResolvedInversionSettings,
    *,
    progress: bool = True,
    num_inner_steps: int = INNER_STEPS,
    epsilon: float = EPSILON,
    learning_rate: float = LR,
    callback: StepCallback | None = None,
    cuda_graphs: bool = True,
    compile: bool = False,
) -> Inversion:
    """Invert a photo (path, PIL image or array) with DDIM and the method of `settings` (InversionSettings.resolved:
    caption, method, steps, guidance, working size or square crop).

    Methods (inversion.methods.METHODS): "ddim" (pivot only), "null-text" (per-step unconditional embeddings;
    "null-text-fast" ends each step's optimisation once it stalls; num_inner_steps, epsilon, learning_rate tune it),
    "negative-prompt" (the caption as unconditional embedding) or "direct" (the pivot trajectory, which the source
    row follows exactly while editing). `scheduler` is the DDIM scheduler sampling will use; its timesteps are set.
    `callback(step)` sees every step of every loop and may raise to stop. On a GPU the UNet passes replay from CUDA
    graphs (`cuda_graphs=False` runs them one kernel at a time), unless the UNet is CPU-offloaded. `compile=True` runs
    them through torch.compile instead: a one-off compilation (minutes) for faster passes, which on CPU is a loss for
    one photo (docs/inversion_speed.md, "torch.compile").
    """
    _check(pipe, settings, compile)
    loaded = load_for_model(pipe, image, settings.size, settings.square)
    device = pipeline_device(pipe)
    z0 = encode_image(pipe.vae, loaded.pixels).to(device)
    cond, uncond = encode_prompts(pipe, [settings.prompt]), encode_unconditional(pipe)
    scheduler.set_timesteps(settings.num_inference_steps, device=device)
    unet = denoiser(pipe)  # SDXL: the UNet taking packed embeddings and adding the size/crop time ids
    calls = UNetCalls(unet, scheduler, z0, cond, graphs=cuda_graphs and not is_offloaded(pipe.unet), compile=compile)
    trajectory = ddim_invert(unet, scheduler, z0, cond, progress=progress, callback=callback, unet_calls=calls)
    pivot = Pivot(
        unet,
        scheduler,
        trajectory,
        cond,
        uncond,
        settings.guidance_scale,
        num_inner_steps,
        epsilon,
        learning_rate,
        progress,
        callback,
        calls,
    )
    data = METHODS[settings.method].run(pivot)
    return _artifact(pipe, scheduler, settings, loaded, z0, trajectory[-1], data)


def _artifact(
    pipe: Any,
    scheduler: DDIMScheduler,
    settings: ResolvedInversionSettings,
    loaded: LoadedImage,
    z0: torch.Tensor,
    latent_T: torch.Tensor,
    data: MethodData,
) -> Inversion:
    """The Inversion of a photo: latents, the method's data, the settings, the photo and the model's fingerprints."""
    return Inversion(
        latent_T=latent_T.cpu(),
        z0=z0.cpu(),
        prompt=settings.prompt,
        method=settings.method,
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale,
        size=loaded.size,
        box=loaded.box,
        original=loaded.original,
        image_sha256=loaded.sha256,
        model_id=pipeline_fingerprint(pipe),
        scheduler_id=scheduler_fingerprint(scheduler),
        uncond_embeddings=data.uncond_embeddings,
        pivots=data.pivots,
        vae_scale_factor=vae_scale_factor(pipe.vae),
        source=loaded.source,
        info=loaded.info,
        model_family=model_family(pipe),
    )


def _check(pipe: Any, settings: ResolvedInversionSettings, compile: bool) -> None:
    """What the settings' own checks leave: their type, the caption's length for this model, compile's value."""
    if not isinstance(settings, ResolvedInversionSettings):
        raise ValueError(
            "settings must be ResolvedInversionSettings (InversionSettings(prompt, method, ...).resolved()), "
            f"got {type(settings).__name__}"
        )
    check_prompt(prompt_tokenizer(pipe), settings.prompt)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if compile and is_offloaded(pipe.unet):
        raise ValueError(
            "compile=True needs the UNet on its device, but it is CPU-offloaded; turn offload off or leave compile off"
        )
