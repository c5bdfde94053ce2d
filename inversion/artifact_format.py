"""The file format of the Inversion artifact (inversion.artifact): one safetensors file whose metadata holds the
settings as strings and whose tensors hold the latents, per-step data and the photo as PNG bytes, with a checksum
over both. Reading checks everything before an Inversion is made of it; every problem is an ArtifactError."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from inversion.encoding.sdxl import FAMILY_SD
from inversion.photos.image import DEFAULT_MAX_PIXELS, over_pixel_limit, pixel_sha256, quiet_pil
from inversion.photos.metadata import PhotoInfo, usable_icc

FORMAT = "p2p-real-inversion"
FORMAT_VERSION = 1
META_KEYS = (
    "format",
    "format_version",
    "prompt",
    "method",
    "num_inference_steps",
    "guidance_scale",
    "size",
    "box",
    "vae_scale_factor",
    "original_size",
    "image_sha256",
    "model_id",
    "scheduler_id",
    "source",
    "checksum",
)


class ArtifactError(ValueError):
    """An inversion is unusable: unreadable, tampered with, inconsistent or made for another model."""


class MismatchError(ArtifactError):
    """A saved inversion is readable but was made from another photo, with other settings or another model."""


def checksum(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the metadata (all but the checksum) and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    meta = {k: v for k, v in metadata.items() if k != "checksum"}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"\n{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def file_name(source: str) -> str:
    """The file name of the photo, without the folders of the machine it was on (artifacts get shared)."""
    return Path(source.replace("\\", "/")).name


def png_bytes(rgb: np.ndarray, info: PhotoInfo | None = None) -> torch.Tensor:
    """The photo as PNG, with its ICC profile and EXIF (iCCP and eXIf chunks) when it has them."""
    buffer = io.BytesIO()
    extra = {k: v for k, v in (("icc_profile", info and info.icc_profile), ("exif", info and info.exif)) if v}
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=4, **extra)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def png_info(data: torch.Tensor) -> PhotoInfo:
    """The ICC profile and EXIF stored with the photo (none in files from before they were kept)."""
    with quiet_pil(), Image.open(io.BytesIO(data.numpy().tobytes())) as img:
        exif = img.getexif()
        icc, note = usable_icc(img.info.get("icc_profile") or None)  # files written before profiles were checked
        return PhotoInfo(icc, exif.tobytes() if len(exif) else None, note)


def png_pixels(data: torch.Tensor, path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The stored photo, under the same decompression-bomb limit as a photo file (checked before decoding)."""
    try:
        with quiet_pil(), Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            if problem := over_pixel_limit(f"{path}: the stored photo", *img.size, max_pixels):
                raise ArtifactError(problem)
            img.load()
            if img.mode != "RGB":
                raise ArtifactError(f"{path}: the stored photo is {img.mode}, not RGB")
            return np.asarray(img, dtype=np.uint8).copy()
    except ArtifactError:
        raise
    except Image.DecompressionBombError as exc:
        raise ArtifactError(f"{path}: the stored photo is refused as a possible decompression bomb ({exc})") from exc
    except Exception as exc:  # PIL raises many kinds for broken data
        raise ArtifactError(f"{path}: the stored photo cannot be decoded ({exc})") from exc


def read_file(source: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of an inversion file, once its format, version, keys and checksum are checked."""
    name = str(source)
    if not source.is_file():
        raise ArtifactError(f"{name}: not a file" if source.exists() else f"{name}: file not found")
    try:
        with safe_open(source, framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for broken headers
        raise ArtifactError(f"{name}: not a safetensors file ({exc})") from exc
    if metadata.get("format") != FORMAT:
        raise ArtifactError(f"{name}: not a p2p-real inversion (metadata 'format' is {metadata.get('format')!r})")
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise ArtifactError(
            f"{name}: unknown format version {version!r} (this p2p-real reads version {FORMAT_VERSION})"
        )
    missing = [k for k in META_KEYS if k not in metadata]
    if missing:
        raise ArtifactError(f"{name}: metadata lacks {', '.join(missing)}")
    if checksum(metadata, tensors) != metadata["checksum"]:
        raise ArtifactError(f"{name}: checksum mismatch: the file was modified or is corrupt")
    return metadata, tensors


def decoded_fields(
    meta: dict[str, str], tensors: dict[str, torch.Tensor], source: Path, max_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[str, Any]:
    """The Inversion's fields from a checked file's metadata and tensors (the photo decoded and checked against
    its size and sha256)."""
    name = str(source)
    for key in ("latent_T", "z0", "original_png"):
        if key not in tensors:
            raise ArtifactError(f"{name}: tensor {key!r} is missing")
    try:
        fields: dict[str, Any] = {
            "num_inference_steps": int(meta["num_inference_steps"]),
            "guidance_scale": float(meta["guidance_scale"]),
            "size": tuple(json.loads(meta["size"])),
            "box": tuple(json.loads(meta["box"])),
            "vae_scale_factor": int(meta["vae_scale_factor"]),
        }
        original_size = tuple(json.loads(meta["original_size"]))
        chain = json.loads(meta.get("chain", "[]"))  # files from before chains have none
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{name}: malformed metadata ({exc})") from exc
    if len(fields["size"]) != 2 or len(fields["box"]) != 4:
        raise ArtifactError(f"{name}: malformed metadata: size {fields['size']}, box {fields['box']}")
    original = png_pixels(tensors["original_png"], name, max_pixels)
    if (original.shape[1], original.shape[0]) != original_size:
        raise ArtifactError(f"{name}: the stored photo is not {original_size[0]}x{original_size[1]}")
    if pixel_sha256(original) != meta["image_sha256"]:
        raise ArtifactError(f"{name}: the stored photo does not match its sha256")
    return {
        "latent_T": tensors["latent_T"],
        "z0": tensors["z0"],
        "prompt": meta["prompt"],
        "method": meta["method"],
        "original": original,
        "image_sha256": meta["image_sha256"],
        "model_id": meta["model_id"],
        "scheduler_id": meta["scheduler_id"],
        "uncond_embeddings": tensors.get("uncond_embeddings"),
        "pivots": tensors.get("pivots"),
        "source": meta["source"] or None,
        "path": source,
        "info": png_info(tensors["original_png"]),
        "model_family": meta.get("model_family", FAMILY_SD),
        "chain": chain,
        **fields,
    }
