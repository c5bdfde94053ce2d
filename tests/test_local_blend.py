"""Local blend (SPEC 3): the mask of the blend words unites source and target, minus the subtract words."""

import pytest
import torch

from masks.local_blend import apply_blend, blend_mask, threshold_mask

H = W = 8
TOKENS = 6


def maps_with(regions: dict[tuple[int, int], tuple[slice, slice]], rows: int = 2) -> torch.Tensor:
    """Maps (rows, pixels, tokens) that are 1 inside each (row, token)'s region and 0 elsewhere."""
    maps = torch.zeros(rows, H, W, TOKENS)
    for (row, token), (ys, xs) in regions.items():
        maps[row, ys, xs, token] = 1.0
    return maps.reshape(rows, H * W, TOKENS)


def token_weights(*tokens: int, rows: int = 2) -> torch.Tensor:
    weights = torch.zeros(rows, TOKENS)
    weights[:, list(tokens)] = 1.0
    return weights


def test_the_mask_is_the_union_of_the_source_and_target_word_regions():
    left, right = (slice(2, 6), slice(0, 2)), (slice(2, 6), slice(6, 8))
    maps = maps_with({(0, 1): left, (1, 2): right})  # source word (token 1) left, target word (token 2) right
    mask = blend_mask(maps, (H, W), (H, W), token_weights(1, 2), threshold=0.5)
    src = threshold_mask(maps[:1, :, 1].reshape(1, 1, H, W), (H, W), 0.5, pool=1)
    tgt = threshold_mask(maps[1:, :, 2].reshape(1, 1, H, W), (H, W), 0.5, pool=1)
    assert torch.equal(mask.bool(), src | tgt)
    assert src.any() and tgt.any() and not (src & tgt).any()  # both halves count, and they are different


@pytest.mark.parametrize("pool", [0, 1, 2])
def test_the_pool_grows_the_word_region_by_its_radius_in_map_cells(pool):
    square = (slice(3, 5), slice(3, 5))
    maps = maps_with({(0, 1): square, (1, 1): square})
    mask = blend_mask(maps, (H, W), (H, W), token_weights(1), threshold=0.5, pool=pool)
    expected = torch.zeros(1, 1, H, W)
    expected[..., 3 - pool : 5 + pool, 3 - pool : 5 + pool] = 1  # pool 1: the reference's 3x3 max-pool
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("row", [0, 1], ids=["in the source", "in the target"])
def test_subtract_words_remove_their_own_unpooled_region_of_either_row(row):
    word, sub = (slice(0, 8), slice(0, 8)), (slice(0, 3), slice(0, 3))
    maps = maps_with({(0, 1): word, (1, 1): word, (row, 4): sub})  # token 4 is the subtract word, in one row
    mask = blend_mask(maps, (H, W), (H, W), token_weights(1), token_weights(4), threshold=0.5)
    expected = torch.ones(1, 1, H, W)
    expected[..., 0:3, 0:3] = 0  # not pooled: exactly the subtract word's region
    assert torch.equal(mask, expected)


def test_one_mask_per_target_row_and_blending_keeps_the_source_row():
    maps = maps_with(
        {(0, 1): (slice(0, 2), slice(0, 2)), (1, 1): (slice(6, 8), slice(6, 8)), (2, 1): (slice(0, 8), slice(0, 8))},
        rows=3,
    )
    mask = blend_mask(maps, (H, W), (H, W), token_weights(1, rows=3), threshold=0.5)
    assert mask.shape == (2, 1, H, W) and mask[1].all() and not mask[0].all()
    latents = torch.randn(3, 4, H, W)
    out = apply_blend(latents, mask)
    assert torch.equal(out[0], latents[0])
    assert torch.equal(out[2], latents[2])  # mask all ones: the target row as it was
    keep = mask[0, 0] == 0
    assert torch.equal(out[1][:, keep], latents[0][:, keep])  # outside the mask: the source row
