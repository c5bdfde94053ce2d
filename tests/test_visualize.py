"""masks.visualize: heat maps, mask overlays and captioned grids, in plain numpy and PIL."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFont

from masks.visualize import (
    BACKGROUND,
    HEAT_TABLE,
    MAX_CAPTION_LINES,
    colorize,
    grid_height,
    heatmap,
    heatmap_overlay,
    labelled_grid,
    mask_overlay,
    normalize,
    resize_map,
    to_rgb,
    word_heatmaps,
    wrap_caption,
)


def photo(width=40, height=30, color=(40, 120, 200)):
    return Image.new("RGB", (width, height), color)


@pytest.mark.slow
def test_visualize_imports_neither_torch_nor_p2p_real():
    code = "import sys, masks.visualize; print([m for m in ('torch', 'p2p_real', 'matplotlib') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_colormap_runs_from_dark_blue_to_red():
    assert HEAT_TABLE.shape == (256, 3) and HEAT_TABLE.dtype == np.uint8
    low, high = HEAT_TABLE[0], HEAT_TABLE[-1]
    assert low[2] > low[0] and high[0] > high[2]
    assert colorize(np.array([[0.0, 1.0]])).tolist() == [[low.tolist(), high.tolist()]]


def test_normalize_scales_to_unit_range_and_zeroes_constant_maps():
    v = normalize(np.array([[2.0, 4.0], [6.0, 10.0]]))
    assert v.min() == 0.0 and v.max() == 1.0
    assert not normalize(np.full((3, 3), 7.0)).any()
    assert not normalize(np.array([[np.nan, np.nan]])).any()


def test_heatmap_overlay_covers_the_image_at_its_own_size():
    image = photo(40, 30)
    values = np.zeros((4, 5))
    values[1, 2] = 1.0
    out = heatmap_overlay(image, values)
    assert out.size == (40, 30) and out.mode == "RGB"
    assert heatmap_overlay(image, values, alpha=0.0).tobytes() == image.tobytes()
    hot = np.asarray(heatmap(values, (40, 30)))
    assert hot[11, 20, 0] > hot[0, 0, 0]  # the peak is red, the floor blue
    with pytest.raises(ValueError, match="alpha"):
        heatmap_overlay(image, values, alpha=2.0)


def test_resize_map_is_bilinear_and_rejects_non_2d():
    assert resize_map(np.ones((2, 2)), (8, 6)).shape == (6, 8)
    with pytest.raises(ValueError, match="2-D"):
        resize_map(np.ones((2, 2, 2)), (4, 4))


def test_mask_overlay_tints_only_the_masked_region():
    image = photo(20, 10, (0, 0, 0))
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[:, 10:] = 255
    out = np.asarray(mask_overlay(image, Image.fromarray(mask), color=(255, 0, 0), alpha=0.5))
    assert out[:, :10].max() == 0
    assert (out[:, 10:, 0] == 128).all() and out[:, 10:, 1:].max() == 0
    small = Image.fromarray(mask).resize((5, 2))  # masks of another size are resized to the image
    assert mask_overlay(image, small).size == (20, 10)


def test_to_rgb_accepts_arrays_of_every_common_layout():
    assert to_rgb(np.zeros((4, 5), dtype=np.uint8)).size == (5, 4)
    assert to_rgb(np.ones((4, 5, 1))).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(np.zeros((4, 5, 4), dtype=np.uint8)).mode == "RGB"
    with pytest.raises(ValueError, match="shape"):
        to_rgb(np.zeros((4, 5, 2)))


def test_grid_places_captioned_cells_in_aligned_columns():
    rows = [[(photo(40, 30), "photo"), (photo(20, 30), "a dog on a wall")], [None, (photo(20, 30), "mask")]]
    grid = labelled_grid(rows, cell_height=60, pad=4)
    widths = [80, 40]  # each column is as wide as its widest cell at height 60
    assert grid.width == sum(widths) + 3 * 4
    pixels = np.asarray(grid)
    assert (pixels[4:64, 4:84] == (40, 120, 200)).all()  # first cell scaled to 80x60
    assert (pixels[4:64, 4:84] != BACKGROUND).any()
    caption_band = pixels[64:80, 4:84]
    assert (caption_band != BACKGROUND).any()  # the caption is drawn under its image
    second_row = pixels[grid.height - 60 - 30 :, 4:84]
    assert (second_row == BACKGROUND).all()  # a None cell leaves its slot empty


def test_grid_rows_may_differ_in_length_and_empty_grids_are_refused():
    grid = labelled_grid([[(photo(), "a")], [(photo(), "b"), (photo(), "c"), (photo(), "d")]], cell_height=30)
    assert grid.width >= 3 * 40
    with pytest.raises(ValueError, match="at least one image"):
        labelled_grid([[None]])
    with pytest.raises(ValueError, match="cell_height"):
        labelled_grid([[(photo(), "a")]], cell_height=0)


def test_captions_wrap_to_the_cell_and_stop_after_a_few_lines():
    font = ImageFont.load_default()
    lines = wrap_caption("a photo of a very fluffy cat sitting on a wall " * 4, font, 60)
    assert len(lines) == MAX_CAPTION_LINES and lines[-1].endswith("...")
    assert all(font.getlength(line) <= 60 for line in lines[:-1])
    assert font.getlength(wrap_caption("x" * 200, font, 40)[0]) <= 40


def test_word_heatmaps_give_one_cell_per_word_and_grid_height_is_bounded():
    maps = [("cat", np.eye(4)), ("wall", np.ones((4, 4)))]
    cells = word_heatmaps(photo(), maps)
    assert [c for _, c in cells] == ["cat", "wall"] and cells[0][0].size == (40, 30)
    assert grid_height([photo(40, 30)], 320) == 128
    assert grid_height([photo(40, 3000)], 320) == 320
    assert grid_height([np.zeros((200, 10, 3), dtype=np.uint8)], 320) == 200
