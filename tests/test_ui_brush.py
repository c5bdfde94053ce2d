"""The page's brush mask (p2p_real/ui/brush.py, docs/page_tools.md "Brush masks"): what is painted over the photo
becomes a user mask at the photo's resolution, shown over the photo, saved once, and the mask the edit applied."""

import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cli
from inversion.settings import InversionSettings
from p2p_real.commands import options
from p2p_real.editing.reblend import blend_masks
from p2p_real.ui.brush import (
    BRUSH_SIDE,
    applied_mask,
    brush_choices,
    editor_value,
    mask_preview,
    painted_mask,
    save_mask,
)
from p2p_real.ui.choices import EditChoices, edit_command
from tests.families import PHOTO_PROMPT

TARGET = PHOTO_PROMPT.replace("cat", "dog")


def layer(size: tuple[int, int], box: tuple[int, int, int, int] | None) -> Image.Image:
    """A transparent RGBA layer of `size` with an opaque red rectangle `box` (x0, y0, x1, y1) painted on it."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    if box is not None:
        image.paste((255, 48, 48, 255), box)
    return image


def test_nothing_painted_is_no_mask():
    photo = Image.new("RGB", (40, 30), "yellow")
    assert painted_mask(None, (40, 30)) is None
    assert painted_mask({"background": photo, "layers": [], "composite": photo}, (40, 30)) is None
    assert painted_mask({"background": photo, "layers": [layer((40, 30), None)], "composite": photo}, (40, 30)) is None


def test_the_paint_is_a_mask_at_the_photos_resolution():
    # painted on the editor's picture (half the photo's size): the mask covers the same part of the full photo
    value = {"background": None, "layers": [layer((100, 80), (10, 20, 30, 60)), layer((100, 80), (70, 0, 80, 10))]}
    mask = painted_mask(value, (200, 160))
    assert mask.mode == "L" and mask.size == (200, 160)
    values = np.asarray(mask)
    assert set(np.unique(values)) == {0, 255}
    expected = np.zeros((160, 200), dtype=bool)
    expected[40:120, 20:60] = True
    expected[0:20, 140:160] = True  # both layers count
    assert np.array_equal(values == 255, expected)


def test_an_array_layer_counts_its_opaque_pixels():
    painted = np.zeros((8, 10, 4), dtype=np.uint8)
    painted[2:4, 5:7] = (255, 48, 48, 128)  # half-transparent paint is paint
    mask = painted_mask({"layers": [painted]}, (10, 8))
    assert np.array_equal(np.argwhere(np.asarray(mask)), np.argwhere(painted[..., 3]))


def test_layers_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="differ in size"):
        painted_mask({"layers": [layer((10, 8), (0, 0, 2, 2)), layer((12, 8), (0, 0, 2, 2))]}, (10, 8))


def test_the_editor_shows_the_photo_at_most_brush_side_with_nothing_painted(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (3000, 1500), "green").save(path)
    value = editor_value(path)
    assert max(value["background"].size) == BRUSH_SIDE and value["background"].size == (BRUSH_SIDE, BRUSH_SIDE // 2)
    (layer,) = value["layers"]  # one layer to paint on (the editor's brush draws on none without it), empty
    assert layer.size == value["background"].size and painted_mask(value, (3000, 1500)) is None
    assert editor_value(None) is None


def test_the_preview_tints_only_the_painted_part():
    photo = Image.new("RGB", (20, 10), (0, 0, 255))
    mask = Image.new("L", (20, 10), 0)
    mask.paste(255, (0, 0, 5, 10))
    shown = np.asarray(mask_preview(photo, mask)).astype(int)
    assert (shown[:, 5:] == (0, 0, 255)).all()
    assert (shown[:, :5, 0] > 100).all() and (shown[:, :5, 2] < 200).all()
    assert np.array_equal(np.asarray(mask_preview(photo, None)), np.asarray(photo))


def test_a_painted_mask_is_saved_once_and_never_replaced(tmp_path):
    mask = Image.new("L", (20, 10), 0)
    mask.paste(255, (0, 0, 5, 10))
    path = save_mask(mask, tmp_path, "scene")
    assert path.is_absolute() and path.parent == (tmp_path / "masks").resolve() and path.name.startswith("scene-")
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(mask))
    written = path.stat().st_mtime_ns
    assert save_mask(mask.copy(), tmp_path, "scene") == path and path.stat().st_mtime_ns == written
    other = mask.copy()
    other.paste(255, (10, 0, 12, 10))
    assert save_mask(other, tmp_path, "scene") != path
    assert not [p for p in (tmp_path / "masks").iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.fixture(scope="module")
def inverted(sd_editor, photo):
    return sd_editor.invert(photo, PHOTO_PROMPT, method="direct", progress=False)


@pytest.mark.parametrize("mode", ["replace", "intersect"])
def test_the_mask_shown_is_the_mask_the_edit_applied(sd_editor, inverted, photo, tmp_path, mode):
    height, width = photo.shape[:2]
    painted = Image.new("L", (width, height), 0)
    painted.paste(255, (0, 0, width // 2, height))
    path = save_mask(painted, tmp_path, "photo")
    res = sd_editor.edit(inverted, TARGET, blend_words=(["cat"], ["dog"]), mask=path, mask_mode=mode, progress=False)
    attention = blend_masks(res, sd_editor.tokenizer)
    shown = applied_mask(res, attention, path)
    assert torch.equal(shown, res.info["blend_mask"].cpu())
    assert applied_mask(res, attention, None) is attention  # no brush: the attention mask as it is


def test_a_brush_mask_without_blend_words_is_the_mask(sd_editor, inverted, photo, tmp_path):
    height, width = photo.shape[:2]
    painted = Image.new("L", (width, height), 0)
    painted.paste(255, (width // 3, 0, width, height // 2))
    path = save_mask(painted, tmp_path, "photo")
    res = sd_editor.edit(inverted, TARGET, mask=path, progress=False)
    shown = applied_mask(res, None, path)
    assert torch.equal(shown, res.info["blend_mask"].cpu())
    assert 0 < shown.mean() < 1


@pytest.mark.parametrize("mode", ["replace", "intersect"])
def test_the_command_line_edits_with_the_saved_mask_by_its_absolute_path(tmp_path, monkeypatch, mode):
    path = save_mask(Image.new("L", (20, 10), 255), tmp_path / "out", "cat")
    choices = EditChoices("a dog on a wall", ("cat",), ("dog",), mask=path, mask_mode=mode)
    spec = choices.spec()
    assert spec.mask_mode == mode
    settings = InversionSettings("a cat on a wall", "direct", 20, 7.5)
    command = edit_command("cat.jpg", settings, choices.target, spec, ["--model", "toy"], mask=path)
    monkeypatch.chdir(tmp_path)  # the command runs from any folder: the mask is named by its absolute path
    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    assert Path(args.mask).is_absolute() and Path(args.mask).resolve() == path
    assert options.spec_from_args(args, 1) == spec


def test_a_mask_mode_without_a_mask_is_the_default():
    assert EditChoices("a dog", mask_mode="intersect").spec().mask_mode == "replace"


def test_a_saved_mask_comes_back_painted_in_the_editor(tmp_path):
    photo = Image.new("RGB", (200, 160), "yellow")
    mask = Image.new("L", (200, 160), 0)
    mask.paste(255, (20, 40, 60, 120))
    value = editor_value(photo, save_mask(mask, tmp_path, "scene"))
    assert len(value["layers"]) == 1 and value["layers"][0].size == (200, 160)
    assert np.array_equal(np.asarray(painted_mask(value, (200, 160))), np.asarray(mask))


def test_brush_choices_carry_the_saved_mask_and_its_mode(tmp_path):
    choices = EditChoices("a dog", ("cat",), ("dog",))
    assert brush_choices(choices, None, "intersect", tmp_path, "cat") is choices  # nothing painted: no mask
    painted = Image.new("L", (20, 10), 255)
    chosen = brush_choices(choices, painted, "intersect", tmp_path, "cat")
    assert chosen.mask == save_mask(painted, tmp_path, "cat") and chosen.mask_mode == "intersect"
    assert chosen.spec().mask_mode == "intersect" and chosen.target == "a dog"
