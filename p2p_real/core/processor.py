"""The diffusers attention processor that hands every attention call to a P2P controller."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from diffusers.models.attention_processor import Attention

from p2p_real.core.controllers import P2PController

if TYPE_CHECKING:
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel


class P2PAttnProcessor:
    """diffusers' AttnProcessor2_0 (diffusers.models.attention_processor, checked against diffusers 0.42)
    with the attention itself handed to the controller, which edits the target rows' maps.

    `__call__` is AttnProcessor2_0.__call__ line for line, with the same names, except:
      1. the deprecated `scale` argument is not warned about (it is ignored there too);
      2. `F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0,
         is_causal=False)` is `self.controller.attend(query, key, value, attention_mask, is_cross)`, with
         `is_cross = encoder_hidden_states is not None` taken before the self-attention case sets it.
    After a diffusers upgrade, diff the two functions ignoring blank lines (`diff -B`: this copy has none, to keep
    within the 60-line limit of a function): any other change is diffusers' to bring over.
    """

    def __init__(self, controller: P2PController) -> None:
        self.controller = controller

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        is_cross = encoder_hidden_states is not None  # (differs: 2)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = self.controller.attend(query, key, value, attention_mask, is_cross)  # (differs: 2)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        # linear proj
        hidden_states = attn.to_out[0](hidden_states)
        # dropout
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        hidden_states = hidden_states / attn.rescale_output_factor
        return hidden_states


@contextmanager
def attention_control(unet: UNet2DConditionModel, controller: P2PController) -> Iterator[None]:
    """Install P2P processors on every attention layer of `unet` for the block; restore the originals
    afterwards, also when the block raises."""
    saved = dict(unet.attn_processors)
    processor = P2PAttnProcessor(controller)
    # diffusers annotates processors as a union of its own classes; it calls any object with their __call__
    unet.set_attn_processor({name: processor for name in saved})  # type: ignore[misc]
    try:
        yield
    finally:
        unet.set_attn_processor(dict(saved))
