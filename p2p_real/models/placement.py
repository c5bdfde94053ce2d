"""Putting a loaded pipeline on its device: whole, or CPU-offloaded for small GPUs; the VAE's precision,
tiling and slicing."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from inversion.encoding.vae import AUTO_TILING, asks_for_float32
from p2p_real.defaults import OFFLOAD_MODES


def check_offload(offload: str | None, device: torch.device) -> str | None:
    """The offload mode, checked: None, "model" or "sequential", and only with an accelerator to offload to."""
    if offload is None:
        return None
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload {offload!r} is not one of {', '.join(OFFLOAD_MODES)} (or None)")
    if device.type == "cpu":
        raise ValueError(
            f"offload {offload!r} moves the model between the CPU and a GPU, but the device is the CPU; "
            "use a cuda/mps/xpu device, or no offload"
        )
    if importlib.util.find_spec("accelerate") is None:
        raise ValueError(f"offload {offload!r} needs accelerate: pip install 'p2p-real[offload]'")
    return offload


def vae_dtype(vae: Any, dtype: torch.dtype) -> torch.dtype:
    """The VAE's dtype in a pipeline of `dtype`: the same, unless the model's own config asks for float32
    (`force_upcast: true` written in it, as SDXL's VAE has; SD 1.x/2.x configs predate the flag and diffusers
    runs their VAE in half precision). A half-precision VAE that overflows is run again in float32
    (inversion.encoding.vae)."""
    return torch.float32 if dtype == torch.float32 or asks_for_float32(vae) else dtype


def set_vae_tiling(vae: Any, tiling: bool | None, offload: str | None = None) -> None:
    """VAE tiling and slicing: True tiles every image larger than the VAE's tile (its sample_size, 512 px for
    SD 1.5) and decodes images one at a time, False never tiles, None (auto) tiles only images above
    inversion.encoding.vae.AUTO_TILING_PIXELS. An offloaded pipeline (a small GPU) always decodes one image at a
    time."""
    if not hasattr(vae, "enable_tiling"):
        return
    if tiling:
        vae.enable_tiling()
    elif tiling is False:
        vae.disable_tiling()
    if tiling or offload:
        vae.enable_slicing()
    setattr(vae, AUTO_TILING, tiling is not False)


def enable_offload(pipe: Any, mode: str, device: torch.device) -> None:
    """diffusers' model ("model": one model at a time on the GPU) or sequential ("sequential": one layer at a
    time) CPU offload onto `device`."""
    enable = pipe.enable_model_cpu_offload if mode == "model" else pipe.enable_sequential_cpu_offload
    enable(device=device)


def place_pipeline(
    pipe: Any, device: torch.device, dtype: torch.dtype, offload: str | None = None, vae_tiling: bool | None = None
) -> Any:
    """Move a pipeline loaded in `dtype` onto `device` (or offload it there), with its VAE in vae_dtype and
    tiled as set_vae_tiling says; returns the pipeline."""
    offload = check_offload(offload, device)
    pipe.vae.to(vae_dtype(pipe.vae, dtype))
    set_vae_tiling(pipe.vae, vae_tiling, offload)
    if offload is None:
        pipe.to(device)
    else:
        enable_offload(pipe, offload, device)
    return pipe
