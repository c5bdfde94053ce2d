"""Tiny randomly initialised Stable Diffusion pipelines, built offline in seconds: for this project's tests
and benchmarks, and for the tests of applications built on p2p_real (no download, no GPU).

    pipe = tiny_pipeline()          # 64 px images, 32x32 latents, a 32-dim text encoder, random weights
    editor = Editor(pipe, num_inference_steps=4)
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from p2p_real.toyworld.tokenizer import build_clip_tokenizer

# Words of the test prompts. "|" splits a word into several tokens: "tigercat" -> "tiger", "cat</w>".
TEST_WORDS = (
    "a an the photo painting of cat dog lion tiger|cat bird car house tree castle gothic old new "
    "on in at and with sitting standing wall table grass street sky field "
    "red green blue|ish yellow|ish white black big small very fluffy furry cute happy "
    "circle square triangle star background"
).split()

TEXT_DIM = 32


def tiny_components(seed: int = 0, prediction_type: str = "epsilon") -> dict:
    """The parts of a tiny SD pipeline: 64px images, 32x32 latents, cross-attention at 32, 16 and 8."""
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(TEST_WORDS)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
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
    ).eval()
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
    # Random attention is nearly uniform; sharpen it so maps have regions, as a trained model's do.
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.endswith(("attn2.to_q.weight", "attn2.to_k.weight")):
                param.mul_(4.0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    ).eval()
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
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
