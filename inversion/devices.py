"""Where a model computes: its own device, or the accelerator its CPU-offload hooks move it to.

With diffusers' `enable_model_cpu_offload` a model's weights wait on the CPU and move to the GPU when it
runs; with `enable_sequential_cpu_offload` they sit on the "meta" device and each layer is loaded when it
runs. Either way `module.device` is not where the inputs must go: the hooks' execution device is.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from diffusers.utils import torch_utils as _diffusers_torch_utils

# recent diffusers answer this themselves, including for their own group offloading (None: older diffusers)
_diffusers_execution_device = getattr(_diffusers_torch_utils, "get_module_execution_device", None)


def _normal(device: torch.device | str | int) -> torch.device:
    """A torch device; "cpu:0" (what offloading to the CPU names it) is plain "cpu"."""
    dev = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    return torch.device("cpu") if dev.type == "cpu" else dev


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a module's inputs must be on for its forward pass (the offload hooks' device, if any)."""
    if _diffusers_execution_device is not None:
        return _normal(_diffusers_execution_device(module))
    for sub in module.modules():
        execution = getattr(getattr(sub, "_hf_hook", None), "execution_device", None)
        if execution is not None:
            return _normal(execution)
    device = getattr(module, "device", None)
    if device is None:
        device = next(itertools.chain(module.parameters(), module.buffers())).device
    return _normal(device)


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype a model computes in: its own `dtype` (diffusers models, SDXLUNet), else its first weight's."""
    dtype = getattr(module, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    return next(itertools.chain(module.parameters(), module.buffers())).dtype


def pipeline_device(pipe: Any) -> torch.device:
    """Where a pipeline computes: its UNet's execution device (see module_device)."""
    return module_device(pipe.unet)


def is_offloaded(module: torch.nn.Module) -> bool:
    """Whether hooks move the module's weights in and out (accelerate's or diffusers' offloading)."""
    return any(hasattr(sub, "_hf_hook") or hasattr(sub, "_diffusers_hook") for sub in module.modules())
