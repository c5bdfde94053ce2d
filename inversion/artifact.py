"""The Inversion artifact: everything an edit of one photo needs, in one self-contained safetensors file."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as save_safetensors

from inversion import validation
from inversion.artifact_format import (
    FORMAT,
    FORMAT_VERSION,
    ArtifactError,
    MismatchError,
    checksum,
    decoded_fields,
    file_name,
    png_bytes,
    read_file,
)
from inversion.encoding.sdxl import FAMILY_NAMES, FAMILY_SD, model_family
from inversion.encoding.vae import vae_scale_factor as vae_factor
from inversion.fingerprint import pipeline_fingerprint, scheduler_differences, scheduler_fingerprint
from inversion.methods import METHODS
from inversion.photos.image import DEFAULT_MAX_PIXELS, Source, load_for_model, pixel_sha256, read_rgb, working_image
from inversion.photos.metadata import PhotoInfo
from inversion.settings import InversionSettings
from inversion.storage.files import atomic_write_bytes

__all__ = ["ArtifactError", "Inversion", "MismatchError"]


@dataclass(eq=False, repr=False)
class Inversion:
    """A photo inverted for editing: start latent, per-step guidance data and the original photo.

    `uncond_embeddings` (T, 77, D) are null-text's per-step unconditional embeddings; None means the
    empty prompt, or the source prompt itself for method "negative-prompt". `pivots` (T, C, h, w) are
    direct inversion's pivot latents z*_{t-1} that the source row is set to after each sampling step.
    Method "chain" is an edit's row made the inversion of the edited image (p2p_real.files.chain): its latents after
    each step as the pivots, the unconditional embeddings it used per step, and `chain`, the edits it descends
    from (oldest first).
    """

    latent_T: torch.Tensor  # (1, C, h, w) float32: the pivot's z*_T, where every edit starts
    z0: torch.Tensor  # (1, C, h, w) float32: the VAE encoding of the working image
    prompt: str
    method: str
    num_inference_steps: int
    guidance_scale: float
    size: tuple[int, int]  # working size (width, height)
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of `original` covered by the working image
    original: np.ndarray  # (H, W, 3) uint8, the photo as loaded (EXIF orientation applied)
    image_sha256: str
    model_id: str
    scheduler_id: str
    uncond_embeddings: torch.Tensor | None = None
    pivots: torch.Tensor | None = None
    vae_scale_factor: int = 8
    source: str | None = None  # where the photo came from; saved as its file name only
    path: Path | None = None  # the file it was loaded from or last saved to (not stored in the file)
    info: PhotoInfo | None = None  # the photo's ICC profile and EXIF, written into its edits (stored in the PNG)
    model_family: str = FAMILY_SD  # "sd" (1.x/2.x) or "sdxl"; files written before SDXL support are "sd"
    chain: list[dict[str, Any]] = field(default_factory=list)  # method "chain": the edits it continues, oldest first

    def __post_init__(self) -> None:
        label = "inversion" if self.path is None else str(self.path)  # what errors call it
        for name in ("latent_T", "z0", "uncond_embeddings", "pivots"):
            tensor = getattr(self, name)
            if tensor is not None:
                if not torch.is_tensor(tensor) or not tensor.is_floating_point():
                    raise ArtifactError(f"{label}: {name} must be a floating-point tensor")
                setattr(self, name, tensor.detach().float().contiguous())  # one layout, in memory and loaded
        self.size = (int(self.size[0]), int(self.size[1]))
        self.box = tuple(int(v) for v in self.box)  # type: ignore[assignment]  # validate() checks it has 4
        self.validate(label)

    def __repr__(self) -> str:
        height, width = self.original.shape[:2]
        return (
            f"Inversion(method={self.method!r}, prompt={self.prompt!r}, steps={self.num_inference_steps}, "
            f"guidance={self.guidance_scale}, size={self.size}, photo={width}x{height}, box={self.box})"
        )

    def working_image(self) -> np.ndarray:
        """The working image (h, w, 3) uint8 that was encoded: the box of the photo at the working size."""
        return working_image(self.original, self.box, self.size)

    @property
    def uses_prompt_as_uncond(self) -> bool:
        """Negative-prompt inversion: the source prompt's embedding is the unconditional one at every step."""
        return METHODS[self.method].uncond == "prompt"

    @property
    def parent(self) -> dict[str, Any] | None:
        """The edit this inversion continues (method "chain"): its photo, caption, method, spec and target."""
        return self.chain[-1] if self.chain else None

    @property
    def latent_size(self) -> tuple[int, int]:
        """(height, width) of the latents."""
        return int(self.latent_T.shape[-2]), int(self.latent_T.shape[-1])

    def unconditional(self, cond: torch.Tensor, empty: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Unconditional embedding(s) for sampling: per step (null-text), `cond` (negative-prompt) or `empty`.

        `cond` is the source prompt's embedding and `empty` the empty prompt's, both (1, 77, D); results
        take their dtype and device.
        """
        if self.uncond_embeddings is not None:  # the method's uncond is "per-step"
            return [e[None].to(cond) for e in self.uncond_embeddings]
        return cond if self.uses_prompt_as_uncond else empty

    def source_pivots(self, like: torch.Tensor) -> list[torch.Tensor] | None:
        """Direct inversion's pivot latent after each sampling step (each (1, C, h, w)), like `like`."""
        if self.pivots is None:
            return None
        return [z[None].to(like) for z in self.pivots]

    def validate(self, path: str = "inversion") -> None:
        """Check that the fields agree (shapes, steps, method, box); raise ArtifactError if not."""
        if self.method not in METHODS:
            raise ArtifactError(f"{path}: unknown method {self.method!r} (expected one of {', '.join(METHODS)})")
        if not isinstance(self.chain, list) or not all(isinstance(link, dict) for link in self.chain):
            raise ArtifactError(f"{path}: chain must be a list of the edits it continues (dicts)")
        if bool(self.chain) != (self.method == "chain"):
            raise ArtifactError(f"{path}: a chain of edits belongs to method 'chain' only, and it needs one")
        if self.model_family not in FAMILY_NAMES:
            raise ArtifactError(
                f"{path}: unknown model_family {self.model_family!r} (expected one of {', '.join(FAMILY_NAMES)})"
            )
        method = METHODS[self.method]
        steps = validation.steps(self.num_inference_steps, f"{path}: num_inference_steps", error=ArtifactError)
        validation.number(self.guidance_scale, f"{path}: guidance_scale", error=ArtifactError)
        latent = self.latent_T
        if latent.ndim != 4 or latent.shape[0] != 1:
            raise ArtifactError(f"{path}: latent_T must be (1, C, h, w), got {tuple(latent.shape)}")
        if tuple(self.z0.shape) != tuple(latent.shape):
            raise ArtifactError(f"{path}: z0 {tuple(self.z0.shape)} does not match latent_T {tuple(latent.shape)}")
        h, w = self.latent_size
        f = self.vae_scale_factor
        if self.size != (w * f, h * f):
            raise ArtifactError(f"{path}: size {self.size} does not match latents {w}x{h} at VAE factor {f}")
        if max(self.size) > validation.MAX_WORKING_SIDE:  # before any step runs at that size
            raise ArtifactError(
                f"{path}: its working size {self.size[0]}x{self.size[1]} is over the limit of "
                f"{validation.MAX_WORKING_SIDE} pixels per side"
            )
        emb = self.uncond_embeddings
        if (emb is not None) != (method.uncond == "per-step"):
            raise ArtifactError(
                f"{path}: per-step unconditional embeddings belong to null-text inversion and chains only"
            )
        if emb is not None and (emb.ndim != 3 or emb.shape[0] != steps):
            raise ArtifactError(
                f"{path}: uncond_embeddings {tuple(emb.shape)} must be ({steps}, tokens, dim) for {steps} steps"
            )
        piv = self.pivots
        if (piv is not None) != method.follows_pivot:
            raise ArtifactError(f"{path}: per-step pivots belong to direct inversion and chains only")
        if piv is not None and tuple(piv.shape) != (steps, *latent.shape[1:]):
            raise ArtifactError(
                f"{path}: pivots {tuple(piv.shape)} must be ({steps}, {', '.join(map(str, latent.shape[1:]))})"
            )
        for name in ("latent_T", "z0", "uncond_embeddings", "pivots"):
            tensor = getattr(self, name)
            if tensor is not None and not torch.isfinite(tensor).all():
                raise ArtifactError(f"{path}: {name} contains NaN or infinite values")
        original = self.original
        if not isinstance(original, np.ndarray) or original.dtype != np.uint8 or original.ndim != 3:
            raise ArtifactError(f"{path}: original must be an (H, W, 3) uint8 array")
        height, width = original.shape[:2]
        x0, y0, x1, y1 = self.box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ArtifactError(f"{path}: box {self.box} is outside the {width}x{height} photo")

    def check_compatible(
        self,
        model_id: str,
        scheduler_id: str,
        num_inference_steps: int,
        guidance_scale: float | None = None,
        model_family: str | None = None,
        vae_scale_factor: int | None = None,
    ) -> None:
        """Raise ArtifactError naming what differs if this inversion was made with another model family (SD or
        SDXL: said alone, it is the whole story), model, scheduler, step count or (for null-text, whose per-step
        embeddings depend on it) guidance scale; then, if given, another VAE scale factor."""
        if model_family is not None and model_family != self.model_family:
            raise ArtifactError(
                f"inversion is not compatible: it was made with a {FAMILY_NAMES[self.model_family]} model, not with "
                f"{FAMILY_NAMES.get(model_family, model_family)}; invert the photo again with this model"
            )
        problems = []
        if model_id != self.model_id:
            made = self.parent.get("model") if self.parent else None  # a chain knows the model of its edit
            problems.append(
                f"model fingerprint {model_id[:12]}... != {self.model_id[:12]}... of the inversion"
                + (f" (it continues an edit made with the model {made})" if made else "")
            )
        if scheduler_id != self.scheduler_id:
            diffs = scheduler_differences(self.scheduler_id, scheduler_id)
            problems.append("scheduler settings differ (inversion vs now): " + "; ".join(diffs))
        if num_inference_steps != self.num_inference_steps:
            problems.append(f"num_inference_steps {num_inference_steps} != {self.num_inference_steps} of the inversion")
        if (
            guidance_scale is not None
            and METHODS[self.method].uncond == "per-step"
            and not math.isclose(guidance_scale, self.guidance_scale, rel_tol=1e-6)
        ):
            problems.append(f"guidance_scale {guidance_scale} != {self.guidance_scale} the {self.method} data is for")
        if problems:
            raise ArtifactError("inversion is not compatible: " + "; ".join(problems))
        if vae_scale_factor is not None and vae_scale_factor != self.vae_scale_factor:
            raise ArtifactError(
                f"inversion is not compatible: it was made with a VAE of factor "
                f"{self.vae_scale_factor}, this model's VAE has factor {vae_scale_factor}"
            )

    def check_matches(self, settings: InversionSettings, image: Source | None = None, pipe: Any = None) -> None:
        """Raise MismatchError naming the first thing that differs from what is asked for, each setting
        spelt as `settings.names` spells it.

        With `pipe`: the model and scheduler (fingerprints). Each setting that is not None: prompt, method,
        steps, guidance, size. With `image` (a path, PIL image or array): the photo's pixels, and, when
        `settings.square` is not None and `pipe` is given, the working area a fresh inversion would use.
        """
        label = self.path.name if self.path is not None else "the inversion"
        if pipe is not None:
            try:
                self.check_compatible(
                    pipeline_fingerprint(pipe),
                    scheduler_fingerprint(pipe.scheduler),
                    self.num_inference_steps,
                    model_family=model_family(pipe),
                    vae_scale_factor=vae_factor(pipe.vae),
                )
            except ArtifactError as exc:
                raise MismatchError(f"{label} was made with another model or scheduler: {exc}") from exc
        stored = {
            "prompt": self.prompt,
            "method": self.method,
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
        }
        for setting, value in stored.items():
            asked = getattr(settings, setting)
            if asked is not None and asked != value:
                raise MismatchError(f"{label} was inverted with {settings.name(setting)} {value!r}, not {asked!r}")
        if settings.size is not None and tuple(settings.size) != self.size:
            raise MismatchError(
                f"{label} was inverted at {self.size[0]}x{self.size[1]}, not at "
                f"{settings.name('size')} {settings.size[0]}x{settings.size[1]}"
            )
        if image is None:
            return
        if settings.square is not None and pipe is not None:
            loaded = load_for_model(pipe, image, settings.size, settings.square)
            sha256, area = loaded.sha256, (loaded.size, loaded.box)
        else:
            sha256, area = pixel_sha256(read_rgb(image)[0]), None
        if sha256 != self.image_sha256:
            photo = Path(os.fspath(image)).name if isinstance(image, (str, os.PathLike)) else "the photo given"
            raise MismatchError(f"{label} was made from another photo than {photo}")
        if area is not None and area != (self.size, self.box):
            raise MismatchError(f"{label} covers another part or size of the photo")

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = {
            "latent_T": self.latent_T.detach().float().cpu().contiguous(),
            "z0": self.z0.detach().float().cpu().contiguous(),
            "original_png": png_bytes(self.original, self.info),
        }
        if self.uncond_embeddings is not None:
            tensors["uncond_embeddings"] = self.uncond_embeddings.detach().float().cpu().contiguous()
        if self.pivots is not None:
            tensors["pivots"] = self.pivots.detach().float().cpu().contiguous()
        return tensors

    def _metadata(self) -> dict[str, str]:
        height, width = self.original.shape[:2]
        return {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "prompt": self.prompt,
            "method": self.method,
            "num_inference_steps": str(self.num_inference_steps),
            "guidance_scale": repr(float(self.guidance_scale)),
            "size": json.dumps(list(self.size)),
            "box": json.dumps(list(self.box)),
            "vae_scale_factor": str(self.vae_scale_factor),
            "original_size": json.dumps([width, height]),
            "image_sha256": self.image_sha256,
            "model_id": self.model_id,
            "scheduler_id": self.scheduler_id,
            "source": "" if self.source is None else file_name(self.source),
            "model_family": self.model_family,
            **({"chain": json.dumps(self.chain, sort_keys=True)} if self.chain else {}),  # absent: no chain
        }

    def save(self, path: str | os.PathLike, replace: bool = True) -> Path:
        """Write one self-contained safetensors file atomically (see inversion.storage.files); return its path. With
        `replace=False` an existing file (also one that appears meanwhile) is never replaced: FileExistsError."""
        if not isinstance(path, (str, os.PathLike)):
            raise ArtifactError(f"path must be a file name or path, got {type(path).__name__}")
        target = Path(os.fspath(path)).expanduser()
        if target.is_dir():
            raise ArtifactError(f"{target}: is a folder, not a file name")
        if not target.parent.is_dir():
            raise ArtifactError(f"{target}: the folder {target.parent} does not exist")
        atomic_write_bytes(target, self.to_bytes(), replace=replace)
        self.path = target
        return target

    def to_bytes(self) -> bytes:
        """The safetensors file `save` writes, as bytes (for writers that make the file themselves)."""
        tensors = self._tensors()
        metadata = self._metadata()
        metadata["checksum"] = checksum(metadata, tensors)
        return save_safetensors(tensors, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Inversion:
        """Read and validate a file written by `save`; any problem raises ArtifactError naming it.

        The stored photo is held to `max_pixels`, as load_image holds a photo file. The checksum detects
        corruption (a damaged or truncated file), not deliberate changes: anyone can recompute it.
        """
        source = Path(os.fspath(path)).expanduser()
        metadata, tensors = read_file(source)
        return cls(**decoded_fields(metadata, tensors, source, max_pixels))
