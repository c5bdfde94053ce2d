"""PIE-Bench's masks and the figures measured outside them: run-length codes and background MSE/PSNR/SSIM.

Pure array code (numpy and scikit-image). A PIE-Bench mask is a flat list of pairs [start, length, ...]: runs of
edited pixels in the image read row by row (docs/evaluate.md, "Masks"). The background is every pixel outside
the mask; the figures compare an edited image with the photo there only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity


class MaskCodeError(ValueError):
    """A run-length-encoded mask that is malformed or does not fit its image."""


def rle_encode(mask: np.ndarray) -> list[int]:
    """A boolean (H, W) mask as PIE-Bench's runs [start, length, ...] over its pixels read row by row."""
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    padded = np.concatenate([[False], flat, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))  # rising edges at even places, falling edges at odd ones
    runs: list[int] = []
    for start, end in zip(edges[0::2], edges[1::2], strict=True):
        runs += [int(start), int(end - start)]
    return runs


def rle_decode(runs: Sequence[int], shape: tuple[int, int], mark_border: bool = False) -> np.ndarray:
    """PIE-Bench's runs -> a boolean (H, W) mask; MaskCodeError if a value is not a whole number >= 0, the list
    is of odd length, or a run starts outside the image. A run that goes past the image's end stops there, as
    in the benchmark's own decoder. `mark_border`: also count the image's outermost pixels as edited (the
    benchmark does so against annotation errors at the border)."""
    height, width = shape
    size = height * width
    if isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence):
        raise MaskCodeError(f"the mask is not a list of numbers (got {type(runs).__name__})")
    if len(runs) % 2:
        raise MaskCodeError(f"the mask has {len(runs)} numbers: runs come in pairs (start, length)")
    flat = np.zeros(size, dtype=bool)
    for i in range(0, len(runs), 2):
        start, length = runs[i], runs[i + 1]
        for value in (start, length):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise MaskCodeError(f"run {i // 2} of the mask: {value!r} is not a whole number >= 0")
        if start >= size:
            raise MaskCodeError(
                f"run {i // 2} of the mask starts at pixel {start}, outside the {width}x{height} image ({size} pixels)"
            )
        flat[start : min(start + length, size)] = True
    mask = flat.reshape(height, width)
    if mark_border:
        mask[0, :] = mask[-1, :] = True
        mask[:, 0] = mask[:, -1] = True
    return mask


def _pair(image: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images as float (H, W, 3) in [0, 1] and the background as a boolean (H, W) array, checked."""
    a, b = (np.asarray(x) for x in (image, photo))
    a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
    b = b.astype(np.float64) / 255.0 if b.dtype == np.uint8 else b.astype(np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"images differ in shape or are not (H, W, 3): {a.shape} vs {b.shape}")
    background = ~np.asarray(mask, dtype=bool)
    if background.shape != a.shape[:2]:
        raise ValueError(
            f"the mask is {background.shape[1]}x{background.shape[0]}, the image {a.shape[1]}x{a.shape[0]}"
        )
    if not background.any():
        raise ValueError("the mask covers the whole image: there is no background to measure")
    return a, b, background


def background_mse(image: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared error (on a [0, 1] scale) over the background pixels and their three channels."""
    a, b, background = _pair(image, photo, mask)
    return float(((a - b) ** 2)[background].mean())


def background_psnr(image: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB of the background: 10 log10(1 / background MSE); inf where it is unchanged."""
    mse = background_mse(image, photo, mask)
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def background_ssim(image: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
    """SSIM of the background: the per-pixel SSIM map (7x7 windows over the whole image, channels averaged)
    averaged over the background pixels."""
    a, b, background = _pair(image, photo, mask)
    win = min(7, *a.shape[:2])
    win = win if win % 2 else win - 1
    if win < 3:
        raise ValueError(f"images of {a.shape[1]}x{a.shape[0]} are too small for SSIM (3x3 at least)")
    _, full = structural_similarity(a, b, data_range=1.0, channel_axis=-1, win_size=win, full=True)
    return float(full.mean(axis=-1)[background].mean())
