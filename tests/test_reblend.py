"""A local-blend mask recomputed at another threshold from an edit's stored attention maps
(p2p_real/editing/reblend.py)."""

import numpy as np
import pytest
import skimage.data
import torch

from p2p_real import Editor, EditSpec
from p2p_real.editing.reblend import blend_masks, photo_masks

STEPS = 4
PROMPT, TARGET = "a photo of a cat sitting on a table", "a photo of a dog sitting on a table"


@pytest.fixture(scope="module")
def edited(tiny_pipe):
    editor = Editor(tiny_pipe, num_inference_steps=STEPS)
    inv = editor.invert(skimage.data.chelsea()[::3, ::3].copy(), PROMPT, method="ddim", progress=False)
    spec = EditSpec(blend_words=(["cat"], ["dog"]), blend_threshold=0.3)
    return editor, editor.edit(inv, TARGET, spec=spec, progress=False)


def test_at_the_edits_own_threshold_the_mask_is_the_one_the_edit_blended_with(edited):
    editor, res = edited
    again = blend_masks(res, editor.pipe.tokenizer)
    assert torch.equal(again, res.info["blend_mask"].cpu())
    assert [np.asarray(m).tolist() for m in photo_masks(res, again)] == [np.asarray(m).tolist() for m in res.masks]


def test_an_edit_without_the_pool_is_recomputed_without_it(edited):
    editor, res = edited
    sharp = editor.edit(res.inversion, TARGET, spec=res.spec.replace(blend_pool=0), progress=False)
    again = blend_masks(sharp, editor.pipe.tokenizer)
    assert torch.equal(again, sharp.info["blend_mask"].cpu())
    assert again.sum() < blend_masks(res, editor.pipe.tokenizer).sum()


def test_a_higher_threshold_gives_a_smaller_mask_inside_the_lower_ones(edited):
    editor, res = edited
    low, mid, high = (blend_masks(res, editor.pipe.tokenizer, t) for t in (0.1, 0.5, 0.95))
    assert low.sum() >= mid.sum() >= high.sum() and low.sum() > high.sum()
    assert bool((high <= mid).all()) and bool((mid <= low).all())


def test_recomputing_at_other_thresholds_leaves_the_result_as_it_was(edited):
    editor, res = edited
    spec, stored = res.spec, res.info["blend_mask"].clone()
    masks = [np.asarray(m).copy() for m in res.masks]
    for threshold in (0.1, 0.95):
        blend_masks(res, editor.pipe.tokenizer, threshold)
    assert res.spec is spec and torch.equal(res.info["blend_mask"], stored)
    assert all(np.array_equal(np.asarray(m), k) for m, k in zip(res.masks, masks))
    assert torch.equal(blend_masks(res, editor.pipe.tokenizer), stored)  # the default is still the edit's own


def test_photo_masks_are_at_the_photos_resolution(edited):
    editor, res = edited
    (mask,) = photo_masks(res, blend_masks(res, editor.pipe.tokenizer, 0.6))
    assert mask.size == res.images[1].size and mask.mode == "L"


def test_an_edit_without_blend_words_has_no_mask_to_recompute(edited):
    editor, res = edited
    plain = editor.edit(res.inversion, TARGET, progress=False)
    assert blend_masks(plain, editor.pipe.tokenizer, 0.5) is None


def test_a_threshold_outside_zero_to_one_is_refused(edited):
    editor, res = edited
    with pytest.raises(ValueError, match="blend_threshold"):
        blend_masks(res, editor.pipe.tokenizer, 1.5)
