"""Turning a photo into latents: image loading, DDIM / null-text / negative-prompt / direct inversion,
the Inversion artifact and reconstruction metrics."""

from inversion.artifact import METHODS, ArtifactError, Inversion
from inversion.fingerprint import model_fingerprint, pipeline_fingerprint, scheduler_fingerprint
from inversion.image import ImageError, LoadedImage, load_image
from inversion.invert import PromptTooLongError, invert
from inversion.metrics import image_metrics, latent_error, psnr, ssim

__all__ = [
    "METHODS",
    "ArtifactError",
    "ImageError",
    "Inversion",
    "LoadedImage",
    "PromptTooLongError",
    "image_metrics",
    "invert",
    "latent_error",
    "load_image",
    "model_fingerprint",
    "pipeline_fingerprint",
    "psnr",
    "scheduler_fingerprint",
    "ssim",
]
