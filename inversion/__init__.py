"""Turning a photo into latents: image loading, DDIM / null-text / negative-prompt / direct inversion,
the Inversion artifact, its settings and cache, and reconstruction metrics.

Names are imported on first use, so that `inversion.methods`, `inversion.settings` and
`inversion.validation` load without torch (the command line lists methods before loading anything).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inversion.lazy_imports import lazy_exports

_EXPORTS = {
    "inversion.artifact": ("ArtifactError", "Inversion", "MismatchError"),
    "inversion.cache": ("InversionCache",),
    "inversion.fingerprint": ("model_fingerprint", "pipeline_fingerprint", "scheduler_fingerprint"),
    "inversion.photos.image": ("ImageError", "LoadedImage", "load_image"),
    "inversion.invert": ("invert",),
    "inversion.methods": ("METHODS", "METHOD_NAMES"),
    "inversion.metrics": ("image_metrics", "latent_error", "psnr", "ssim"),
    "inversion.encoding.prompts": ("encode_prompts",),
    "inversion.settings": ("InversionSettings",),
    "inversion.validation": ("PromptError", "PromptTooLongError"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from inversion.artifact import ArtifactError as ArtifactError
    from inversion.artifact import Inversion as Inversion
    from inversion.artifact import MismatchError as MismatchError
    from inversion.cache import InversionCache as InversionCache
    from inversion.encoding.prompts import encode_prompts as encode_prompts
    from inversion.fingerprint import model_fingerprint as model_fingerprint
    from inversion.fingerprint import pipeline_fingerprint as pipeline_fingerprint
    from inversion.fingerprint import scheduler_fingerprint as scheduler_fingerprint
    from inversion.invert import invert as invert
    from inversion.methods import METHOD_NAMES as METHOD_NAMES
    from inversion.methods import METHODS as METHODS
    from inversion.metrics import image_metrics as image_metrics
    from inversion.metrics import latent_error as latent_error
    from inversion.metrics import psnr as psnr
    from inversion.metrics import ssim as ssim
    from inversion.photos.image import ImageError as ImageError
    from inversion.photos.image import LoadedImage as LoadedImage
    from inversion.photos.image import load_image as load_image
    from inversion.settings import InversionSettings as InversionSettings
    from inversion.validation import PromptError as PromptError
    from inversion.validation import PromptTooLongError as PromptTooLongError
