"""Photo -> Inversion: load, encode, DDIM-invert, run the chosen method, and package the result as an artifact."""

from __future__ import annotations

from typing import Any

from diffusers import DDIMScheduler

from inversion import validation
from inversion.artifact import Inversion
from inversion.devices import is_offloaded, pipeline_device
from inversion.encoding.prompts import check_prompt, encode_prompts, encode_unconditional, prompt_tokenizer
from inversion.encoding.sdxl import denoiser, model_family
from inversion.encoding.vae import encode_image, vae_scale_factor
from inversion.fingerprint import pipeline_fingerprint, scheduler_fingerprint
from inversion.loops.ddim_inversion import StepCallback, ddim_invert
from inversion.loops.graphed_unet import UNetCalls
from inversion.loops.null_text import EPSILON, INNER_STEPS, LR
from inversion.methods import DEFAULT_METHOD, METHOD_NAMES, METHODS, Pivot
from inversion.photos.image import Source, load_for_model
from inversion.settings import DEFAULT_GUIDANCE, DEFAULT_STEPS


def invert(
    pipe: Any,
    scheduler: DDIMScheduler,
    image: Source,
    prompt: str,
    method: str = DEFAULT_METHOD,
    num_inference_steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    num_inner_steps: int = INNER_STEPS,
    epsilon: float = EPSILON,
    progress: bool = True,
    size: tuple[int, int] | None = None,
    square: bool = False,
    *,
    learning_rate: float = LR,
    callback: StepCallback | None = None,
    cuda_graphs: bool = True,
    compile: bool = False,
) -> Inversion:
    """Invert a photo (path, PIL image or array) under its caption with DDIM and the chosen method.

    method: a name of inversion.methods.METHODS: "ddim" (pivot only), "null-text" (per-step unconditional
    embeddings; "null-text-fast" ends each step's optimisation once it stalls), "negative-prompt" (the
    caption as unconditional embedding) or "direct" (the pivot trajectory, which the source row follows
    exactly while editing). The working size keeps the photo's aspect ratio with about
    (sample_size * vae factor)^2 pixels unless `size` or `square` say otherwise.
    `scheduler` is the DDIM scheduler sampling will use; its timesteps are set. `callback(step)` sees every
    step of every loop and may raise to stop. On a GPU the UNet passes replay from CUDA graphs
    (`cuda_graphs=False` runs them one kernel at a time), unless the UNet is CPU-offloaded. `compile=True`
    runs them through torch.compile instead: it pays a one-off compilation (minutes) for faster passes, which
    on CPU is a loss for one photo (docs/inversion_speed.md, "torch.compile").
    """
    validation.choice(method, METHOD_NAMES, "method")
    validation.steps(num_inference_steps, "num_inference_steps")
    guidance_scale = validation.number(guidance_scale, "guidance_scale", minimum=0)
    check_prompt(prompt_tokenizer(pipe), prompt)
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if compile and is_offloaded(pipe.unet):
        raise ValueError(
            "compile=True needs the UNet on its device, but it is CPU-offloaded; turn offload off or leave compile off"
        )

    loaded = load_for_model(pipe, image, size, square)
    device = pipeline_device(pipe)
    z0 = encode_image(pipe.vae, loaded.pixels).to(device)
    cond, uncond = encode_prompts(pipe, [prompt]), encode_unconditional(pipe)
    scheduler.set_timesteps(num_inference_steps, device=device)
    unet = denoiser(pipe)  # SDXL: the UNet taking packed embeddings and adding the size/crop time ids
    calls = UNetCalls(unet, scheduler, z0, cond, graphs=cuda_graphs and not is_offloaded(pipe.unet), compile=compile)
    trajectory = ddim_invert(unet, scheduler, z0, cond, progress=progress, callback=callback, unet_calls=calls)
    pivot = Pivot(
        unet,
        scheduler,
        trajectory,
        cond,
        uncond,
        guidance_scale,
        num_inner_steps,
        epsilon,
        learning_rate,
        progress,
        callback,
        calls,
    )
    data = METHODS[method].run(pivot)
    return Inversion(
        latent_T=trajectory[-1].cpu(),
        z0=z0.cpu(),
        prompt=prompt,
        method=method,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
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
