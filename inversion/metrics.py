"""Reconstruction quality: PSNR and SSIM of images, mean squared error of latents."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ImageLike = np.ndarray | torch.Tensor


def as_float_image(image: ImageLike, name: str = "image") -> np.ndarray:
    """(H, W, 3) float64 in [0, 1] from uint8/float (H, W, 3) arrays or (3, H, W) / (1, 3, H, W) tensors."""
    if torch.is_tensor(image):
        tensor = image.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim == 3 and tensor.shape[0] in (1, 3) and tensor.shape[-1] not in (1, 3):
            tensor = tensor.permute(1, 2, 0)
        array = tensor.float().numpy() if tensor.dtype != torch.uint8 else tensor.numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"{name}: expected an (H, W, 3) image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: dtype {array.dtype} is neither uint8 nor float in [0, 1]")
    return np.clip(array.astype(np.float64), 0.0, 1.0)


def _pair(a: ImageLike, b: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_float_image(a, "first image"), as_float_image(b, "second image")
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    return x, y


def psnr(a: ImageLike, b: ImageLike) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images), on a [0, 1] scale."""
    x, y = _pair(a, b)
    if np.array_equal(x, y):
        return float("inf")
    return float(peak_signal_noise_ratio(x, y, data_range=1.0))


def ssim(a: ImageLike, b: ImageLike) -> float:
    """Structural similarity over the colour channels (window 7, or the largest odd size that fits)."""
    x, y = _pair(a, b)
    win = min(7, *x.shape[:2])
    win = win if win % 2 else win - 1
    if win < 3:
        raise ValueError(f"images of {x.shape[1]}x{x.shape[0]} are too small for SSIM (3x3 at least)")
    return float(structural_similarity(x, y, data_range=1.0, channel_axis=-1, win_size=win))


def latent_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared error between two latents of the same shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"latents differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a.detach().float().cpu() - b.detach().float().cpu()).pow(2).mean())


def image_metrics(a: ImageLike, b: ImageLike) -> dict[str, float]:
    """{'psnr': dB, 'ssim': [-1, 1]} of two images."""
    return {"psnr": psnr(a, b), "ssim": ssim(a, b)}
