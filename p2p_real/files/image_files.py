"""Result images as files people use: PNG, JPEG or WebP, with the photo's ICC profile and EXIF and the
result's parameters (PNG text chunks; JPEG comment and EXIF UserComment; WebP EXIF UserComment).

The format comes from `--format` or from the name's extension ("dog.jpg"); PNG unless said otherwise, since
only a lossless file keeps the pixels away from an edit exactly the photo's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from inversion.photos.metadata import EXIF_IFD, MAX_EXIF_BYTES, PhotoInfo, exif_for_output
from inversion.storage.files import atomic_write

OUTPUT_FORMATS = ("png", "jpg", "webp")
SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
DEFAULT_QUALITY = 95  # JPEG and WebP; PNG is lossless
USER_COMMENT, IMAGE_DESCRIPTION, SOFTWARE = 0x9286, 0x010E, 0x0131
_ASCII = b"ASCII\x00\x00\x00"  # EXIF UserComment's character code: the JSON is written with \u escapes


@overload
def image_format(format: str | None, name: str) -> tuple[str, str]: ...
@overload
def image_format(format: str | None = None, name: None = None) -> tuple[str, None]: ...
def image_format(format: str | None = None, name: str | None = None) -> tuple[str, str | None]:
    """(format, name without its image extension): `format` ("png", "jpg"/"jpeg", "webp"), else the name's
    extension, else "png"; a ValueError when the two disagree or the format is unknown."""
    stem, suffix = name, None
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a file name (a string), got {type(name).__name__}")
    if name is not None:
        suffix = SUFFIXES.get(Path(name).suffix.lower())
        if suffix is not None:
            stem = name[: -len(Path(name).suffix)]
    if format is not None:
        chosen = "jpg" if str(format).lower() == "jpeg" else str(format).lower()
        if chosen not in OUTPUT_FORMATS:
            raise ValueError(f"format {format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        if suffix is not None and suffix != chosen:
            raise ValueError(f"name {name!r} ends in .{suffix} but the format is {chosen}")
        return chosen, stem
    return suffix or "png", stem


def check_quality(quality: int | None) -> int:
    """A JPEG/WebP quality in 1..100 (default DEFAULT_QUALITY)."""
    if quality is None:
        return DEFAULT_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be a whole number from 1 to 100, got {quality!r}")
    return quality


def save_image(
    path: str | os.PathLike,
    image: Image.Image,
    text: dict[str, str],
    format: str = "png",
    quality: int | None = None,
    info: PhotoInfo | None = None,
) -> Path:
    """Write an RGB image atomically in `format` (see image_writer)."""
    return atomic_write(path, image_writer(image, text, format, quality, info), make_folder=True)


def image_writer(
    image: Image.Image,
    text: dict[str, str],
    format: str = "png",
    quality: int | None = None,
    info: PhotoInfo | None = None,
) -> Callable[[Path], None]:
    """Writes an RGB image in `format` to the path it is given, carrying the photo's ICC profile and EXIF
    (`info`, sizes updated) and `text` (its "parameters" JSON and a few readable fields)."""
    fmt, _ = image_format(format)
    picture = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    options: dict[str, Any] = {}
    if info is not None and info.icc_profile:
        options["icc_profile"] = info.icc_profile
    if fmt == "png":
        png = PngInfo()
        for key, value in text.items():
            png.add_text(key, value)
        options["pnginfo"] = png
        exif = exif_for_output(info, picture.size)
    else:
        options["quality"] = check_quality(quality)
        parameters = json.dumps(json.loads(text["parameters"]), sort_keys=True) if "parameters" in text else None
        tags = {SOFTWARE: text["Software"]} if "Software" in text else {}
        if "prompt" in text and text["prompt"].isascii():
            tags[IMAGE_DESCRIPTION] = text["prompt"]
        exif = exif_for_output(
            info, picture.size, tags, {USER_COMMENT: _ASCII + parameters.encode()} if parameters else None
        )
        if fmt == "jpg" and parameters and len(parameters.encode()) <= MAX_EXIF_BYTES:
            options["comment"] = parameters.encode()
    if exif:
        options["exif"] = exif
    return lambda tmp: picture.save(tmp, format=PIL_FORMATS[fmt], **options)


def read_parameters(path: str | os.PathLike) -> dict[str, Any] | None:
    """The parameters a result image carries (PNG text chunk, JPEG comment or EXIF UserComment), or None."""
    with Image.open(path) as img:
        text = getattr(img, "text", {})  # PNG text chunks (PngImageFile only)
        if "parameters" in text:
            return json.loads(text["parameters"])
        comment = img.info.get("comment")
        if comment:
            return json.loads(comment)
        user = img.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
        if isinstance(user, bytes) and user.startswith(_ASCII):
            return json.loads(user[len(_ASCII) :].decode("ascii"))
    return None
