"""Between pixels and latents: VAE encode (posterior mean) and decode, safe in half precision and for
large images (tiled above a size), on the VAE's execution device (also when it is CPU-offloaded)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from diffusers import AutoencoderKL

from inversion.devices import module_device

AUTO_TILING_PIXELS = 1024 * 1024  # larger images are encoded and decoded in overlapping tiles, one at a time
# a VAE attribute: False turns automatic tiling off (load_pipeline(vae_tiling=False) sets it)
AUTO_TILING = "p2p_real_auto_tiling"


def asks_for_float32(vae: AutoencoderKL) -> bool:
    """Whether the VAE's own config asks to run in float32 (`force_upcast: true` written in it, as SDXL's VAE
    has: it overflows in float16). SD 1.x/2.x configs predate the flag, which diffusers then fills in as true
    but does not act on for them; neither does p2p-real."""
    config = vae.config
    defaulted = (config.get("_use_default_values") or []) if hasattr(config, "get") else []
    return bool(getattr(config, "force_upcast", False)) and "force_upcast" not in defaulted


def _in_float32(vae: AutoencoderKL, run: Callable[[torch.dtype], torch.Tensor]) -> torch.Tensor:
    """`run(float32)` with the VAE in float32, its dtype restored after (diffusers' SDXL upcasting)."""
    dtype = vae.dtype
    vae.to(torch.float32)
    try:
        return run(torch.float32)
    finally:
        vae.to(dtype)


def _in_float32_if_needed(vae: AutoencoderKL, run: Callable[[torch.dtype], torch.Tensor]) -> torch.Tensor:
    """Run in the VAE's dtype, or in float32 from the start where its config asks (SDXL); if half precision
    overflows (NaN/inf), run again in float32. The VAE keeps its dtype."""
    if vae.dtype == torch.float32:
        return run(torch.float32)
    if asks_for_float32(vae):
        return _in_float32(vae, run)
    out = run(vae.dtype)
    return out if torch.isfinite(out).all() else _in_float32(vae, run)


@contextmanager
def tiled_if_large(vae: AutoencoderKL, height: int, width: int) -> Iterator[bool]:
    """Tile and slice the VAE for one call on images of height x width pixels above AUTO_TILING_PIXELS,
    unless tiling is on already or was turned off (the AUTO_TILING attribute); yields whether it did."""
    auto = getattr(vae, AUTO_TILING, True) and getattr(vae, "use_tiling", None) is False
    if not auto or height * width <= AUTO_TILING_PIXELS:
        yield False
        return
    slicing = getattr(vae, "use_slicing", False)
    vae.use_tiling, vae.use_slicing = True, True
    try:
        yield True
    finally:
        vae.use_tiling, vae.use_slicing = False, slicing


@torch.no_grad()
def encode_image(vae: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """Latent z0 of images in [0, 1] shaped (N, 3, H, W): the posterior mean times the scaling factor."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    device = module_device(vae)

    def run(dtype: torch.dtype) -> torch.Tensor:
        x = (pixels.to(device=device, dtype=dtype) * 2 - 1).clamp(-1, 1)
        mean = vae.encode(x).latent_dist.mean
        return ((mean - shift) * vae.config.scaling_factor).float().contiguous()

    with tiled_if_large(vae, *pixels.shape[-2:]):
        return _in_float32_if_needed(vae, run)


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], float32, shaped (N, 3, H, W), from latents z0."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    device = module_device(vae)
    factor = vae_scale_factor(vae)

    def run(dtype: torch.dtype) -> torch.Tensor:
        z = latents.to(device=device, dtype=dtype) / vae.config.scaling_factor + shift
        return vae.decode(z).sample.float()

    with tiled_if_large(vae, latents.shape[-2] * factor, latents.shape[-1] * factor):
        return (_in_float32_if_needed(vae, run) / 2 + 0.5).clamp(0, 1)


def vae_scale_factor(vae: AutoencoderKL) -> int:
    """Pixels per latent cell along one side (8 for Stable Diffusion)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)
