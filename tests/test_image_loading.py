"""Photo loading (docs/design.md §4): orientation, colour modes, working size and box, and a clear error for
each bad input."""

from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from inversion.photos.image import MAX_WORKING_SIDE, ImageError, load_image, pixel_sha256


def small(image: np.ndarray, step: int = 4) -> np.ndarray:
    return np.ascontiguousarray(image[::step, ::step])


@pytest.fixture
def chelsea() -> np.ndarray:
    return small(skimage.data.chelsea())  # 113 x 76: not square


def test_exif_rotated_photo_is_turned_upright(tmp_path, chelsea):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display after rotating 90 degrees clockwise
    path = tmp_path / "sideways.png"
    Image.fromarray(chelsea).save(path, exif=exif)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.original, np.rot90(chelsea, k=-1))
    assert loaded.size[1] > loaded.size[0]  # portrait after turning


def test_rgba_photo_is_composited_on_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :8, 3] = 255  # left half opaque red, right half fully transparent
    rgba[:8, 8:, 3] = 128  # top-right half transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    original = load_image(path).original
    np.testing.assert_array_equal(original[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(original[15, 15], [255, 255, 255])
    np.testing.assert_array_equal(original[0, 15], [round(200 * 128 / 255 + 255 * 127 / 255)] + [127] * 2)


def test_grayscale_photo_becomes_three_equal_channels(tmp_path):
    gray = small(skimage.data.camera(), 8)
    path = tmp_path / "gray.jpg"
    Image.fromarray(gray).save(path, quality=95)
    original = load_image(path).original
    assert original.shape == (*gray.shape, 3)
    assert (original[..., 0] == original[..., 1]).all() and (original[..., 1] == original[..., 2]).all()


def test_16bit_photo_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).astype(np.uint16).reshape(32, 32)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    original = load_image(path).original
    np.testing.assert_array_equal(original[..., 0], np.round(ramp / 257.0).astype(np.uint8))
    from_array = load_image(np.stack([ramp] * 3, axis=-1)).original
    np.testing.assert_array_equal(from_array, original)


def test_palette_photo_with_transparency_becomes_rgb(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    img.paste(1, (0, 0, 4, 8))
    img.info["transparency"] = 0
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)
    original = load_image(path).original
    np.testing.assert_array_equal(original[0, 0], [40, 50, 60])
    np.testing.assert_array_equal(original[0, 7], [255, 255, 255])  # transparent index -> white


def test_cmyk_photo_becomes_rgb(tmp_path, chelsea):
    path = tmp_path / "print.jpg"
    Image.fromarray(chelsea).convert("CMYK").save(path, quality=95)
    loaded = load_image(path)
    assert loaded.original.shape == chelsea.shape and loaded.original.dtype == np.uint8
    assert np.abs(loaded.original.astype(int) - chelsea).mean() < 8


def test_non_square_photo_keeps_its_aspect_ratio_within_a_centred_box(chelsea):
    loaded = load_image(chelsea, model_pixels=64 * 64)
    w, h = loaded.size
    assert w % 8 == 0 and h % 8 == 0 and 0.75 * 4096 <= w * h <= 1.25 * 4096
    x0, y0, x1, y1 = loaded.box
    assert abs((x1 - x0) / (y1 - y0) - w / h) < 0.02  # the box has the working image's aspect ratio
    assert abs(x0 - (chelsea.shape[1] - x1)) <= 1 and abs(y0 - (chelsea.shape[0] - y1)) <= 1
    assert loaded.pixels.shape == (1, 3, h, w) and loaded.pixels.dtype == torch.float32
    assert loaded.pixels.min() >= 0 and loaded.pixels.max() <= 1


def test_square_crops_the_centre(chelsea):
    loaded = load_image(chelsea, square=True, model_pixels=32 * 32)
    height, width = chelsea.shape[:2]
    assert loaded.size == (32, 32)
    assert loaded.box == ((width - height) // 2, 0, (width - height) // 2 + height, height)


def test_size_forces_the_working_size_and_multiples_are_respected(chelsea):
    assert load_image(chelsea, size=(40, 24)).size == (40, 24)
    assert all(v % 16 == 0 for v in load_image(chelsea, model_pixels=4096, multiple=16).size)
    with pytest.raises(ValueError, match="size"):
        load_image(chelsea, size=(30, 24))


def test_working_image_is_the_box_region_resized(chelsea):
    loaded = load_image(chelsea, size=(32, 32))
    expected = Image.fromarray(chelsea).crop(loaded.box).resize((32, 32), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(loaded.working, np.asarray(expected))


def test_path_pil_and_array_sources_load_identically(tmp_path, chelsea):
    path = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(path)
    from_path, from_pil, from_array = load_image(path), load_image(Image.open(path)), load_image(chelsea)
    assert from_path.source == str(path) and from_array.source is None
    assert from_path.sha256 == from_pil.sha256 == from_array.sha256 == pixel_sha256(chelsea)
    assert torch.equal(from_path.pixels, from_array.pixels)
    assert load_image(chelsea / 255.0).sha256 == from_array.sha256  # float in [0, 1]
    assert load_image(np.flipud(chelsea)).sha256 != from_array.sha256


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _write_truncated_jpeg(path):
    Image.fromarray(skimage.data.astronaut()).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "missing": (None, "not found"),
    "folder": (lambda p: p.mkdir(), "not a file"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "text": (lambda p: p.write_text("hello, not a picture"), "not an image"),
    "truncated": (_write_truncated_jpeg, "truncated"),
    "bomb": (lambda p: p.write_bytes(_png_header_only(30000, 30000)), "decompression bomb"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_each_bad_file_raises_an_image_error_naming_it_and_writes_nothing(tmp_path, kind):
    make, reason = BAD_FILES[kind]
    path = tmp_path / f"{kind}.jpg"
    if make is not None:
        make(path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ImageError, match=reason) as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert sorted(tmp_path.rglob("*")) == before


def test_photo_over_the_pixel_limit_is_refused(tmp_path, chelsea):
    path = tmp_path / "big.png"
    Image.fromarray(chelsea).save(path)
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(path, max_pixels=1000)


BAD_ARRAYS = {
    "channels first": (np.zeros((3, 16, 16), np.uint8), "channels must come last"),
    "two channels": (np.zeros((16, 16, 2), np.uint8), "shape"),
    "zero size": (np.zeros((0, 16, 3), np.uint8), "zero size"),
    "int64": (np.zeros((16, 16, 3), np.int64), "dtype int64"),
    "float out of range": (np.full((16, 16, 3), 255.0), r"\[0, 1\]"),
    "nan": (np.full((16, 16, 3), np.nan), "NaN"),
    "not an image": ([[0, 1], [2, 3]], "path, a PIL image or a numpy array"),
}


@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
def test_each_bad_array_raises_an_image_error(kind):
    array, reason = BAD_ARRAYS[kind]
    with pytest.raises(ImageError, match=reason):
        load_image(array)


def test_the_working_size_has_an_upper_bound(chelsea):
    assert load_image(chelsea, size=(MAX_WORKING_SIDE, 8)).size == (MAX_WORKING_SIDE, 8)
    for size in ((MAX_WORKING_SIDE + 8, 8), (8, 65536), (100_000, 100_000)):
        with pytest.raises(ValueError, match=f"at most {MAX_WORKING_SIDE} pixels per side"):
            load_image(chelsea, size=size)


def test_no_pil_warning_reaches_the_caller_when_a_photo_is_loaded(tmp_path, chelsea, monkeypatch):
    path = tmp_path / "photo.png"
    Image.fromarray(chelsea).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 113x76 = 8588 pixels: PIL warns of a bomb
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opened = Image.open(path)  # not loaded yet: load_image decodes it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path).original.shape == chelsea.shape
        assert load_image(opened).original.shape == chelsea.shape
    opened.close()
