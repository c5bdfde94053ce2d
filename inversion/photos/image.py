"""Loading a photo: EXIF orientation, RGB, a working size for the model, the original kept for paste-back,
its colour profile and EXIF kept for its edits."""

from __future__ import annotations

import hashlib
import math
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from inversion import validation
from inversion.encoding.vae import vae_scale_factor
from inversion.photos.formats import missing_reader, register_optional_formats
from inversion.photos.metadata import PhotoInfo, photo_info
from inversion.validation import MAX_WORKING_SIDE

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: larger files are refused as possible decompression bombs
DEFAULT_MODEL_PIXELS = 64 * 64

Source = str | os.PathLike | Image.Image | np.ndarray
Box = tuple[int, int, int, int]


class ImageError(ValueError):
    """A photo could not be used; the message names the file (or input) and the reason."""


@dataclass
class LoadedImage:
    """A photo ready for inversion, with what paste-back needs to return to the original."""

    original: np.ndarray  # (H, W, 3) uint8, after EXIF orientation, alpha composited on white
    pixels: torch.Tensor  # (1, 3, h, w) float32 in [0, 1]: the working image
    box: Box  # (x0, y0, x1, y1) of the original that the working image covers
    sha256: str  # of the original pixels, see pixel_sha256
    source: str | None  # the file path, or None for an in-memory image
    info: PhotoInfo = field(default_factory=PhotoInfo)  # the photo's ICC profile and EXIF (orientation 1)

    @property
    def size(self) -> tuple[int, int]:
        """Working size (width, height)."""
        return int(self.pixels.shape[-1]), int(self.pixels.shape[-2])

    @property
    def working(self) -> np.ndarray:
        """The working image as (h, w, 3) uint8."""
        return (self.pixels[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def pixel_sha256(rgb: np.ndarray) -> str:
    """Hex sha256 of an (H, W, 3) uint8 image: its shape, then its bytes in row-major order."""
    digest = hashlib.sha256(f"{rgb.shape[0]}x{rgb.shape[1]}x{rgb.shape[2]}:".encode())
    digest.update(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite float RGB in [0, 255] with alpha in [0, 1] onto a white background, as uint8."""
    out = rgb * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def array_to_rgb(array: np.ndarray, name: str = "array") -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 / uint16 / bool / float in [0, 1] -> RGB uint8."""
    if not isinstance(array, np.ndarray):
        raise ImageError(f"{name}: expected a numpy array, got {type(array).__name__}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        hint = " (channels must come last)" if array.ndim == 3 and array.shape[0] in (1, 3, 4) else ""
        raise ImageError(f"{name}: shape {array.shape} is not (H, W), (H, W, 1), (H, W, 3) or (H, W, 4){hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"{name}: zero size {array.shape[1]}x{array.shape[0]}")
    if array.dtype == np.uint8:
        values = array.astype(np.float32)
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 257.0
    elif array.dtype == np.bool_:
        values = array.astype(np.float32) * 255.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise ImageError(f"{name}: float image contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ImageError(f"{name}: float images must be in [0, 1], got values in [{low:.3g}, {high:.3g}]")
        values = np.clip(values, 0.0, 1.0) * 255.0
    else:
        raise ImageError(f"{name}: dtype {array.dtype} is not uint8, uint16, bool or float in [0, 1]")
    channels = values.shape[2]
    if channels == 1:
        values = np.repeat(values, 3, axis=2)
    if channels == 4:
        return _on_white(values[..., :3], values[..., 3] / 255.0)
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def pil_to_rgb(img: Image.Image, name: str = "image") -> np.ndarray:
    """Any PIL mode (alpha, palette, 16-bit, float, CMYK, ...) -> (H, W, 3) uint8, alpha on white."""
    if img.width == 0 or img.height == 0:
        raise ImageError(f"{name}: zero size {img.width}x{img.height}")
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    mode = img.mode
    if mode == "RGBA":
        return array_to_rgb(np.asarray(img), name)
    if mode.startswith("I;16") or mode == "I":
        values = np.clip(np.asarray(img).astype(np.float64), 0, 65535)
        # 32-bit "I" images hold 16-bit data (old 16-bit PNGs) or 8-bit data (converted from "L").
        full = 255.0 if mode == "I" and values.size and values.max() <= 255 else 65535.0
        return array_to_rgb((values / full).astype(np.float32), name)
    if mode == "F":
        values = np.asarray(img).astype(np.float32)
        if values.size and float(np.nanmax(values)) > 1.0 + 1e-3:  # float TIFFs in 0..255 or 0..65535
            values = values / (255.0 if float(values.max()) <= 255.0 else 65535.0)
        return array_to_rgb(np.clip(values, 0.0, 1.0), name)
    try:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except ValueError as exc:  # a mode PIL cannot turn into RGB
        raise ImageError(f"{name}: colour mode {mode} cannot be converted to RGB ({exc})") from exc


@contextmanager
def quiet_pil() -> Iterator[None]:
    """Decode with PIL without its warnings reaching the user: what PIL warns about (decompression bombs,
    odd metadata) is checked by the caller and becomes an error, or does not matter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def over_pixel_limit(name: str, width: int, height: int, max_pixels: int) -> str | None:
    """The message for an image of width x height over `max_pixels` (a possible decompression bomb), or None."""
    if width * height <= max_pixels:
        return None
    return (
        f"{name}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
        "(possible decompression bomb; raise max_pixels if the photo is genuine)"
    )


def _open_file(path: Path, max_pixels: int) -> tuple[np.ndarray, PhotoInfo]:
    """Read an image file (also HEIC/AVIF where a plugin reads them) to (H, W, 3) uint8, EXIF orientation
    applied, and its ICC profile and EXIF; every failure is an ImageError."""
    name = str(path)
    if not path.exists():
        raise ImageError(f"{name}: file not found")
    if not path.is_file():
        raise ImageError(f"{name}: not a file")
    if path.stat().st_size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    register_optional_formats()
    try:
        # our max_pixels check replaces PIL's warning; PIL's hard error (2x its limit) is caught
        with quiet_pil(), Image.open(path) as img:
            w, h = img.size
            if w == 0 or h == 0:
                raise ImageError(f"{name}: zero size {w}x{h}")
            if problem := over_pixel_limit(name, w, h, max_pixels):
                raise ImageError(problem)
            img.load()
            upright = ImageOps.exif_transpose(img)
            return pil_to_rgb(upright, name), photo_info(img, upright)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        needs = missing_reader(path)
        raise ImageError(
            f"{name}: {needs}" if needs else f"{name}: not an image (unrecognised or unsupported format)"
        ) from exc
    except PermissionError as exc:
        raise ImageError(f"{name}: not readable (permission denied)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt or unreadable"
        raise ImageError(f"{name}: {reason} image file ({exc})") from exc


def read_rgb(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """The original photo as (H, W, 3) uint8 (EXIF orientation applied) and its path, from any source."""
    rgb, path, _ = read_photo(source, max_pixels)
    return rgb, path


def read_photo(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str | None, PhotoInfo]:
    """read_rgb, and the photo's ICC profile and EXIF (orientation 1; empty for arrays)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source)).expanduser()
        rgb, info = _open_file(path, max_pixels)
        return rgb, str(path), info
    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise ImageError(f"image: {source.width}x{source.height} exceeds the limit of {max_pixels} pixels")
        with quiet_pil():
            try:
                source.load()
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
                raise ImageError(f"image: truncated or unreadable image data ({exc})") from exc
            try:
                img = ImageOps.exif_transpose(source)
            except Exception as exc:  # a broken EXIF block in an in-memory image
                raise ImageError(f"image: could not apply the EXIF orientation ({exc})") from exc
            return pil_to_rgb(img, "image"), None, photo_info(source, img)
    if isinstance(source, np.ndarray):
        if source.size > 4 * max_pixels:
            raise ImageError(f"array: shape {source.shape} exceeds the limit of {max_pixels} pixels")
        return array_to_rgb(source, "array"), None, PhotoInfo()
    raise ImageError(f"image source must be a path, a PIL image or a numpy array, got {type(source).__name__}")


def working_size(width: int, height: int, model_pixels: int, multiple: int = 8) -> tuple[int, int]:
    """(w, h) with the aspect ratio of width x height, about model_pixels pixels, multiples of `multiple`."""
    aspect = width / height
    w = max(multiple, round(math.sqrt(model_pixels * aspect) / multiple) * multiple)
    h = max(multiple, round(math.sqrt(model_pixels / aspect) / multiple) * multiple)
    if h == multiple and w * h > model_pixels:  # very wide: keep the budget
        w = max(multiple, round(model_pixels / h / multiple) * multiple)
    if w == multiple and w * h > model_pixels:  # very tall
        h = max(multiple, round(model_pixels / w / multiple) * multiple)
    return w, h


def crop_box(width: int, height: int, w: int, h: int) -> Box:
    """The largest centred box of a width x height image with the aspect ratio w:h."""
    if width * h >= height * w:  # the image is wider than w:h: crop the sides
        bw, bh = max(1, min(width, round(height * w / h))), height
    else:
        bw, bh = width, max(1, min(height, round(width * h / w)))
    x0, y0 = (width - bw) // 2, (height - bh) // 2
    return x0, y0, x0 + bw, y0 + bh


def working_image(original: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """The working image (h, w, 3) uint8: `box` of the original resized to size (w, h) with Lanczos."""
    with quiet_pil():  # PIL's crop warns of bombs too; the pixel limit was checked when the photo was read
        region = Image.fromarray(original).crop(box)
        if region.size != tuple(size):
            region = region.resize(size, Image.Resampling.LANCZOS)
        return np.asarray(region, dtype=np.uint8).copy()


def load_image(
    source: Source,
    size: tuple[int, int] | None = None,
    square: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    model_pixels: int = DEFAULT_MODEL_PIXELS,
    multiple: int = 8,
) -> LoadedImage:
    """Load a photo for inversion: RGB, EXIF-oriented, resized to a working size (multiples of `multiple`).

    Without `size` the working image keeps the photo's aspect ratio with about `model_pixels` pixels;
    `square` centre-crops a square first; `size=(w, h)` forces the working size. The working image
    always covers a centred box of the photo with exactly its aspect ratio (a few pixels may be cropped),
    so an edit pasted back into `box` is not distorted.
    """
    validation.whole_number(multiple, "multiple")
    validation.whole_number(model_pixels, "model_pixels", minimum=multiple * multiple)
    forced = None if size is None else validation.size(size, "size", multiple, MAX_WORKING_SIDE)
    original, path, info = read_photo(source, max_pixels)
    height, width = original.shape[:2]
    if forced is not None:
        w, h = forced
    elif square:
        side = max(multiple, round(math.sqrt(model_pixels) / multiple) * multiple)
        w, h = side, side
    else:
        w, h = working_size(width, height, model_pixels, multiple)
    box = crop_box(width, height, w, h)
    pixels = torch.from_numpy(working_image(original, box, (w, h))).permute(2, 0, 1)[None].float() / 255.0
    return LoadedImage(original=original, pixels=pixels, box=box, sha256=pixel_sha256(original), source=path, info=info)


def model_side(pipe: Any) -> int:
    """The side in pixels of the square images the pipeline's model was trained at (sample_size x VAE factor);
    ValueError if the model's configuration gives a side over MAX_WORKING_SIDE (checked before any allocation)."""
    sample = pipe.unet.config.sample_size
    sample = max(sample) if isinstance(sample, (list, tuple)) and sample else sample
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ValueError(f"the model's unet config has sample_size {sample!r}: expected a positive whole number")
    side = sample * vae_scale_factor(pipe.vae)
    if side > MAX_WORKING_SIDE:
        raise ValueError(
            f"the model's unet config says sample_size {sample}: a working side of {side} pixels, over "
            f"the limit of {MAX_WORKING_SIDE} pixels per side (a damaged or hostile configuration?)"
        )
    return side


def load_for_model(pipe: Any, source: Source, size: tuple[int, int] | None = None, square: bool = False) -> LoadedImage:
    """`load_image` at the working size of the pipeline's model: about model_side(pipe)^2 pixels, sides
    multiples of lcm(8, VAE factor), unless `size` or `square` say otherwise."""
    side = model_side(pipe)
    multiple = math.lcm(8, vae_scale_factor(pipe.vae))
    return load_image(source, size=size, square=square, model_pixels=side * side, multiple=multiple)
