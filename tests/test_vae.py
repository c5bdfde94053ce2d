"""The VAE on small GPUs: half precision with the float32 fallback, tiling above a size, slicing."""

import copy

import pytest
import torch

from inversion.encoding import vae as vae_module
from inversion.encoding.vae import decode_latents, encode_image
from p2p_real.models.placement import set_vae_tiling
from p2p_real.testing import tiny_pipeline


@pytest.fixture
def vae():
    return tiny_pipeline().vae  # tile: 64 px (its sample_size), 32 latent cells; 2 px per cell


def _count_tiled(vae, monkeypatch):
    calls = []
    for name in ("tiled_decode", "_tiled_encode"):
        original = getattr(vae, name)
        monkeypatch.setattr(vae, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    return calls


def test_a_half_precision_vae_that_overflows_decodes_again_in_float32(vae):
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(3e4)  # activations beyond float16's range
    vae.half()
    reference = decode_latents(copy.deepcopy(vae).float(), torch.ones(1, 4, 8, 8))  # the same weights in float32
    out = decode_latents(vae, torch.ones(1, 4, 8, 8))
    assert torch.isfinite(out).all() and torch.equal(out, reference)  # the float32 run's result
    assert vae.dtype == torch.float16  # and the VAE is as it was


def test_a_half_precision_vae_that_does_not_overflow_stays_in_half_precision(vae):
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    reference = decode_latents(vae, z)
    vae.half()
    out = decode_latents(vae, z)
    assert not torch.equal(out, reference) and (out - reference).abs().max() < 1e-2


def test_images_above_the_size_limit_are_tiled_and_the_vae_left_untiled(vae, monkeypatch):
    calls = _count_tiled(vae, monkeypatch)
    decode_latents(vae, torch.zeros(1, 4, 40, 40))  # 80 px: above the tile, below the limit
    assert calls == []
    monkeypatch.setattr(vae_module, "AUTO_TILING_PIXELS", 72 * 72)
    images = decode_latents(vae, torch.zeros(2, 4, 40, 40))
    encode_image(vae, images)
    assert calls == ["tiled_decode", "tiled_decode", "_tiled_encode", "_tiled_encode"]  # sliced: one by one
    assert images.shape == (2, 3, 80, 80) and not vae.use_tiling and not vae.use_slicing


def test_vae_tiling_on_tiles_every_image_larger_than_a_tile_and_off_never(vae, monkeypatch):
    calls = _count_tiled(vae, monkeypatch)
    set_vae_tiling(vae, True)
    decode_latents(vae, torch.zeros(1, 4, 32, 32))  # one tile: not tiled
    decode_latents(vae, torch.zeros(1, 4, 40, 40))
    assert calls == ["tiled_decode"]
    set_vae_tiling(vae, False)
    monkeypatch.setattr(vae_module, "AUTO_TILING_PIXELS", 8 * 8)
    decode_latents(vae, torch.zeros(1, 4, 40, 40))
    assert calls == ["tiled_decode"] and not vae.use_tiling
