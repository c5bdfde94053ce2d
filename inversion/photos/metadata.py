"""What made a photo the owner's besides its pixels: its ICC colour profile and its EXIF (camera, date, place),
read when the photo is loaded, kept in the inversion and written into every edit of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

ORIENTATION = 0x0112  # the pixels are stored upright once loaded: the orientation becomes 1 (normal)
EXIF_IFD = 0x8769
IMAGE_WIDTH, IMAGE_LENGTH = 0x0100, 0x0101  # IFD0: the size, when a camera writes it there
PIXEL_X, PIXEL_Y = 0xA002, 0xA003  # Exif IFD: the size of the image the EXIF describes
# Pillow reads a PNG's chunks, the iCCP profile decompressed, up to PngImagePlugin.MAX_TEXT_CHUNK (1 MB): a larger
# profile would make every PNG output, and the photo stored in an inversion, unreadable. Dropped, with a note.
MAX_ICC_BYTES = 1 << 20
RGB_SPACES = (b"RGB ",)  # an ICC profile's data colour space (header bytes 16-20) that fits the RGB outputs
MAX_EXIF_BYTES = 60_000  # a JPEG's EXIF segment holds at most 65533 bytes with its header


@dataclass(frozen=True)
class PhotoInfo:
    """A photo's ICC profile and EXIF block ("Exif\\0\\0" + TIFF bytes, orientation 1), either may be None."""

    icc_profile: bytes | None = None
    exif: bytes | None = None
    note: str = ""  # why the photo's profile was not kept (too large, or not an RGB profile), else ""

    def __bool__(self) -> bool:
        return bool(self.icc_profile or self.exif)

    def pil_exif(self) -> Image.Exif:
        """The EXIF as a PIL Exif object (empty without EXIF)."""
        exif = Image.Exif()
        if self.exif:
            exif.load(self.exif)
        return exif


def photo_info(img: Image.Image, upright: Image.Image | None = None) -> PhotoInfo:
    """The ICC profile and EXIF of a decoded image; `upright` is the image after ImageOps.exif_transpose
    (its EXIF lost the orientation tag): the EXIF kept says orientation 1. Unreadable EXIF is dropped."""
    icc, note = usable_icc(img.info.get("icc_profile") or None)
    try:
        exif = (upright or img).getexif()
        had_orientation = ORIENTATION in img.getexif()
        if had_orientation or ORIENTATION in exif:
            exif[ORIENTATION] = 1
        data = exif.tobytes() if len(exif) else None
    except Exception:  # broken EXIF blocks are common; the pixels are what matter
        data = None
    if data is not None and len(data) > MAX_EXIF_BYTES:
        data = None
    return PhotoInfo(icc, data, note)


def usable_icc(icc: Any) -> tuple[bytes | None, str]:
    """(the profile, "") if it can go into the RGB outputs, else (None, why it is left out): larger than
    MAX_ICC_BYTES (outputs would be unreadable) or for another colour space (a CMYK or grey profile describes
    pixels the RGB outputs do not have)."""
    if icc is None:
        return None, ""
    if not isinstance(icc, bytes) or len(icc) < 20:
        return None, "the photo's ICC profile is not readable: left out of the outputs"
    if len(icc) > MAX_ICC_BYTES:
        return None, (
            f"the photo's ICC profile ({len(icc):,} bytes) is over {MAX_ICC_BYTES:,} bytes, more than "
            "PNG readers accept: left out of the outputs (they are sRGB-like as decoded)"
        )
    space = icc[16:20]
    if space not in RGB_SPACES:
        shown = space.decode("ascii", "replace").strip() or "unknown"
        return None, f"the photo's ICC profile is for {shown}, not RGB: left out of the RGB outputs"
    return icc, ""


def exif_for_output(
    info: PhotoInfo | None,
    size: tuple[int, int],
    tags: dict[int, Any] | None = None,
    exif_tags: dict[int, Any] | None = None,
) -> bytes | None:
    """EXIF bytes for an output of `size` (width, height) made from the photo: the photo's EXIF with its size
    tags updated, plus `tags` (IFD0) and `exif_tags` (Exif IFD); None when there is nothing to write or it
    would not fit a JPEG's EXIF segment (then the tags are left out first)."""
    for extra in ((tags, exif_tags), (None, None)):
        exif = info.pil_exif() if info else Image.Exif()
        if IMAGE_WIDTH in exif or IMAGE_LENGTH in exif:
            exif[IMAGE_WIDTH], exif[IMAGE_LENGTH] = size
        sub = exif.get_ifd(EXIF_IFD)
        if PIXEL_X in sub or PIXEL_Y in sub:
            sub[PIXEL_X], sub[PIXEL_Y] = size
        exif.update(extra[0] or {})
        sub.update(extra[1] or {})
        if not len(exif) and not sub:
            return None
        data = exif.tobytes()
        if len(data) <= MAX_EXIF_BYTES:
            return data
    return None
