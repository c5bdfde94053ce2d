"""Photo formats beyond Pillow's own: HEIC/HEIF (every iPhone) through pillow-heif, AVIF through Pillow's
plugin (or pillow-heif's, in older versions); and what to say when a photo's format cannot be opened."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

from PIL import features

HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
AVIF_BRANDS = {b"avif", b"avis"}
INSTALL = "pip install 'p2p-real[formats]'"


@functools.cache
def register_optional_formats() -> tuple[str, ...]:
    """Make Image.open read HEIC/HEIF (and AVIF where Pillow cannot) when pillow-heif is installed; returns
    the formats added. Runs once."""
    try:
        pillow_heif = importlib.import_module("pillow_heif")
    except ImportError:
        return ()
    added = ["heif"]
    pillow_heif.register_heif_opener()
    if not features.check("avif") and hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
        added.append("avif")
    return tuple(added)


def container_brand(path: Path) -> bytes | None:
    """The ISO-BMFF brand of a HEIF/AVIF-style file ("heic", "avif", ...), or None for other files."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return None
    return head[8:12] if len(head) == 12 and head[4:8] == b"ftyp" else None


def missing_reader(path: Path) -> str | None:
    """Why a file Pillow could not identify may still be a photo: the plugin its format needs, or None."""
    brand = container_brand(path)
    if brand in HEIF_BRANDS and "heif" not in register_optional_formats():
        return f"a HEIC/HEIF photo, which needs pillow-heif: {INSTALL}"
    if brand in AVIF_BRANDS and not features.check("avif") and "avif" not in register_optional_formats():
        return f"an AVIF photo, which needs a Pillow with AVIF support (pip install -U pillow) or {INSTALL}"
    return None
