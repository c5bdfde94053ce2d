"""P2PAttnProcessor is diffusers' AttnProcessor2_0 with the attention handed to the controller
(p2p_real/core/processor.py): with nothing to edit, both give the same output on the same attention module, for
self- and cross-attention, with and without a mask, 3-D tokens and 4-D feature maps. A diffusers upgrade that
changes AttnProcessor2_0 fails here until the change is brought over."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from p2p_real.core.controllers import P2PController
from p2p_real.core.processor import P2PAttnProcessor

BATCH, TOKENS, DIM, TEXT_DIM = 2, 6, 16, 12


def controller(unet) -> P2PController:
    """A real controller for two rows, without guidance, at a step outside every injection window."""
    ctrl = P2PController(BATCH, False, (8, 8), unet, None, 0.0, 0.5, 1)
    ctrl.begin_step(0)
    return ctrl


def both(attn: Attention, unet, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        theirs = attn(*args, **kwargs)
        attn.set_processor(P2PAttnProcessor(controller(unet)))
        ours = attn(*args, **kwargs)
    return ours, theirs


def module(**options) -> Attention:
    torch.manual_seed(0)
    attn = Attention(query_dim=DIM, heads=2, dim_head=8, **options)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)  # not the initialisation's zeros / ones, so every parameter counts
    return attn.eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(BATCH, 64, DIM, generator=g)  # an 8x8 map of tokens
    text = torch.randn(BATCH, TOKENS, TEXT_DIM, generator=g)
    mask = torch.zeros(BATCH, 1, TOKENS)
    mask[:, :, -2:] = -10000.0  # the last two text tokens hidden, as diffusers' additive masks do
    return hidden, text, mask


@pytest.mark.parametrize("masked", [False, True])
def test_cross_attention_equals_attn_processor_2_0(tiny_pipe, masked):
    hidden, text, mask = inputs()
    attn = module(cross_attention_dim=TEXT_DIM)
    ours, theirs = both(
        attn, tiny_pipe.unet, hidden, encoder_hidden_states=text, attention_mask=mask if masked else None
    )
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    if masked:  # the mask did something, so it was passed on
        unmasked, _ = both(attn, tiny_pipe.unet, hidden, encoder_hidden_states=text)
        assert (unmasked - ours).abs().max() > 1e-3


@pytest.mark.parametrize("masked", [False, True])
def test_self_attention_equals_attn_processor_2_0(tiny_pipe, masked):
    hidden, _, _ = inputs()
    mask = torch.zeros(BATCH, 1, hidden.shape[1])
    mask[:, :, :8] = -10000.0
    ours, theirs = both(module(), tiny_pipe.unet, hidden, attention_mask=mask if masked else None)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_feature_maps_with_group_norm_and_residual_equal_attn_processor_2_0(tiny_pipe):
    """The VAE's attention: a 4-D input, group norm, a residual connection and an output rescale."""
    hidden = torch.randn(BATCH, DIM, 8, 8, generator=torch.Generator().manual_seed(2))
    attn = module(norm_num_groups=4, residual_connection=True, rescale_output_factor=2.0, bias=True)
    ours, theirs = both(attn, tiny_pipe.unet, hidden)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_normalised_queries_and_keys_equal_attn_processor_2_0(tiny_pipe):
    hidden, text, _ = inputs()
    attn = module(cross_attention_dim=TEXT_DIM, qk_norm="layer_norm", cross_attention_norm="layer_norm")
    ours, theirs = both(attn, tiny_pipe.unet, hidden, encoder_hidden_states=text)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
