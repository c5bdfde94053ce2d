"""What the toy trainer optimises, apart from the plain diffusion loss: the word-to-object attention loss,
min-SNR weights, the learning-rate schedule and the latent centring folded into the VAE (docs/toyworld.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


class AttentionProbe:
    """Attention processor that also keeps head-averaged cross-attention of the layers with side x side queries."""

    def __init__(self, sides: tuple[int, ...]) -> None:
        self.sides = {side * side: side for side in sides}
        self.maps: dict[int, list[torch.Tensor]] = {side: [] for side in sides}
        self.fallback = AttnProcessor2_0()

    def clear(self) -> None:
        for maps in self.maps.values():
            maps.clear()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: object,
        **kwargs: object,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or hidden_states.ndim != 3 or hidden_states.shape[1] not in self.sides:
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        scores = (query.float() @ key.float().transpose(-1, -2)) * attn.scale
        probs = scores.softmax(dim=-1)
        self.maps[self.sides[hidden_states.shape[1]]].append(probs.mean(dim=1))  # (B, pixels, tokens)
        out = (probs.to(value.dtype) @ value).transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def attention_loss(maps: torch.Tensor, token_target: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL(target || attention) per supervised token, averaged: each object word should look at its object.

    maps (B, pixels, tokens) head- and layer-averaged; token_target (B, tokens) target index or -1;
    targets (B, MAX_OBJECTS + 1, pixels), each a distribution over pixels.
    """
    spatial = maps.transpose(1, 2)  # (B, tokens, pixels)
    spatial = spatial / spatial.sum(dim=-1, keepdim=True).clamp_min(1e-8)
    valid = token_target >= 0
    index = token_target.clamp_min(0)[..., None].expand(-1, -1, targets.shape[-1])
    wanted = torch.gather(targets, 1, index)  # (B, tokens, pixels)
    kl = (wanted * (wanted.clamp_min(1e-8).log() - spatial.clamp_min(1e-8).log())).sum(-1)
    count = valid.sum()
    return (kl * valid).sum() / count.clamp_min(1)


@torch.no_grad()
def fold_latent_scale(vae: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make the VAE's latents (z - mean) / std per channel by rewriting its 1x1 quant convolutions.

    The encoder's posterior mean and log-variance and the decoder's first convolution absorb the affine
    map exactly, so images decode as before while the latents the UNet sees are centred and of unit scale
    per channel (plain SD pipelines know only a single scaling_factor, no shift).
    """
    channels = len(mean)
    enc, dec = vae.quant_conv, vae.post_quant_conv
    mean, std = mean.to(enc.weight.device, torch.float64), std.to(enc.weight.device, torch.float64)
    w, b = enc.weight.double(), enc.bias.double()
    w[:channels] /= std[:, None, None, None]
    b[:channels] = (b[:channels] - mean) / std
    b[channels:] -= 2 * std.log()
    enc.weight.copy_(w)
    enc.bias.copy_(b)
    w, b = dec.weight.double(), dec.bias.double()
    dec.bias.copy_(b + w[:, :, 0, 0] @ mean)
    dec.weight.copy_(w * std[None, :, None, None])


def snr_weight(alphas_cumprod: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights for the epsilon loss, min(SNR, gamma) / SNR (all ones when gamma <= 0)."""
    if gamma <= 0:
        return torch.ones_like(alphas_cumprod)
    snr = alphas_cumprod / (1 - alphas_cumprod)
    return snr.clamp(max=gamma) / snr


def pool_targets(targets: torch.Tensor, side: int, new_side: int) -> torch.Tensor:
    """Attention targets (B, K, side * side), each a distribution over pixels, summed onto a coarser grid."""
    if new_side == side:
        return targets
    batch, count = targets.shape[:2]
    grid = targets.reshape(batch * count, 1, side, side)
    factor = side // new_side
    return (F.avg_pool2d(grid, factor) * factor * factor).reshape(batch, count, new_side * new_side)


def cosine_lr(base: float, step: int, progress: float, warmup: int, floor: float = 0.05) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to floor * base as progress goes 0 -> 1."""
    scale = min(1.0, (step + 1) / max(warmup, 1))
    progress = min(max(progress, 0.0), 1.0)
    return base * scale * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def training_noise(
    shape: torch.Size, offset: float, generator: torch.Generator | None, device: torch.device | str
) -> torch.Tensor:
    """Gaussian noise for the diffusion loss, plus `offset` times one normal draw per image and latent channel
    (offset noise, Guttenberg 2023): without it the model never learns to set a scene's mean colour from the
    caption, because the schedule's last step still leaks the mean (docs/toyworld.md)."""
    noise = torch.randn(shape, generator=generator, device=device)
    if offset > 0:
        noise = noise + offset * torch.randn(shape[:2], generator=generator, device=device)[..., None, None]
    return noise
