"""The paste-back feather of an edit (docs/design.md §3): by default a third of an attention-map cell, so coarse
maps get a softer edge; a feather given in the spec is the one used."""

from __future__ import annotations

import numpy as np
import pytest

from masks.paste import DILATE, FEATHER, feathered_mask
from p2p_real import EditSpec

TARGET = "a photo of a dog sitting on a table"  # the photo's caption: tests/families.py's PHOTO_PROMPT
SPEC = EditSpec(blend_words=(["cat"], ["dog"]), blend_start=0.0, blend_threshold=0.7)  # a mask of part of the photo


@pytest.fixture
def inv(sd_inversions):
    """The photo's negative-prompt inversion by the SD editor (at SPEC's threshold the tiny SDXL's blend mask covers
    nearly the whole photo, which no feather changes)."""
    return sd_inversions["negative-prompt"]


def expected_mask(res, feather: float) -> np.ndarray:
    """The edit's blend mask feathered by `feather`, placed in the photo as 8-bit grey."""
    x0, y0, x1, y1 = res.inversion.box
    soft = feathered_mask(res.info["blend_mask"].float().cpu(), (y1 - y0, x1 - x0), feather, DILATE)[0, 0]
    full = np.zeros(res.inversion.original.shape[:2], dtype=np.float32)
    full[y0:y1, x0:x1] = soft.numpy()
    return (full * 255).round().astype(np.uint8)


def test_the_default_feather_is_a_third_of_an_attention_map_cell(sd_editor, inv):
    res = sd_editor.edit(inv, TARGET, spec=SPEC, progress=False)
    cell = 1.0 / (3 * min(res.attention.maps.shape[1:3]))
    assert cell > 2 * FEATHER  # coarse maps: the cell, not the floor, decides
    got = np.asarray(res.masks[0])
    assert np.array_equal(got, expected_mask(res, cell))
    assert not np.array_equal(got, expected_mask(res, FEATHER))


@pytest.mark.parametrize("feather", [0.0, 0.2])
def test_the_specs_feather_is_the_one_paste_back_uses(sd_editor, inv, feather):
    res = sd_editor.edit(inv, TARGET, spec=SPEC.replace(feather=feather), progress=False)
    got = np.asarray(res.masks[0])
    assert np.array_equal(got, expected_mask(res, feather))
    default = 1.0 / (3 * min(res.attention.maps.shape[1:3]))
    assert not np.array_equal(got, expected_mask(res, default))
