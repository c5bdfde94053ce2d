"""Between pixels and latents: VAE encode (posterior mean) and decode, safe in half precision."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import AutoencoderKL


def _in_float32_if_needed(vae: AutoencoderKL, run: Callable[[torch.dtype], torch.Tensor]) -> torch.Tensor:
    """Run in the VAE's dtype; if half precision overflows (NaN/inf), run again in float32 and restore."""
    out = run(vae.dtype)
    if torch.isfinite(out).all() or vae.dtype == torch.float32:
        return out
    dtype = vae.dtype
    vae.to(torch.float32)
    try:
        return run(torch.float32)
    finally:
        vae.to(dtype)


@torch.no_grad()
def encode_image(vae: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """Latent z0 of images in [0, 1] shaped (N, 3, H, W): the posterior mean times the scaling factor."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0

    def run(dtype: torch.dtype) -> torch.Tensor:
        x = (pixels.to(device=vae.device, dtype=dtype) * 2 - 1).clamp(-1, 1)
        mean = vae.encode(x).latent_dist.mean
        return ((mean - shift) * vae.config.scaling_factor).float().contiguous()

    return _in_float32_if_needed(vae, run)


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], float32, shaped (N, 3, H, W), from latents z0."""
    shift = getattr(vae.config, "shift_factor", None) or 0.0

    def run(dtype: torch.dtype) -> torch.Tensor:
        z = latents.to(device=vae.device, dtype=dtype) / vae.config.scaling_factor + shift
        return vae.decode(z).sample.float()

    return (_in_float32_if_needed(vae, run) / 2 + 0.5).clamp(0, 1)


def vae_scale_factor(vae: AutoencoderKL) -> int:
    """Pixels per latent cell along one side (8 for Stable Diffusion)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)
