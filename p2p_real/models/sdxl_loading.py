"""Which diffusers pipeline class loads a model: Stable Diffusion XL or Stable Diffusion 1.x/2.x.

SDXL is told apart without loading weights: a diffusers folder (a hub repository once downloaded) by its
model_index.json (`_class_name`, or a second text encoder), a single checkpoint by its tensor names (the original SDXL
checkpoints keep their second, OpenCLIP bigG text encoder under `conditioner.embedders.1.`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from inversion.encoding.sdxl import FAMILY_SD, FAMILY_SDXL
from p2p_real.models.load_errors import ModelLoadError

SDXL_KEY_PREFIX = "conditioner.embedders.1."  # SDXL base: CLIP ViT-L is embedders.0, OpenCLIP bigG embedders.1
REFINER_KEY_PREFIX = "conditioner.embedders.0.model."  # the refiner's only text encoder is OpenCLIP bigG
_REFINER = (
    "{what} is an SDXL refiner (it has only the second text encoder); Prompt-to-Prompt needs a model with "
    "both text encoders, such as stabilityai/stable-diffusion-xl-base-1.0"
)


def _refused(message: str) -> Exception:
    return ModelLoadError(message)


def pipeline_class(family: str) -> tuple[type[StableDiffusionPipeline | StableDiffusionXLPipeline], dict[str, Any]]:
    """The pipeline class of a model family and the keywords it is loaded with (no safety checker for SD,
    no invisible watermark for SDXL: p2p-real decodes and writes the images itself)."""
    if family == FAMILY_SDXL:
        return StableDiffusionXLPipeline, {"add_watermarker": False}
    return StableDiffusionPipeline, {"safety_checker": None, "requires_safety_checker": False}


def index_family(index: Mapping[str, Any], what: str) -> str:
    """ "sdxl" or "sd" from a model_index.json's contents; refuses an SDXL refiner."""
    name = str(index.get("_class_name", ""))
    second = index.get("text_encoder_2")
    has_second = isinstance(second, (list, tuple)) and len(second) == 2 and second[0] is not None
    if not (name.startswith("StableDiffusionXL") or has_second):
        return FAMILY_SD
    first = index.get("text_encoder")
    if not (isinstance(first, (list, tuple)) and len(first) == 2 and first[0] is not None):
        raise _refused(_REFINER.format(what=what))
    return FAMILY_SDXL


def folder_family(path: Path) -> str:
    """The family of a diffusers folder, from its model_index.json (SD if it cannot be read: loading says why)."""
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError):
        return FAMILY_SD
    return index_family(index if isinstance(index, dict) else {}, f"model folder {str(path)!r}")


def _checkpoint_keys(path: Path, pickled: bool) -> list[str]:
    """Tensor names of a checkpoint file, read without loading the tensors where the format allows."""
    if not pickled:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return list(handle.keys())
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else {}
    return [str(k) for k in state]


def checkpoint_family(path: Path, pickled: bool = False) -> str:
    """The family of a single-file checkpoint from its tensor names (SD if they cannot be read: loading says
    why). `pickled` files are read with torch.load(weights_only=True): call it only where that is safe."""
    try:
        keys = _checkpoint_keys(path, pickled)
    except Exception:  # a broken file: the loader's own error is the one to show
        return FAMILY_SD
    if any(k.startswith(SDXL_KEY_PREFIX) for k in keys):
        return FAMILY_SDXL
    if any(k.startswith(REFINER_KEY_PREFIX) for k in keys):
        raise _refused(_REFINER.format(what=f"checkpoint {str(path)!r}"))
    return FAMILY_SD
