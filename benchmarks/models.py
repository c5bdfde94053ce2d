"""Models for benchmarks: the tiny test pipeline, and the real SD 1.5 architecture with random weights."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from p2p_real.testing import TEST_WORDS, tiny_pipeline
from p2p_real.toyworld.tokenizer import build_clip_tokenizer


def sd15_pipeline(device: str, dtype: torch.dtype, seed: int = 0) -> StableDiffusionPipeline:
    """Stable Diffusion 1.5's architecture (UNet 860M, CLIP ViT-L text encoder, VAE) with random weights.

    It times the same as the real weights; only the tokenizer is the small offline one.
    """
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=64,
            cross_attention_dim=768,
            attention_head_dim=8,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
            )
        )
    # Random weights drift to huge activations; keep them in a range where half precision stays finite.
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.weight.mul_(0.5)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=build_clip_tokenizer(TEST_WORDS), unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.to(device, dtype)
    pipe.vae.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def benchmark_pipeline(model: str, device: str) -> StableDiffusionPipeline:
    """'tiny' (the test kit's pipeline, float32) or 'sd15' (fp16 on CUDA, float32 elsewhere)."""
    if model == "tiny":
        return tiny_pipeline().to(device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return sd15_pipeline(device, dtype)
