"""Paste-back at the photo's resolution and user-supplied masks (docs/design.md §3)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from inversion.photos.image import load_image
from masks.local_blend import combine_user_mask
from masks.paste import MaskError, feathered_mask, paste_back, user_mask


@pytest.fixture(scope="module")
def photo():
    """A non-square photo loaded like an inversion would: 451x300, working 80x56 in a centred box."""
    return load_image(skimage.data.chelsea(), model_pixels=64 * 64)


def blob_mask(latent_hw: tuple[int, int]) -> torch.Tensor:
    """A latent-resolution mask: one rectangle in the middle."""
    h, w = latent_hw
    mask = torch.zeros(h, w)
    mask[h // 3 : h // 2, w // 3 : w // 2] = 1.0
    return mask


def box_region(mask: torch.Tensor, photo) -> np.ndarray:
    """The mask's ones, in photo coordinates (nearest), as a bool image of the photo."""
    x0, y0, x1, y1 = photo.box
    up = torch.nn.functional.interpolate(mask[None, None], size=(y1 - y0, x1 - x0), mode="nearest")[0, 0]
    full = np.zeros(photo.original.shape[:2], bool)
    full[y0:y1, x0:x1] = up.numpy() > 0.5
    return full


def grow(region: np.ndarray, pixels: int) -> np.ndarray:
    """Binary dilation of a bool image by a (2 * pixels + 1)-square (negative: erosion)."""
    x = torch.from_numpy(region if pixels >= 0 else ~region).float()[None, None]
    k = 2 * abs(pixels) + 1
    grown = torch.nn.functional.max_pool2d(x, k, stride=1, padding=abs(pixels))[0, 0].numpy() > 0
    return grown if pixels >= 0 else ~grown


def test_paste_back_leaves_pixels_outside_the_dilated_mask_byte_identical(photo):
    w, h = photo.size
    edited = 1.0 - photo.pixels[0].permute(1, 2, 0).numpy()  # a very different image
    mask = blob_mask((h // 2, w // 2))
    result, soft = paste_back(photo.original, edited, mask, photo.box, feather=0.02, dilate=0.02)
    assert result.shape == photo.original.shape and result.dtype == np.uint8 and soft.shape == result.shape[:2]
    changed = (result != photo.original).any(axis=2)
    assert changed.sum() > 0.5 * box_region(mask, photo).sum()
    assert not changed[soft == 0].any()  # byte-identical wherever the mask is 0
    # The support lies within dilation + 3 sigma + one mask cell (bilinear upsampling) of the mask's region.
    side = min(photo.box[2] - photo.box[0], photo.box[3] - photo.box[1])
    cell = side / mask.shape[0]
    reach = int(np.ceil((0.02 + 3 * 0.02) * side + cell)) + 2
    allowed = grow(box_region(mask, photo), reach)
    assert not (soft > 0)[~allowed].any()


def test_paste_back_uses_the_edit_inside_the_mask(photo):
    w, h = photo.size
    gray = np.full((h, w, 3), 128, np.uint8)
    mask = blob_mask((h // 2, w // 2))
    result, soft = paste_back(photo.original, gray, mask, photo.box)
    inside = grow(box_region(mask, photo), -3)
    assert (soft[inside] > 0.97).all()
    assert np.abs(result[inside].astype(int) - 128).max() <= 4


def test_feathering_scales_with_the_box():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :, :8] = 1.0
    widths = []
    for side in (64, 256):
        row = feathered_mask(mask, (side, side), feather=0.05, dilate=0.0)[0, 0, side // 2].numpy()
        widths.append(int(((row > 0.05) & (row < 0.95)).sum()))
    assert widths[0] > 0 and 3.5 <= widths[1] / widths[0] <= 4.5


def test_paste_back_composites_each_edit_of_a_batch(photo):
    w, h = photo.size
    edits = np.stack([np.zeros((h, w, 3), np.float32), np.ones((h, w, 3), np.float32)])
    masks = torch.stack([blob_mask((h, w)), torch.ones(h, w)])[:, None]
    results, softs = paste_back(photo.original, edits, masks, photo.box)
    assert results.shape == (2, *photo.original.shape) and softs.shape == (2, *photo.original.shape[:2])
    x0, y0, x1, y1 = photo.box
    assert (results[1, y0 + 5 : y1 - 5, x0 + 5 : x1 - 5] == 255).all()  # full mask: the whole box is edited
    np.testing.assert_array_equal(results[1, :, :x0], photo.original[:, :x0])  # outside the box: untouched
    assert (softs[1] == 1).sum() > (softs[0] == 1).sum() > 0


def test_user_mask_confines_the_edit(photo):
    w, h = photo.size
    attention = torch.ones(1, 1, h // 2, w // 2)  # the attention mask would allow the whole image
    height, width = photo.original.shape[:2]
    drawn = np.zeros((height, width), np.uint8)
    drawn[:, : width // 3] = 255  # the user paints the left third of the photo
    confined = combine_user_mask(attention, user_mask(drawn, (h // 2, w // 2), photo.box, (width, height)), "replace")
    result, _ = paste_back(photo.original, np.zeros((h, w, 3)), confined, photo.box)
    changed = (result != photo.original).any(axis=2)
    side = photo.box[3] - photo.box[1]
    cell = side / attention.shape[-2]
    # Reach: one cell averaged down, one spread by upsampling, the dilation and 3 sigma of feathering.
    limit = width // 3 + int(2 * cell + (0.02 + 3 * 0.01) * side) + 2
    assert changed[:, photo.box[0] : width // 4].all()
    assert not changed[:, limit:].any()


def test_user_mask_intersects_the_attention_mask():
    attention = torch.zeros(1, 1, 8, 8)
    attention[..., :4, :] = 1.0  # top half
    drawn = np.zeros((80, 80), bool)
    drawn[:, :40] = True  # left half, drawn at another resolution
    both = combine_user_mask(attention, user_mask(drawn, (8, 8)), "intersect")
    expected = torch.zeros(1, 1, 8, 8)
    expected[..., :4, :4] = 1.0
    torch.testing.assert_close(both, expected)


def test_user_mask_file_is_read_as_luminance_with_transparency_as_keep(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = [255, 255, 255, 255]  # opaque white: edit
    rgba[:, 20:] = [255, 255, 255, 0]  # transparent: keep
    path = tmp_path / "mask.png"
    Image.fromarray(rgba, "RGBA").save(path)
    mask = user_mask(path, (4, 4))
    torch.testing.assert_close(mask[0, 0, :, :2], torch.ones(4, 2))
    torch.testing.assert_close(mask[0, 0, :, 2:], torch.zeros(4, 2))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"box": (0, 0, 9999, 10)}, "not inside"),
        ({"mask": torch.ones(3, 4, 4)}, "N = 1 or 1"),
        ({"edited": np.zeros((8, 8, 2))}, "3 colour channels"),
        ({"original": np.zeros((8, 8, 3), np.float32)}, "uint8"),
    ],
)
def test_paste_back_rejects_bad_inputs(kwargs, reason):
    args = {
        "original": np.zeros((16, 16, 3), np.uint8),
        "edited": np.zeros((8, 8, 3)),
        "mask": torch.ones(4, 4),
        "box": (0, 0, 16, 16),
        **kwargs,
    }
    with pytest.raises(MaskError, match=reason):
        paste_back(args["original"], args["edited"], args["mask"], args["box"])


def test_bad_user_mask_files_raise_naming_them(tmp_path):
    text = tmp_path / "mask.png"
    text.write_text("not a mask")
    with pytest.raises(MaskError, match=r"mask\.png: not an image"):
        user_mask(text, (4, 4))
    with pytest.raises(MaskError, match="not found"):
        user_mask(tmp_path / "absent.png", (4, 4))


def test_a_mask_file_is_read_without_pil_warnings_and_held_to_a_pixel_limit(tmp_path, monkeypatch):
    import warnings

    from masks.paste import read_mask_file

    path = tmp_path / "mask.png"
    Image.new("L", (100, 60), 255).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)  # 6000 pixels: PIL warns of a bomb
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_mask_file(path).size == (100, 60)
    with pytest.raises(MaskError, match="mask exceeds the limit"):
        read_mask_file(path, max_pixels=5999)
