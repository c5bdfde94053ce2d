"""Loading a Stable Diffusion pipeline from a hub id, a local diffusers folder or a single checkpoint file."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import diffusers.utils.deprecation_utils
import torch

from inversion.loops.ddim import ddim_scheduler
from p2p_real.defaults import DEFAULT_MODEL, DTYPES, TOY_MODEL, TOY_MODEL_DIR
from p2p_real.models.adapters import add_adapters
from p2p_real.models.hub import bounded_hub_requests, hub_endpoint, hub_timeout, is_timeout
from p2p_real.models.load_errors import SAFE_PICKLE_TORCH, ModelLoadError, torch_loads_pickles_safely
from p2p_real.models.placement import check_offload, place_pipeline
from p2p_real.models.sdxl_loading import checkpoint_family, folder_family, pipeline_class

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth")
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")  # torch.load files: pickles
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# diffusers renamed torch_dtype to dtype; pass whichever name this version reads without a warning.
_DTYPE_KW = "dtype" if hasattr(diffusers.utils.deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _reason(exc: BaseException) -> str:
    """The first sentence of a library error, without its advice to read a traceback."""
    text = " ".join(str(exc).split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _pickle_refusal(what: str) -> str:
    return (
        f"{what}: pickled weights (.ckpt/.bin/.pt/.pth) are refused on torch {torch.__version__} because "
        f"torch.load before {'.'.join(map(str, SAFE_PICKLE_TORCH))} can run code from the file (CVE-2025-32434); "
        "use .safetensors weights or upgrade torch"
    )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; anything else must be a device torch knows and has."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device (try 'auto', 'cpu' or 'cuda')") from exc
    if dev.type not in _DEVICE_TYPES:
        raise ValueError(
            f"device {device!r} cannot run a model (its tensors hold no data or it is not a compute device); "
            f"use 'auto' or one of {', '.join(_DEVICE_TYPES)}"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was asked for but MPS is not available here")
    if dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ValueError(f"device {device!r} was asked for but XPU is not available here")
    return dev


# the half-precision dtypes each kind of device runs a pipeline in (Apple GPUs: float16, not bfloat16)
HALF_DTYPES = {"cuda": (torch.float16, torch.bfloat16), "xpu": (torch.float16, torch.bfloat16), "mps": (torch.float16,)}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto' is float16 on CUDA and float32 elsewhere; half precision is allowed where HALF_DTYPES says
    (float16 also on Apple GPUs, asked for explicitly), never on the CPU."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and dtype.lower() in DTYPES:
        resolved = getattr(torch, DTYPES[dtype.lower()])
    else:
        raise ValueError(f"dtype {dtype!r} is not one of auto, float32, float16, bfloat16")
    if resolved in (torch.float16, torch.bfloat16) and resolved not in HALF_DTYPES.get(device.type, ()):
        raise ValueError(
            f"dtype {dtype!r} needs a CUDA device (float16 also runs on mps and xpu); on {device.type} use float32"
        )
    return resolved


def _looks_local(model: str) -> bool:
    """Anything but a plain "owner/name" is a path: it is never looked up on the network."""
    return model.startswith((".", "~")) or model.lower().endswith(CHECKPOINT_SUFFIXES) or not _HUB_ID.match(model)


def _weights_kwargs() -> dict[str, bool]:
    """from_pretrained keywords that keep pickled weights out where torch cannot load them safely."""
    return {} if torch_loads_pickles_safely() else {"use_safetensors": True}


def _from_folder(path: Path, dtype: torch.dtype, **source: str) -> Any:
    if not (path / "model_index.json").is_file():
        raise ModelLoadError(
            f"model folder {str(path)!r} is not a diffusers pipeline (no model_index.json); "
            "point the model at a folder saved with save_pretrained or at a .safetensors/.ckpt file"
        )
    cls, options = pipeline_class(folder_family(path))
    try:
        return cls.from_pretrained(
            path,
            **{_DTYPE_KW: dtype},
            **options,
            local_files_only=True,
            **_weights_kwargs(),
            **source,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        pickled = sorted(p for p in path.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickled and not torch_loads_pickles_safely():
            raise ModelLoadError(_pickle_refusal(f"diffusers folder {str(path)!r} ({pickled[0].name})")) from exc
        raise ModelLoadError(f"could not load the diffusers folder {str(path)!r}: {_reason(exc)}") from exc


def _no_answer(seconds: float, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"the Hugging Face hub ({hub_endpoint()}) did not answer within {seconds:g} s while loading {what}; "
        "check the network (or raise HF_HUB_ETAG_TIMEOUT), or point the model at a local diffusers folder "
        "or a .safetensors file"
    )


def _from_file(path: Path, dtype: torch.dtype) -> Any:
    pickled = path.suffix.lower() in PICKLE_SUFFIXES
    if pickled and not torch_loads_pickles_safely():
        raise ModelLoadError(_pickle_refusal(f"checkpoint {str(path)!r}"))
    cls, options = pipeline_class(checkpoint_family(path, pickled))
    seconds = hub_timeout()
    try:
        with bounded_hub_requests(seconds):  # the model's configuration may come from the hub
            return cls.from_single_file(str(path), **{_DTYPE_KW: dtype}, **options)
    except Exception as exc:  # from_single_file raises many kinds; all mean the same to the user
        if is_timeout(exc):
            raise _no_answer(seconds, f"the configuration of {str(path)!r}") from exc
        raise ModelLoadError(
            f"could not load the checkpoint {str(path)!r}: {_reason(exc)} Without network access a single-file "
            "checkpoint needs its model configuration cached; a diffusers folder always loads offline"
        ) from exc


def _pretrained(model_id: str, dtype: torch.dtype, **kwargs: str | bool) -> Any:
    """Download (or find in the cache) the repository as from_pretrained does, then load it with the pipeline
    class its model_index.json calls for (SD or SDXL); the pipeline keeps the hub id as its name."""
    from diffusers import DiffusionPipeline

    # safety_checker=None: an SD repository's safety checker is not downloaded (an SDXL one has none)
    folder = Path(DiffusionPipeline.download(model_id, safety_checker=None, **_weights_kwargs(), **kwargs))
    cls, options = pipeline_class(folder_family(folder))
    variant = {"variant": kwargs["variant"]} if "variant" in kwargs else {}
    pipe = cls.from_pretrained(
        folder, **{_DTYPE_KW: dtype}, **options, local_files_only=True, **_weights_kwargs(), **variant
    )
    pipe.register_to_config(_name_or_path=model_id)
    return pipe


def _from_hub(model_id: str, dtype: torch.dtype, **source: str) -> Any:
    """Load from the hub (or its cache); every request waits at most hub_timeout() seconds for an answer."""
    seconds = hub_timeout()
    try:
        with bounded_hub_requests(seconds):
            return _pretrained(model_id, dtype, **source)
    except Exception as exc:  # the HTTP client's timeouts are not OSErrors
        if is_timeout(exc):
            try:  # a model in the local cache still loads when the hub does not answer
                return _pretrained(model_id, dtype, local_files_only=True, **source)
            except (OSError, ValueError):
                pass
            raise _no_answer(seconds, repr(model_id)) from exc
        if not isinstance(exc, (OSError, ValueError)):
            raise
        raise ModelLoadError(
            f"model {model_id!r} is neither a local path nor available from the Hugging Face hub "
            f"(offline, or not cached): {_reason(exc)} Point the model at a local diffusers folder or a "
            ".safetensors/.ckpt file"
        ) from exc


def model_path(model: str | os.PathLike) -> Path:
    """Where a model given by name or path is looked for: "toy" is the toy-world model shipped inside the
    package; anything else is a path (that may not exist: then it may be a hub id)."""
    text = os.fspath(model)
    if text == TOY_MODEL:
        if not (TOY_MODEL_DIR / "model_index.json").is_file():
            raise ModelLoadError(
                f"the toy-world model is not installed in {TOY_MODEL_DIR} (train it with python -m training.toyworld)"
            )
        return TOY_MODEL_DIR
    return Path(text).expanduser()


def source_options(model: str, kind: str, variant: str | None = None, revision: str | None = None) -> dict[str, str]:
    """from_pretrained's variant/revision for a model of `kind` ("hub", "folder" or "file"); a ModelLoadError
    where they cannot apply (a revision is a hub commit, branch or tag; a variant a diffusers weights name)."""
    options = {}
    if variant is not None:
        if not isinstance(variant, str) or not variant.strip():
            raise ModelLoadError(f"variant {variant!r} must be a weights variant name such as 'fp16'")
        if kind == "file":
            raise ModelLoadError(
                f"variant {variant!r} applies to diffusers folders and hub ids, not to the "
                f"single checkpoint file {model!r}"
            )
        options["variant"] = variant
    if revision is not None:
        if not isinstance(revision, str) or not revision.strip():
            raise ModelLoadError(f"revision {revision!r} must be a hub commit, branch or tag")
        if kind != "hub":
            raise ModelLoadError(f"revision {revision!r} applies to hub ids, not to the local {kind} {model!r}")
        options["revision"] = revision
    return options


def _load_model(text: str, torch_dtype: torch.dtype, variant: str | None, revision: str | None) -> Any:
    """The pipeline of a diffusers folder, a single checkpoint file or a hub id, as it was saved (not yet placed)."""
    if not text.strip():
        raise ModelLoadError("model is empty: give a hub id, a diffusers folder or a checkpoint file")
    path = model_path(text)
    if path.is_dir():
        return _from_folder(path, torch_dtype, **source_options(text, "folder", variant, revision))
    if path.is_file():
        if not text.lower().endswith(CHECKPOINT_SUFFIXES):
            raise ModelLoadError(
                f"model file {text!r} is not a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) nor a diffusers folder"
            )
        source_options(text, "file", variant, revision)
        return _from_file(path, torch_dtype)
    if _looks_local(text):
        raise ModelLoadError(f"model path {text!r} does not exist (no network is tried for a local path)")
    return _from_hub(text, torch_dtype, **source_options(text, "hub", variant, revision))


def load_pipeline(
    model: str | os.PathLike = DEFAULT_MODEL,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    *,
    offload: str | None = None,
    vae_tiling: bool | None = None,
    variant: str | None = None,
    revision: str | None = None,
    loras: Sequence[Any] = (),
    embeddings: Sequence[Any] = (),
) -> Any:
    """Load a Stable Diffusion (1.x/2.x or XL) pipeline with a DDIM scheduler, ready for Editor.

    SDXL is recognised without loading weights (p2p_real.models.sdxl_loading): a folder or hub id by its
    model_index.json, a single checkpoint by its tensor names; an SDXL refiner is refused.

    In half precision the VAE runs in half precision too unless the model's config asks for float32 (SDXL's
    VAE); a decode that overflows is run again in float32, so it never gives black images. A local path is
    never looked up on the network; without network access a hub id must be in the cache.

    Args:
        model: a Hugging Face hub id ("stable-diffusion-v1-5/stable-diffusion-v1-5", the default), a local
            diffusers folder (saved with save_pretrained), a single .safetensors/.ckpt checkpoint file, or
            "toy" for the small toy-world model shipped with the package.
        device: "auto" (cuda, then mps, then cpu), or any torch device ("cpu", "cuda", "cuda:1", "mps").
        dtype: "auto" (float16 on CUDA, else float32), "float32", "float16", "bfloat16" (and their short
            forms fp32, fp16, half, bf16) or a torch dtype; half precision needs CUDA (float16 also runs on
            Apple GPUs, "mps").
        offload: for GPUs with little memory: "model" keeps one model (text encoder, UNet, VAE) at a time on
            the device, "sequential" one layer at a time (least memory, slowest); needs accelerate. Both
            decode images one at a time (VAE slicing).
        vae_tiling: True encodes and decodes images larger than the VAE's tile (512 px for SD 1.5) in
            overlapping tiles, one image at a time; False never; None (auto) only images above 1024x1024
            pixels.
        variant: the weights variant of a diffusers folder or hub id ("fp16" for *.fp16.safetensors).
        revision: a hub commit, branch or tag.
        loras: LoRA files merged into the weights, each "FILE" or "FILE:SCALE" (or a Path, a (path, scale)
            pair or an adapters.LoraFile); needs peft.
        embeddings: textual-inversion files, each "FILE" (the word in prompts is the file's stem) or
            "FILE:WORD" (or a Path, a (path, word) pair or an adapters.EmbeddingFile).

    Returns:
        StableDiffusionPipeline or StableDiffusionXLPipeline: on `device` (or offloaded to it), progress bars
        off, safety checker and watermark off.

    Raises:
        ModelLoadError: the model could not be found or loaded; the message says what to give instead.
        ValueError: an unknown or unavailable device or dtype.
    """
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    check_offload(offload, dev)
    pipe = _load_model(os.fspath(model), torch_dtype, variant, revision)
    pipe.scheduler = ddim_scheduler(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    add_adapters(pipe, loras, embeddings)
    return place_pipeline(pipe, dev, torch_dtype, offload, vae_tiling)
