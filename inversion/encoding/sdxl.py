"""Stable Diffusion XL: its text conditioning carried as one tensor, and its UNet called the way SD's is.

SDXL conditions its UNet on three things (diffusers' StableDiffusionXLPipeline): the token embeddings of two
text encoders concatenated along the feature axis (n, 77, 768 + 1280), the second encoder's pooled projection
(n, 1280), and six size/crop "time ids" per row. The toolkit carries the first two as ONE tensor, the token
embeddings followed by the pooled embedding in as many extra rows as it needs (one for SDXL: (n, 78, 2048)),
so that everything written for SD's (n, 77, 768) embeddings (CFG batching, the per-step null-text
embeddings, the artifact) works unchanged. `SDXLUNet` unpacks it and adds the time ids before each UNet
call; `TokenizerPair` makes sure both tokenizers see every word at the same token positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from inversion.validation import PromptError

if TYPE_CHECKING:
    from diffusers.models.modeling_utils import ModelMixin

FAMILY_SD = "sd"  # Stable Diffusion 1.x / 2.x: one text encoder
FAMILY_SDXL = "sdxl"  # Stable Diffusion XL: two text encoders, pooled embedding, size/crop time ids
FAMILY_NAMES = {FAMILY_SD: "Stable Diffusion 1.x/2.x", FAMILY_SDXL: "Stable Diffusion XL"}
# Whether null-text inversion also optimises SDXL's pooled unconditional embedding, besides the token embeddings
# of both encoders (docs/design.md §12: all that the unconditional half of CFG reads; the time ids stay).
OPTIMISE_POOLED = True


def is_sdxl(pipe: Any) -> bool:
    """Whether the pipeline has SDXL's parts: a second text encoder and tokenizer, and a text-time UNet."""
    config = getattr(getattr(pipe, "unet", None), "config", None)
    return (
        getattr(pipe, "text_encoder_2", None) is not None
        and getattr(pipe, "tokenizer_2", None) is not None
        and getattr(config, "addition_embed_type", None) == "text_time"
    )


def model_family(pipe: Any) -> str:
    """ "sdxl" for SDXL pipelines, "sd" for the others."""
    return FAMILY_SDXL if is_sdxl(pipe) else FAMILY_SD


def pooled_dim(pipe: Any) -> int:
    """Length of the pooled text embedding (the second text encoder's projection_dim: 1280)."""
    return int(pipe.text_encoder_2.config.projection_dim)


def pooled_rows(token_dim: int, pooled: int) -> int:
    """Rows of `token_dim` values that hold a pooled embedding of `pooled` values."""
    return math.ceil(pooled / token_dim)


def pack(tokens: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """(n, tokens + k, D): the token embeddings (n, tokens, D), then the pooled ones (n, P) zero-padded to k rows."""
    n, _, dim = tokens.shape
    k = pooled_rows(dim, pooled.shape[-1])
    extra = tokens.new_zeros(n, k * dim)
    extra[:, : pooled.shape[-1]] = pooled.to(tokens)
    return torch.cat([tokens, extra.view(n, k, dim)], dim=1)


def unpack(packed: torch.Tensor, pooled: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(token embeddings (n, tokens, D), pooled embeddings (n, P)) of a packed tensor."""
    k = pooled_rows(packed.shape[-1], pooled)
    return packed[:, :-k], packed[:, -k:].flatten(1)[:, :pooled]


def time_ids(height: int, width: int) -> list[int]:
    """SDXL's size/crop conditioning as its pipeline makes it by default: original size = target size =
    the image's (height, width), crop at (0, 0)."""
    return [height, width, 0, 0, height, width]


class SDXLUNet(torch.nn.Module):
    """SDXL's UNet called like SD's, `unet(x, t, encoder_hidden_states=packed)`: it unpacks the token and
    pooled embeddings and adds the time ids of the image size (latent size x VAE factor)."""

    def __init__(
        self, unet: ModelMixin, pooled: int, vae_scale_factor: int, optimise_pooled: bool | None = None
    ) -> None:
        super().__init__()
        self.unet = unet
        self.pooled = pooled
        self.vae_scale_factor = vae_scale_factor
        self.optimise_pooled = OPTIMISE_POOLED if optimise_pooled is None else optimise_pooled
        self._time_ids: dict[tuple, torch.Tensor] = {}  # made once per size: CUDA graph capture copies nothing

    @property
    def config(self) -> Any:
        """The UNet's config."""
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's dtype."""
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        """The UNet's device."""
        return self.unet.device

    def _ids(self, sample: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        h, w = (int(s) * self.vae_scale_factor for s in sample.shape[-2:])
        key = (h, w, dtype, sample.device)
        if key not in self._time_ids:
            self._time_ids[key] = torch.tensor([time_ids(h, w)], dtype=dtype, device=sample.device)
        return self._time_ids[key].expand(sample.shape[0], -1)

    def forward(self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor, **kwargs: Any) -> Any:
        """The UNet's output for packed embeddings; other keywords go to the UNet as they are."""
        tokens, pooled = unpack(encoder_hidden_states, self.pooled)
        if not self.optimise_pooled:  # null-text: the gradient reaches the token embeddings only
            pooled = pooled.detach()
        added = {"text_embeds": pooled, "time_ids": self._ids(sample, tokens.dtype)}
        return self.unet(sample, timestep, encoder_hidden_states=tokens, added_cond_kwargs=added, **kwargs)


def denoiser(pipe: Any) -> torch.nn.Module:
    """What the sampling and inversion loops call: the UNet itself for SD, an SDXLUNet around it for SDXL."""
    if not is_sdxl(pipe):
        return pipe.unet
    return SDXLUNet(pipe.unet, pooled_dim(pipe), 2 ** (len(pipe.vae.config.block_out_channels) - 1))


class TokenizerPair:
    """SDXL's two tokenizers read as one: every text must split into the same token pieces in both, so that
    position j of the concatenated embedding is token j of both encoders.

    Padding is left out of the comparison: the first tokenizer pads with its end token (CLIP ViT-L), the
    second with "!" (OpenCLIP bigG); both pads start right after the end token, so padding position j maps to
    j in both encoders (`padded_ids` shows the two padded rows agree once the second pad is read as the first).
    Ids and pieces come from the first tokenizer.
    """

    names = ("tokenizer", "tokenizer_2")
    reading = "as tokenizer and tokenizer_2 read it"  # how word errors say which tokenizers were asked

    def __init__(self, first: Any, second: Any) -> None:
        if int(first.model_max_length) != int(second.model_max_length):
            raise PromptError(
                f"SDXL's tokenizers read different lengths ({first.model_max_length} and {second.model_max_length} "
                "tokens); both text encoders must see the same token positions"
            )
        self.first, self.second = first, second
        self.model_max_length = int(first.model_max_length)

    def __len__(self) -> int:
        return len(self.first)

    def __call__(self, text: Any, **kwargs: Any) -> Any:
        """The first tokenizer's encoding; a PromptError naming the text if the second splits it otherwise."""
        a, b = self.first(text, **kwargs), self.second(text, **kwargs)
        if isinstance(text, str):
            self._check(text, a.input_ids, b.input_ids)
        else:
            for item, ids_a, ids_b in zip(text, a.input_ids, b.input_ids):
                self._check(item, ids_a, ids_b)
        return a

    def _check(self, text: str, ids_a: Sequence[int], ids_b: Sequence[int]) -> None:
        pieces_a = self.first.convert_ids_to_tokens(list(ids_a))
        pieces_b = self.second.convert_ids_to_tokens(list(ids_b))
        if pieces_a != pieces_b:
            raise PromptError(
                f"{text!r}: tokenizer_2 reads it as {pieces_b} but tokenizer as {pieces_a}; SDXL's two text encoders "
                "must see every word at the same token positions (load a textual inversion into both tokenizers)"
            )

    def __getattr__(self, name: str) -> Any:
        if name in ("first", "second"):  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.first, name)

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        """Token pieces of the first tokenizer."""
        return self.first.convert_ids_to_tokens(ids)

    def padded_ids(self, prompt: str) -> tuple[list[int], list[int]]:
        """The two rows of ids the text encoders read for `prompt` (padded to model_max_length), with the second
        tokenizer's padding written as the first tokenizer's pad id."""
        rows = []
        for tok in (self.first, self.second):
            enc = tok(prompt, padding="max_length", max_length=self.model_max_length, truncation=True)
            rows.append([i if m else self.first.pad_token_id for i, m in zip(enc.input_ids, enc.attention_mask)])
        return rows[0], rows[1]


@torch.no_grad()
def encode_sdxl(pipe: Any, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    """Packed (n, 77 + k, D) embeddings of the prompts through the pipeline's own encode_prompt (both
    encoders' penultimate layers, the second one's pooled projection; textual inversion and LoRA apply)."""
    tokens, _, pooled, _ = pipe.encode_prompt(
        list(prompts), device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    return pack(tokens, pooled)


def zeros_for_empty_prompt(pipe: Any) -> bool:
    """Whether the SDXL pipeline's unconditional embedding is zeros rather than the encoding of "" (its config's
    force_zeros_for_empty_prompt, True for SDXL base 1.0)."""
    config: Any = getattr(pipe, "config", None)  # a diffusers FrozenDict, or anything a test pipeline has
    value = config.get("force_zeros_for_empty_prompt", False) if hasattr(config, "get") else False
    return bool(value)


def parts_problem(pipe: Any) -> str | None:
    """Why `pipe` cannot be edited (None if it can): it must have Stable Diffusion's parts, and SDXL's second
    text encoder and tokenizer where it has any of SDXL's parts."""
    unet_config = getattr(getattr(pipe, "unet", None), "config", None)
    xl = ("text_encoder_2", "tokenizer_2")
    looks_xl = any(getattr(pipe, p, None) is not None for p in xl) or (
        getattr(unet_config, "addition_embed_type", None) == "text_time"
    )
    if not looks_xl:
        sd_parts = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
        missing = [p for p in sd_parts if getattr(pipe, p, None) is None]
        return f"pipe is not a Stable Diffusion pipeline: it has no {', '.join(missing)}" if missing else None
    if getattr(pipe, "text_encoder", None) is None and getattr(pipe, "text_encoder_2", None) is not None:
        return (
            "pipe is an SDXL refiner (it has only the second text encoder); Prompt-to-Prompt needs a model "
            "with both text encoders, such as stabilityai/stable-diffusion-xl-base-1.0"
        )
    parts = ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
    missing = [p for p in parts if getattr(pipe, p, None) is None]
    if getattr(unet_config, "addition_embed_type", None) != "text_time" and "unet" not in missing:
        missing.append("UNet with SDXL's text-time embedding (addition_embed_type 'text_time')")
    return f"pipe is not an SDXL pipeline: it has no {', '.join(missing)}" if missing else None
