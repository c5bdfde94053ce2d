"""What the editor returns: images, masks and the cross-attention maps behind them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from p2p_real.alignment import Tokens

OUTPUT_TYPES = ("pil", "np", "latent")


def _plain(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


@dataclass
class AttentionMaps:
    """Cross-attention per token at the working resolution, averaged over heads, layers and steps."""

    maps: torch.Tensor  # (rows, height, width, tokens), float32, on the CPU
    tokens: list[Tokens]

    def token_map(self, row: int, index: int) -> np.ndarray:
        """Map (height, width) of token position `index` in row `row`."""
        return self.maps[row, :, :, index].numpy()

    def per_word(self, row: int = 0) -> list[tuple[str, np.ndarray]]:
        """(word, map) for each word of the row's prompt; a word's map averages its tokens."""
        tokens = self.tokens[row]
        return [(w, self.maps[row, :, :, list(s)].mean(-1).numpy()) for w, s in zip(tokens.words, tokens.spans)]

    def word(self, word: str, row: int = 0) -> np.ndarray:
        """Map of a word of the row's prompt (case and punctuation ignored; several occurrences averaged)."""
        found = [m for w, m in self.per_word(row) if _plain(w) == _plain(word)]
        if not found:
            raise ValueError(f"word {word!r} is not in prompt {self.tokens[row].prompt!r}")
        return np.mean(found, axis=0)


@dataclass
class EditResult:
    """Row 0 is the source (or the reconstruction of the photo), then one row per target prompt."""

    images: Any  # list[PIL.Image] | np.ndarray (N, H, W, 3) in [0, 1] | latents tensor
    prompts: list[str]
    masks: list[Image.Image] | None = None
    attention: AttentionMaps | None = None
    latents: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)  # "size"; "blend_mask": the last latent mask or None


@dataclass
class Reconstruction:
    """A photo sampled back from its inversion, and how close it came, at the working size."""

    image: Image.Image  # the reconstruction
    photo: Image.Image  # the photo as the model saw it (working size)
    vae_image: Image.Image  # decode(encode(photo)): the best any inversion can do
    psnr: float
    ssim: float
    latent_error: float  # mean squared error of the final latent against z0
    vae_psnr: float
    vae_ssim: float
    method: str

    def report(self) -> str:
        """A few lines for people: the reconstruction against the VAE's ceiling."""
        return (
            f"method          {self.method}\n"
            f"PSNR            {self.psnr:.2f} dB (VAE ceiling {self.vae_psnr:.2f} dB, "
            f"lost to inversion {self.vae_psnr - self.psnr:.2f} dB)\n"
            f"SSIM            {self.ssim:.4f} (VAE ceiling {self.vae_ssim:.4f})\n"
            f"latent MSE      {self.latent_error:.3e}"
        )


def to_output(images: torch.Tensor, output_type: str) -> Any:
    """(N, 3, H, W) float in [0, 1] -> PIL images or a (N, H, W, 3) float array."""
    array = images.permute(0, 2, 3, 1).float().cpu().numpy()
    if output_type == "np":
        return array
    return [Image.fromarray((a * 255).round().astype(np.uint8)) for a in array]


def mask_images(masks: torch.Tensor, size: tuple[int, int]) -> list[Image.Image]:
    """Masks (k, 1, h, w) in [0, 1] -> grayscale PIL images of `size` (width, height), nearest upsampling."""
    up = torch.nn.functional.interpolate(masks.float(), size=(size[1], size[0]), mode="nearest")
    return [Image.fromarray((m[0].cpu().numpy() * 255).round().astype(np.uint8)) for m in up]
