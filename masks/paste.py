"""Paste-back: blend an edit onto the original photo at its own resolution, through a feathered mask."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

Box = tuple[int, int, int, int]
ArrayLike = np.ndarray | torch.Tensor
MaskSource = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor

FEATHER = 0.01  # Gaussian sigma, as a fraction of the box's shorter side
DILATE = 0.02  # dilation radius, as a fraction of the box's shorter side
MAX_FEATHER = 0.5  # the largest feather: a blur half the box's shorter side (beyond it the blend is the whole box)
MAX_MASK_SIDE = 1024  # the mask is dilated and blurred at most at this resolution, then upsampled
MAX_MASK_PIXELS = 100_000_000  # as inversion.photos.image.DEFAULT_MAX_PIXELS: larger mask files are refused
MASK_FLOOR = 1.0 / 512  # within this of 0 or 1 a mask value cannot change a uint8 pixel: snap it to 0 or 1


class MaskError(ValueError):
    """A mask (or an input of paste-back) is unusable; the message names it and says why."""


def _check_box(box: Box, width: int, height: int) -> Box:
    if len(box) != 4 or not all(isinstance(v, (int, np.integer)) for v in box):
        raise MaskError(f"box must be four integers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise MaskError(f"box {box!r} is not inside the {width}x{height} photo")
    return x0, y0, x1, y1


def _images(edited: ArrayLike) -> tuple[torch.Tensor, bool]:
    """Edited image(s) as float (N, 3, h, w) in [0, 1], and whether the input was a batch.

    Arrays are channels-last ((h, w, 3) or (N, h, w, 3)); tensors may also be channels-first.
    """
    x = torch.as_tensor(np.ascontiguousarray(edited)) if isinstance(edited, np.ndarray) else edited.detach()
    batched = x.ndim == 4
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise MaskError(f"edited images must be (h, w, 3) or (N, h, w, 3), got shape {tuple(x.shape)}")
    if x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    elif x.shape[1] != 3 or isinstance(edited, np.ndarray):
        raise MaskError(f"edited images must have 3 colour channels, got shape {tuple(edited.shape)}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0, batched
    if not x.is_floating_point():
        raise MaskError(f"edited images must be uint8 or float in [0, 1], got {x.dtype}")
    return x.float().clamp(0, 1), batched


def _masks(mask: ArrayLike, n: int) -> torch.Tensor:
    """Mask(s) as float (n, 1, mh, mw) in [0, 1]: one shared by all edits or one per edit."""
    m = torch.as_tensor(np.ascontiguousarray(mask)) if isinstance(mask, np.ndarray) else mask.detach()
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise MaskError(f"a 4-D mask must be (N, 1, h, w), got shape {tuple(m.shape)}")
        m = m[:, 0]
    if m.ndim != 3 or m.shape[0] not in (1, n) or m.shape[1] == 0 or m.shape[2] == 0:
        raise MaskError(f"mask must be (h, w), (N, h, w) or (N, 1, h, w) with N = 1 or {n}, got {tuple(m.shape)}")
    m = m.float()
    if not torch.isfinite(m).all():
        raise MaskError("mask contains NaN or infinite values")
    return m.clamp(0, 1).expand(n, -1, -1)[:, None]


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, 1, h, w) to `size`: area averages when shrinking both sides, bilinear otherwise."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask.clamp(0, 1)
    if mask.shape[-2] >= size[0] and mask.shape[-1] >= size[1]:
        return F.interpolate(mask, size=size, mode="area").clamp(0, 1)
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, h, w), kernel cut at 3 sigma, edges replicated."""
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


def _dilate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey dilation of (N, 1, h, w) by a (2r+1)-square, separably."""
    k = 2 * radius + 1
    x = F.max_pool2d(x, kernel_size=(1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(x, kernel_size=(k, 1), stride=1, padding=(radius, 0))


def feathered_mask(
    mask: torch.Tensor,
    size: tuple[int, int],
    feather: float = FEATHER,
    dilate: float = DILATE,
    max_side: int = MAX_MASK_SIDE,
) -> torch.Tensor:
    """A mask (N, 1, mh, mw) in [0, 1] upsampled to size (h, w), dilated and Gaussian-feathered.

    Dilation radius and blur sigma are fractions of the shorter side; both run at a resolution of at
    most `max_side` before a bilinear upsampling. Values within 1/512 of 0 or 1 become exactly 0 or 1.
    """
    if not (0 <= feather <= MAX_FEATHER and 0 <= dilate <= 1):  # also NaN; checked before anything is allocated
        raise MaskError(f"feather must be in [0, {MAX_FEATHER}] and dilate in [0, 1], got {feather!r} and {dilate!r}")
    h, w = size
    scale = min(1.0, max_side / max(h, w))
    work = (max(1, round(h * scale)), max(1, round(w * scale)))
    m = resize_mask(mask.float(), work)
    radius = round(dilate * min(work))
    if radius > 0:
        m = _dilate(m, radius)
    sigma = feather * min(work)
    if sigma > 0.1:
        m = _gaussian_blur(m, sigma)
    if work != (h, w):
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    m = torch.where(m > 1 - MASK_FLOOR, torch.ones_like(m), m.clamp(0, 1))
    return torch.where(m < MASK_FLOOR, torch.zeros_like(m), m)


def paste_back(
    original: ArrayLike,
    edited: ArrayLike,
    mask: ArrayLike,
    box: Box,
    *,
    feather: float = FEATHER,
    dilate: float = DILATE,
    device: str | torch.device = "cpu",
    max_mask_side: int = MAX_MASK_SIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend edited working image(s) into `box` of the original photo through a feathered mask.

    original: (H, W, 3) uint8. edited: (h, w, 3) or (N, h, w, 3), uint8 or float in [0, 1] (tensors may
    be channels-first). mask: at latent or working resolution, float or bool, (h', w'), (N, h', w') or
    (N, 1, h', w'). Returns the composited photo(s) (uint8, shaped like `edited` but at photo size) and
    the mask(s) used, float32 in [0, 1] at photo resolution. Where that mask is 0 (everywhere outside
    the dilated, feathered region) the result is byte-identical to `original`.
    """
    photo = torch.as_tensor(np.ascontiguousarray(original)) if isinstance(original, np.ndarray) else original
    if photo.dtype != torch.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise MaskError(f"original must be an (H, W, 3) uint8 image, got {tuple(photo.shape)} {photo.dtype}")
    height, width = photo.shape[:2]
    x0, y0, x1, y1 = _check_box(box, width, height)
    images, batched = _images(edited)
    masks = _masks(mask, images.shape[0])
    dev = torch.device(device)
    region = photo[y0:y1, x0:x1].to(dev).permute(2, 0, 1).float()  # (3, bh, bw) in 0..255
    box_size = (y1 - y0, x1 - x0)
    out_images, out_masks = [], []
    for image, m in zip(images, masks):
        edit = (
            F.interpolate(image[None].to(dev), size=box_size, mode="bicubic", align_corners=False, antialias=True)[
                0
            ].clamp(0, 1)
            * 255.0
        )
        soft = feathered_mask(m[None].to(dev), box_size, feather, dilate, max_mask_side)[0]  # (1, bh, bw)
        blended = (region + soft * (edit - region)).round().clamp(0, 255)
        blended = torch.where(soft > 0, blended, region).to(torch.uint8)
        result = photo.clone()
        result[y0:y1, x0:x1] = blended.permute(1, 2, 0).cpu()
        full = torch.zeros(height, width)
        full[y0:y1, x0:x1] = soft[0].cpu()
        out_images.append(result.numpy())
        out_masks.append(full.numpy())
    if batched:
        return np.stack(out_images), np.stack(out_masks)
    return out_images[0], out_masks[0]


def read_mask_file(path: str | os.PathLike, max_pixels: int = MAX_MASK_PIXELS) -> Image.Image:
    """A mask image file, decoded and EXIF-oriented; PIL's warnings become this function's errors.

    Like a photo, a mask over `max_pixels` is refused as a possible decompression bomb, before decoding.
    """
    path = Path(os.fspath(path)).expanduser()
    name = str(path)
    if not path.is_file():
        raise MaskError(f"{name}: mask file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the pixel limit below replaces PIL's DecompressionBombWarning
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise MaskError(
                        f"{name}: {width}x{height} mask exceeds the limit of {max_pixels / 1e6:.0f} MP "
                        "(possible decompression bomb)"
                    )
                img.load()
                return ImageOps.exif_transpose(img)
    except MaskError:
        raise
    except UnidentifiedImageError as exc:
        raise MaskError(f"{name}: not an image") from exc
    except Image.DecompressionBombError as exc:
        raise MaskError(f"{name}: refused as a possible decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MaskError(f"{name}: unreadable mask image ({exc})") from exc


def _mask_values(source: MaskSource) -> np.ndarray:
    """A user mask as (H, W) float32 in [0, 1]: luminance, with transparent parts counting as 0 (keep)."""
    name = "mask"
    if isinstance(source, (str, os.PathLike)):
        name = str(Path(os.fspath(source)).expanduser())
        source = read_mask_file(source)
    if isinstance(source, Image.Image):
        img = source
        if img.mode in ("RGBA", "LA", "PA", "P", "La", "RGBa"):
            img = img.convert("RGBA")
            black = Image.new("RGBA", img.size, (0, 0, 0, 255))
            img = Image.alpha_composite(black, img)
        if img.mode.startswith("I;16") or img.mode == "I":
            values = np.asarray(img).astype(np.float32) / 65535.0
        elif img.mode == "F":
            values = np.asarray(img).astype(np.float32)
        else:
            values = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        array = source.detach().cpu().numpy() if torch.is_tensor(source) else np.asarray(source)
        while array.ndim > 2 and array.shape[0] == 1:  # (1, 1, h, w) tensors
            array = array[0]
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        elif array.dtype == np.bool_ or np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        else:
            raise MaskError(f"{name}: mask dtype {array.dtype} is not uint8, bool or float in [0, 1]")
        if array.ndim == 3 and array.shape[2] in (1, 3, 4):
            gray = array[..., :3].mean(axis=2)
            array = gray * array[..., 3] if array.shape[2] == 4 else gray
        if array.ndim != 2:
            raise MaskError(f"{name}: mask array must be (H, W) or (H, W, 1/3/4), got shape {np.shape(source)}")
        values = array
    else:
        raise MaskError(f"mask must be a path, a PIL image, an array or a tensor, got {type(source).__name__}")
    if values.size == 0:
        raise MaskError(f"{name}: mask has zero size")
    if not np.isfinite(values).all():
        raise MaskError(f"{name}: mask contains NaN or infinite values")
    return np.clip(values, 0.0, 1.0)


def user_mask(
    source: MaskSource,
    size: tuple[int, int],
    box: Box | None = None,
    photo_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """A user-supplied mask (white = edit) as float (1, 1, h, w) in [0, 1] for a target size (h, w).

    With `box` and `photo_size` (width, height) the mask is taken to cover the whole photo (at any
    resolution): the part under the working box is cropped out first. Otherwise it covers the working image.
    """
    values = torch.from_numpy(_mask_values(source))[None, None]
    mh, mw = values.shape[-2:]
    if box is not None and photo_size is not None:
        width, height = photo_size
        x0, y0, x1, y1 = _check_box(box, width, height)
        sx, sy = mw / width, mh / height
        cx0, cx1 = math.floor(x0 * sx), max(math.floor(x0 * sx) + 1, math.ceil(x1 * sx))
        cy0, cy1 = math.floor(y0 * sy), max(math.floor(y0 * sy) + 1, math.ceil(y1 * sy))
        values = values[..., cy0 : min(cy1, mh), cx0 : min(cx1, mw)]
    return resize_mask(values, size)
