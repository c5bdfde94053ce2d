"""Models for benchmarks: the tiny test pipelines (SD and SDXL), and the real SD 1.5 and SDXL architectures
with random weights."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from p2p_real.models.word_tokenizer import build_clip_tokenizer
from p2p_real.testing import TEST_WORDS, sd_ddim_scheduler, tiny_pipeline, tiny_sdxl_pipeline


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
        vae = _sd_vae(sample_size=512)
        text_encoder = _clip_vit_l()
    pipe = StableDiffusionPipeline(
        **_parts(unet, vae, text_encoder), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    return _placed(pipe, device, dtype)


def _parts(unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel) -> dict[str, object]:
    """The parts SD and SDXL pipelines share: the models given (the UNet calmed), the small offline tokenizer and
    the DDIM scheduler of SD's betas."""
    _calm(unet)
    tokenizer = build_clip_tokenizer(TEST_WORDS)
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": sd_ddim_scheduler(),
    }


def _sd_vae(sample_size: int, **config: object) -> AutoencoderKL:
    """Stable Diffusion's VAE architecture (SD 1.x and SDXL share it; SDXL changes the scale and upcasts)."""
    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=sample_size,
        **config,
    )


def _clip_text_config(width: int, layers: int, heads: int, act: str) -> CLIPTextConfig:
    """A CLIP text encoder's config at CLIP's vocabulary and 77 tokens (MLP 4x wide, projection as wide)."""
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=width,
    )


def _clip_vit_l() -> CLIPTextModel:
    """CLIP ViT-L/14's text encoder (SD 1.x's, and SDXL's first)."""
    return CLIPTextModel(_clip_text_config(768, layers=12, heads=12, act="quick_gelu"))


def _placed(
    pipe: StableDiffusionPipeline | StableDiffusionXLPipeline, device: str, dtype: torch.dtype
) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """The pipeline on `device` in `dtype`, its VAE in float32 (as load_pipeline keeps a VAE whose config asks
    for it, and as the benchmarks always ran it), progress bars off."""
    pipe.to(device, dtype)
    pipe.vae.to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _calm(unet: torch.nn.Module) -> None:
    """Random weights drift to huge activations; keep them in a range where half precision stays finite."""
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.weight.mul_(0.5)


def sdxl_pipeline(device: str, dtype: torch.dtype, seed: int = 0) -> StableDiffusionXLPipeline:
    """Stable Diffusion XL base 1.0's architecture (UNet 2.6B, CLIP ViT-L and OpenCLIP bigG text encoders, VAE
    with force_upcast) with random weights, at 1024 px; only the tokenizers are the small offline ones."""
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=128,
            block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            layers_per_block=2,
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            use_linear_projection=True,
            cross_attention_dim=2048,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        vae = _sd_vae(sample_size=1024, scaling_factor=0.13025, force_upcast=True)
        text_encoder = _clip_vit_l()
        text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(1280, layers=32, heads=20, act="gelu"))  # bigG
    tokenizer_2 = build_clip_tokenizer(TEST_WORDS)
    tokenizer_2.pad_token = "!"
    pipe = StableDiffusionXLPipeline(
        **_parts(unet, vae, text_encoder), text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, add_watermarker=False
    )
    return _placed(pipe, device, dtype)


MODELS = ("tiny", "sd15", "tiny-sdxl", "sdxl")


def benchmark_pipeline(model: str, device: str) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """'tiny' / 'tiny-sdxl' (the test kit's pipelines, float32), 'sd15' or 'sdxl' (fp16 on CUDA, float32
    elsewhere)."""
    if model == "tiny":
        return tiny_pipeline().to(device)
    if model == "tiny-sdxl":
        return tiny_sdxl_pipeline().to(device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    if model == "sdxl":
        return sdxl_pipeline(device, dtype)
    if model != "sd15":
        raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
    return sd15_pipeline(device, dtype)
