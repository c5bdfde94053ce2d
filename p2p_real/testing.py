"""Tiny randomly initialised Stable Diffusion pipelines, built offline in seconds: for this project's tests
and benchmarks, and for the tests of applications built on p2p_real (no download, no GPU).

    pipe = tiny_pipeline()          # 64 px images, 32x32 latents, a 32-dim text encoder, random weights
    editor = Editor(pipe, num_inference_steps=4)
    xl = tiny_sdxl_pipeline()       # the same with SDXL's parts: two text encoders, text-time embedding
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from p2p_real.models.word_tokenizer import build_clip_tokenizer

# Words of the test prompts. "|" splits a word into several tokens: "tigercat" -> "tiger", "cat</w>".
TEST_WORDS = (
    "a an the photo painting of cat dog lion tiger|cat bird car house tree castle gothic old new "
    "on in at and with sitting standing wall table grass street sky field "
    "red green blue|ish yellow|ish white black big small very fluffy furry cute happy "
    "circle square triangle star background"
).split()

TEXT_DIM = 32


def _text_config(tokenizer: Any) -> CLIPTextConfig:
    """A 2-layer, 32-dim CLIP text encoder's config for `tokenizer`."""
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=TEXT_DIM,
    )


def _sharpen(unet: UNet2DConditionModel, factor: float = 4.0) -> None:
    """Random attention is nearly uniform; sharpen it so maps have regions, as a trained model's do."""
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.endswith(("attn2.to_q.weight", "attn2.to_k.weight")):
                param.mul_(factor)


def _tiny_vae() -> AutoencoderKL:
    """A two-level VAE: 64 px images to 32x32 latents."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    ).eval()


def sd_ddim_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """DDIM with Stable Diffusion's training schedule (scaled_linear betas 0.00085..0.012; SD 1.x and SDXL
    share it)."""
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def tiny_components(seed: int = 0, prediction_type: str = "epsilon") -> dict:
    """The parts of a tiny SD pipeline: 64px images, 32x32 latents, cross-attention at 32, 16 and 8."""
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(TEST_WORDS)
    text_encoder = CLIPTextModel(_text_config(tokenizer)).eval()
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=2,
        norm_num_groups=8,
    ).eval()
    _sharpen(unet)
    return {
        "unet": unet,
        "vae": _tiny_vae(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": sd_ddim_scheduler(prediction_type),
    }


def tiny_pipeline(seed: int = 0, prediction_type: str = "epsilon") -> StableDiffusionPipeline:
    """A tiny StableDiffusionPipeline with random weights (no safety checker)."""
    pipe = StableDiffusionPipeline(
        **tiny_components(seed, prediction_type),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


TIME_DIM = 8  # per size/crop number of SDXL's text-time embedding (256 in SDXL)


def tiny_sdxl_components(seed: int = 0) -> dict:
    """The parts of a tiny SDXL pipeline, laid out as SDXL base 1.0's: two CLIP text encoders (the second with
    a projection, whose pooled output joins six size/crop numbers in the UNet's text-time embedding), the
    second tokenizer padding with "!", and a three-level UNet with cross-attention at latent/2 and latent/4
    only. 64 px images, 32x32 latents, token embeddings of 32 + 32 dims, a 32-dim pooled embedding."""
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(TEST_WORDS)
    tokenizer_2 = build_clip_tokenizer(TEST_WORDS)
    tokenizer_2.pad_token = "!"  # OpenCLIP bigG's tokenizer pads with "!", CLIP ViT-L's with its end token
    text_encoder = CLIPTextModel(_text_config(tokenizer)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer_2)).eval()
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2),
        cross_attention_dim=2 * TEXT_DIM,
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_DIM,
        projection_class_embeddings_input_dim=6 * TIME_DIM + TEXT_DIM,
        norm_num_groups=8,
    ).eval()
    _sharpen(unet)
    vae = _tiny_vae()
    vae.register_to_config(scaling_factor=0.13025, force_upcast=True)  # as SDXL's VAE config says
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": sd_ddim_scheduler(),
    }


def tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """A tiny StableDiffusionXLPipeline with random weights (no watermark; zeros for the empty prompt, as SDXL
    base 1.0)."""
    pipe = StableDiffusionXLPipeline(**tiny_sdxl_components(seed), add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
