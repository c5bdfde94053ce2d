"""The toy world's text-to-image model: a small Stable Diffusion pipeline in diffusers format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.utils import logging as diffusers_logging
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from p2p_real.testing import sd_ddim_scheduler
from p2p_real.toyworld.captions import build_tokenizer

MODEL_DIR = Path(__file__).resolve().parent / "model"
# Side of the stored attention maps for the toy models, as a fraction of the latent side (Editor's
# attention_res): latent/2, 16x16 at 64 px, rather than the default latent/4, whose 8x8 cells are an
# eighth of the image (docs/toyworld.md).
ATTENTION_RES = 0.5


@dataclass(frozen=True)
class ToyConfig:
    """Sizes of the toy model. The VAE halves the image once, so latent/4 maps are image/8 pixels a side."""

    image_size: int = 128
    vae_channels: tuple[int, ...] = (32, 64)
    vae_layers: int = 1
    vae_groups: int = 8
    latent_channels: int = 4
    unet_channels: tuple[int, int, int, int] = (32, 64, 128, 128)
    unet_layers: int = 1
    unet_heads: int = 4
    unet_groups: int = 8
    text_dim: int = 128
    text_layers: int = 3
    text_heads: int = 4
    text_ff: int = 512

    @property
    def vae_factor(self) -> int:
        """How many image pixels one latent pixel spans, per side."""
        return 2 ** (len(self.vae_channels) - 1)

    @property
    def latent_size(self) -> int:
        """Side of the latent."""
        return self.image_size // self.vae_factor

    @property
    def map_size(self) -> int:
        """Side of the cross-attention maps at latent/4, where the project keeps its attention store."""
        return self.latent_size // 4


PRESETS: dict[str, ToyConfig] = {
    # A larger one for a GPU: 128px images, 64x64x4 latents, cross-attention at 32, 16 (latent/4) and 8.
    "toy": ToyConfig(),
    # The shipped model, trained in an hour on 2 CPU cores: 64px images, 32x32x4 latents, maps at 8x8;
    # about 4x cheaper per image than "toy".
    "mini": ToyConfig(image_size=64, unet_channels=(32, 64, 96, 96), text_dim=96, text_ff=384),
    # A tiny one for tests: 32px images, 16x16 latents, cross-attention at 8, 4 and 2.
    "test": ToyConfig(
        image_size=32,
        vae_channels=(8, 16),
        vae_groups=4,
        unet_channels=(16, 32, 32, 32),
        unet_heads=2,
        unet_groups=8,
        text_dim=32,
        text_layers=2,
        text_heads=2,
        text_ff=64,
    ),
}


def get_config(preset: str | ToyConfig) -> ToyConfig:
    """A preset by name ("mini", "toy" or "test"), or the config itself."""
    if isinstance(preset, ToyConfig):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {tuple(PRESETS)}")
    return PRESETS[preset]


def build_text_encoder(config: ToyConfig, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A small CLIP text transformer (causal, 77 positions) over the toy vocabulary."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.text_dim,
            intermediate_size=config.text_ff,
            num_hidden_layers=config.text_layers,
            num_attention_heads=config.text_heads,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=config.text_dim,
            hidden_act="quick_gelu",
        )
    )


def build_unet(config: ToyConfig) -> UNet2DConditionModel:
    """An SD-shaped UNet: four levels, cross-attention at latent/2, latent/4 and the middle (latent/8)."""
    return UNet2DConditionModel(
        sample_size=config.latent_size,
        in_channels=config.latent_channels,
        out_channels=config.latent_channels,
        block_out_channels=config.unet_channels,
        layers_per_block=config.unet_layers,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=config.text_dim,
        attention_head_dim=config.unet_heads,  # diffusers reads this SD-era name as the number of heads
        norm_num_groups=config.unet_groups,
    )


def build_vae(config: ToyConfig) -> AutoencoderKL:
    """A KL autoencoder that halves the image once per extra block (no attention, for speed)."""
    blocks = len(config.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=config.vae_channels,
        layers_per_block=config.vae_layers,
        latent_channels=config.latent_channels,
        norm_num_groups=config.vae_groups,
        sample_size=config.image_size,
        mid_block_add_attention=False,
        scaling_factor=1.0,
    )


def build_scheduler() -> DDIMScheduler:
    """DDIM with SD's training schedule: scaled_linear betas 0.00085..0.012, epsilon prediction."""
    return sd_ddim_scheduler()


def build_pipeline(preset: str | ToyConfig = "mini", seed: int = 0) -> StableDiffusionPipeline:
    """A freshly initialised (untrained) toy pipeline."""
    config = get_config(preset)
    if config.latent_size % 8:
        raise ValueError(f"latent side {config.latent_size} must be divisible by 8 (four UNet levels)")
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    pipe = StableDiffusionPipeline(
        vae=build_vae(config).eval(),
        text_encoder=build_text_encoder(config, tokenizer).eval(),
        tokenizer=tokenizer,
        unet=build_unet(config).eval(),
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def parameter_counts(pipe: StableDiffusionPipeline) -> dict[str, int]:
    """Parameters of the UNet, text encoder and VAE."""
    parts = {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "vae": pipe.vae}
    return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}


def save_pipeline(pipe: StableDiffusionPipeline, directory: str | Path, half: bool = True) -> Path:
    """save_pretrained as safetensors; `half` stores float16 weights (load with dtype float32 to upcast)."""
    directory = Path(directory)
    modules = (pipe.unet, pipe.text_encoder, pipe.vae)
    dtypes = [next(m.parameters()).dtype for m in modules]
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # casting with .to() warns about modules to keep in float32 (none)
    try:
        if half:
            for module in modules:
                module.to(torch.float16)
        pipe.save_pretrained(directory, safe_serialization=True)
    finally:
        for module, dtype in zip(modules, dtypes):
            module.to(dtype)
        diffusers_logging.set_verbosity(verbosity)
    return directory


def default_model_dir() -> Path:
    """The shipped toy model (p2p_real/toyworld/model/); a clear error if it has not been trained yet."""
    if not (MODEL_DIR / "model_index.json").is_file():
        raise FileNotFoundError(
            f"the toy world model is not in {MODEL_DIR} yet: train it with "
            "`python -m training.toyworld --out DIR` and copy DIR's pipeline files there"
        )
    return MODEL_DIR
