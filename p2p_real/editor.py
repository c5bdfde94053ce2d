"""The public editor: Prompt-to-Prompt generation and editing on a Stable Diffusion pipeline."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from inversion.artifact import Inversion
from inversion.ddim import ddim_scheduler
from inversion.fingerprint import pipeline_fingerprint, scheduler_fingerprint
from inversion.image import MAX_WORKING_SIDE, Source, load_image
from inversion.invert import invert
from inversion.metrics import latent_error, psnr, ssim
from inversion.vae import decode_latents, vae_scale_factor
from masks.local_blend import apply_blend, blend_mask, combine_user_mask
from masks.paste import FEATHER, MaskSource, paste_back, user_mask
from p2p_real.alignment import PromptError, Tokens, tokenize, word_indices
from p2p_real.controllers import Equalizer, P2PController, build_cross_edit
from p2p_real.finite import check_finite
from p2p_real.processor import attention_control
from p2p_real.results import OUTPUT_TYPES, AttentionMaps, EditResult, Reconstruction, mask_images, to_output
from p2p_real.sampling import sample
from p2p_real.windows import CrossWindow, Window

Words = Sequence[str | Sequence[str]]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _guidance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {value!r}")
    return float(value)


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _prompt_list(prompts: str | Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise PromptError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    if empty := [i for i, p in enumerate(prompts) if not p.strip()]:
        raise PromptError(f"prompts must not be empty or blank: {prompts!r} has an empty one at position {empty[0]}")
    return prompts


def _row_words(words: Words, n_rows: int, name: str) -> list[list[str]]:
    """One list of words per row; a (source, target) pair is shared by every target row."""
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise PromptError(f"{name} must give words per prompt, e.g. (['cat'], ['dog']), got {words!r}")
    entries = list(words)
    if len(entries) == 2 and n_rows > 2:
        entries = [entries[0]] + [entries[1]] * (n_rows - 1)
    if len(entries) != n_rows:
        raise PromptError(f"{name} needs one entry per prompt ({n_rows}) or a (source, target) pair, got {words!r}")
    return [[e] if isinstance(e, str) else list(e) for e in entries]


@dataclass
class BlendSpec:
    """Local-blend settings resolved against the prompts."""

    add: torch.Tensor | None  # (rows, tokens) token weights of the blend words
    subtract: torch.Tensor | None
    threshold: float
    start_step: int
    user_mask: torch.Tensor | None  # (1, 1, h, w) at latent size
    mode: str

    @property
    def active(self) -> bool:
        return self.add is not None or self.user_mask is not None


class Editor:
    """Prompt-to-Prompt editing with a diffusers Stable Diffusion pipeline (sampled with DDIM).

    The pipeline is used as it is and left exactly as it was after every call.
    """

    def __init__(
        self, pipe: Any, num_inference_steps: int = 50, guidance_scale: float = 7.5, attention_res: float = 0.25
    ) -> None:
        """`attention_res` is the side of the stored attention maps (heat maps, local blend) as a fraction of
        the latent's side: 1/4 (16x16 at 512 px, as the original code) unless a small model wants finer maps;
        the nearest UNet level with cross-attention is used."""
        parts = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
        missing = [p for p in parts if getattr(pipe, p, None) is None]
        if missing:
            raise ValueError(f"pipe is not a Stable Diffusion pipeline: it has no {', '.join(missing)}")
        self.pipe = pipe
        self.num_inference_steps = _positive_int(num_inference_steps, "num_inference_steps")
        self.guidance_scale = _guidance(guidance_scale)
        self.attention_res = _fraction(attention_res, "attention_res")
        if self.attention_res == 0:
            raise ValueError("attention_res must be a fraction of the latent side in (0, 1], got 0")
        self.scheduler = ddim_scheduler(pipe.scheduler.config)

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    @property
    def latent_channels(self) -> int:
        return self.pipe.unet.config.in_channels

    @property
    def default_size(self) -> tuple[int, int]:
        """(width, height) the model was trained at."""
        side = self.pipe.unet.config.sample_size * vae_scale_factor(self.pipe.vae)
        return side, side

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings (n, tokens, dim) of the prompts, as the pipeline computes them."""
        if hasattr(self.pipe, "encode_prompt"):
            return self.pipe.encode_prompt(list(prompts), self.device, 1, False)[0].to(self.dtype)
        tok = self.pipe.tokenizer
        ids = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        return self.pipe.text_encoder(ids.to(self.device))[0].to(self.dtype)

    def _size(self, height: int | None, width: int | None) -> tuple[int, int]:
        w0, h0 = self.default_size
        height = h0 if height is None else height
        width = w0 if width is None else width
        factor = vae_scale_factor(self.pipe.vae)
        for name, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 8 or v % 8 or v % factor or v > MAX_WORKING_SIDE:
                raise ValueError(
                    f"{name} must be a positive multiple of 8 (and of {factor}) up to {MAX_WORKING_SIDE}, got {v!r}"
                )
        return height // factor, width // factor

    def _start_latent(
        self,
        latents: torch.Tensor | None,
        generator: torch.Generator | int | None,
        latent_hw: tuple[int, int],
    ) -> torch.Tensor:
        shape = (1, self.latent_channels, *latent_hw)
        if latents is not None:
            if not torch.is_tensor(latents) or tuple(latents.shape) != shape:
                got = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
                raise ValueError(f"latents must be a tensor of shape {shape} (one shared z_T), got {got}")
            if not torch.isfinite(latents).all():
                raise ValueError("latents contain NaN or infinite values")
            return latents.to(self.device, self.dtype)
        if isinstance(generator, int) and not isinstance(generator, bool):
            generator = torch.Generator().manual_seed(generator)
        elif generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")
        z = randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)
        return z * self.scheduler.init_noise_sigma

    def _blend_spec(
        self,
        tokens: list[Tokens],
        blend_words: Words | None,
        subtract_words: Words | None,
        threshold: float,
        blend_start: float,
        steps: int,
        mask: torch.Tensor | None,
        mask_mode: str,
    ) -> BlendSpec:
        n_tokens = tokens[0].max_length

        def weights(words: Words | None, name: str) -> torch.Tensor | None:
            if words is None:
                return None
            w = torch.zeros(len(tokens), n_tokens)
            for row, row_words in enumerate(_row_words(words, len(tokens), name)):
                for word in row_words:
                    w[row, word_indices(self.pipe.tokenizer, tokens[row], word)] = 1.0
            return w.to(self.device)

        if mask_mode not in ("replace", "intersect"):
            raise ValueError(f"mask_mode must be 'replace' or 'intersect', got {mask_mode!r}")
        if mask is not None and mask_mode == "intersect" and blend_words is None:
            raise ValueError("mask_mode='intersect' needs blend_words: there is no attention mask to intersect")
        if subtract_words is not None and blend_words is None:
            raise ValueError("subtract_words needs blend_words")
        return BlendSpec(
            add=weights(blend_words, "blend_words"),
            subtract=weights(subtract_words, "subtract_words"),
            threshold=_fraction(threshold, "blend_threshold"),
            start_step=int(steps * _fraction(blend_start, "blend_start")),
            user_mask=None if mask is None else mask.to(self.device, torch.float32),
            mode=mask_mode,
        )

    def run(
        self,
        prompts: list[str],
        start: torch.Tensor,
        uncond: torch.Tensor | Sequence[torch.Tensor],
        *,
        source_pivots: Sequence[torch.Tensor] | None = None,
        edit: str = "auto",
        cross_replace_steps: CrossWindow = 0.8,
        self_replace_steps: Window = 0.4,
        self_replace_max_res: float = 0.25,
        blend_words: Words | None = None,
        subtract_words: Words | None = None,
        blend_threshold: float = 0.3,
        blend_start: float = 0.2,
        equalizer: Equalizer | None = None,
        mask: torch.Tensor | None = None,
        mask_mode: str = "replace",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        progress: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None, AttentionMaps | None]:
        """The edit loop: rows [source, targets] from one start latent (1, C, h, w) under P2P control.

        Returns the final latents, the last local-blend mask (targets, 1, h, w) and the attention maps.
        """
        steps = self.num_inference_steps if num_inference_steps is None else num_inference_steps
        steps = _positive_int(steps, "num_inference_steps")
        guidance = _guidance(self.guidance_scale if guidance_scale is None else guidance_scale)
        tokenizer = self.pipe.tokenizer
        tokens = [tokenize(tokenizer, p) for p in prompts]
        cross_edit = None
        if len(prompts) > 1:
            cross_edit = build_cross_edit(
                tokenizer, tokens[0], tokens[1:], edit, cross_replace_steps, steps, equalizer
            )
        elif equalizer:
            raise PromptError("an equalizer needs at least one target prompt")
        blend = self._blend_spec(
            tokens, blend_words, subtract_words, blend_threshold, blend_start, steps, mask, mask_mode
        )
        latent_hw = tuple(start.shape[-2:])
        controller = P2PController(
            len(prompts), guidance > 1, latent_hw, self.pipe.unet, cross_edit,
            self_replace_steps, self_replace_max_res, steps, store_res=self.attention_res, device=self.device,
            dtype=self.dtype,
        )
        self.scheduler.set_timesteps(steps, device=self.device)
        cond = self.embed(prompts)
        latents = start.to(self.device, self.dtype).expand(len(prompts), -1, -1, -1).clone()
        last_mask: list[torch.Tensor] = []

        def after_step(i: int, latents: torch.Tensor) -> torch.Tensor:
            controller.end_step()
            if source_pivots is not None:  # direct inversion: the source row stays on the pivot trajectory
                latents[:1] = source_pivots[i]
            if blend.active and len(prompts) > 1 and i >= blend.start_step:
                step_mask = self._mask_now(controller, blend, latent_hw)
                last_mask[:] = [step_mask]
                latents = apply_blend(latents, step_mask)
            return latents

        with attention_control(self.pipe.unet, controller):
            latents = sample(
                self.pipe.unet, self.scheduler, latents, cond, uncond, guidance,
                begin_step=controller.begin_step, callback=after_step, progress=progress, desc="editing",
            )
        if blend.active and len(prompts) > 1 and not last_mask:  # blend started after the last step
            last_mask.append(self._mask_now(controller, blend, latent_hw))
        attention = None
        mean = controller.store.mean()
        if mean is not None:
            h, w = controller.store_size
            attention = AttentionMaps(mean.reshape(len(prompts), h, w, -1).cpu(), tokens)
        return latents, (last_mask[0] if last_mask else None), attention

    def _mask_now(self, controller: P2PController, blend: BlendSpec, latent_hw: tuple[int, int]) -> torch.Tensor:
        n_targets = controller.n_rows - 1
        if blend.add is not None and controller.store.total is not None:
            mask = blend_mask(
                controller.store.total, controller.store_size, latent_hw, blend.add, blend.subtract, blend.threshold
            )
        else:
            mask = torch.ones(n_targets, 1, *latent_hw, device=self.device)
        return combine_user_mask(mask, blend.user_mask, blend.mode if blend.add is not None else "replace")

    def uncond_embedding(self) -> torch.Tensor:
        """The embedding of the empty prompt (1, tokens, dim)."""
        return self.embed([""])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [0, 1] from latents; NonFiniteError if the VAE gives NaN or infinity."""
        return check_finite(decode_latents(self.pipe.vae, latents), "the decoded images")

    def generate(
        self,
        prompts: str | Sequence[str],
        edit: str = "auto",
        cross_replace_steps: CrossWindow = 0.8,
        self_replace_steps: Window = 0.4,
        blend_words: Words | None = None,
        blend_threshold: float = 0.3,
        blend_start: float = 0.2,
        equalizer: Equalizer | Mapping[str, Sequence[float]] | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | int | None = None,
        latents: torch.Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        progress: bool = True,
        output_type: str = "pil",
        subtract_words: Words | None = None,
        self_replace_max_res: float = 0.25,
    ) -> EditResult:
        """Synthetic Prompt-to-Prompt: the source prompt and its edits, all from one starting latent.

        Row 0 is exactly what the pipeline makes of the source prompt alone from the same latent.
        """
        prompts = _prompt_list(prompts)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        latent_hw = self._size(height, width)
        start = self._start_latent(latents, generator, latent_hw)
        final, mask, attention = self.run(
            prompts, start, self.uncond_embedding(),
            edit=edit, cross_replace_steps=cross_replace_steps, self_replace_steps=self_replace_steps,
            self_replace_max_res=self_replace_max_res, blend_words=blend_words, subtract_words=subtract_words,
            blend_threshold=blend_threshold, blend_start=blend_start, equalizer=equalizer,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, progress=progress,
        )
        factor = vae_scale_factor(self.pipe.vae)
        size = (latent_hw[1] * factor, latent_hw[0] * factor)
        images = final if output_type == "latent" else to_output(self.decode(final), output_type)
        masks = mask_images(mask, size) if mask is not None else None
        return EditResult(images, prompts, masks, attention, final, {"size": size, "blend_mask": mask})

    @staticmethod
    def _feather(feather: float | None, attention: AttentionMaps | None) -> float:
        """The paste-back feather: as given, else a third of a working-resolution map cell."""
        if feather is not None:
            return feather
        if attention is None:
            return FEATHER
        return max(FEATHER, 1.0 / (3 * min(attention.maps.shape[1:3])))

    def invert(
        self,
        image: Source,
        prompt: str,
        method: str = "null-text",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        progress: bool = True,
        size: tuple[int, int] | None = None,
        square: bool = False,
        num_inner_steps: int = 10,
        epsilon: float = 1e-5,
    ) -> Inversion:
        """Invert a photo (path, PIL image or array) described by `prompt`: "ddim", "null-text",
        "negative-prompt" or "direct". Save the result with `.save(path)`; edit it many times."""
        steps = self.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        return invert(
            self.pipe, self.scheduler, image, prompt, method, steps, guidance, num_inner_steps, epsilon,
            progress, size, square,
        )

    def _replay(self, inv: Inversion) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor], list | None]:
        """Start latent, unconditional embedding(s) and source pivots of an inversion, on the device."""
        if not isinstance(inv, Inversion):
            raise ValueError(f"expected an Inversion (from Editor.invert or Inversion.load), got {type(inv).__name__}")
        inv.check_compatible(
            pipeline_fingerprint(self.pipe), scheduler_fingerprint(self.scheduler), inv.num_inference_steps
        )
        start = inv.latent_T.to(self.device, self.dtype)
        uncond = inv.unconditional(self.embed([inv.prompt]), self.uncond_embedding())
        return start, uncond, inv.source_pivots(start)

    def _working_photo(self, inv: Inversion) -> torch.Tensor:
        """The photo as the model saw it: (1, 3, h, w) in [0, 1] at the working size."""
        return load_image(inv.original, size=inv.size, multiple=1).pixels

    def reconstruct(self, inv: Inversion, progress: bool = True) -> Reconstruction:
        """Sample the photo back from its inversion; report PSNR/SSIM against the photo and the VAE ceiling."""
        start, uncond, pivots = self._replay(inv)
        self.scheduler.set_timesteps(inv.num_inference_steps, device=self.device)
        cond = self.embed([inv.prompt])
        latents = sample(
            self.pipe.unet, self.scheduler, start, cond, uncond, inv.guidance_scale,
            callback=None if pivots is None else (lambda i, z: pivots[i]), progress=progress,
            desc="reconstructing",
        )
        photo = self._working_photo(inv)
        decoded = self.decode(torch.cat([latents, inv.z0.to(self.device, self.dtype)]))
        image, vae_image = to_output(decoded, "pil")
        (photo_pil,) = to_output(photo, "pil")
        return Reconstruction(
            image=image,
            photo=photo_pil,
            vae_image=vae_image,
            psnr=psnr(decoded[0], photo[0]),
            ssim=ssim(decoded[0], photo[0]),
            latent_error=latent_error(latents, inv.z0),
            vae_psnr=psnr(decoded[1], photo[0]),
            vae_ssim=ssim(decoded[1], photo[0]),
            method=inv.method,
        )

    def edit(
        self,
        inv: Inversion,
        targets: str | Sequence[str],
        edit: str = "auto",
        cross_replace_steps: CrossWindow = 0.8,
        self_replace_steps: Window = 0.6,
        blend_words: Words | None = None,
        blend_threshold: float = 0.3,
        blend_start: float = 0.2,
        equalizer: Equalizer | Mapping[str, Sequence[float]] | None = None,
        mask: MaskSource | None = None,
        mask_mode: str = "replace",
        subtract_words: Words | None = None,
        self_replace_max_res: float = 0.5,
        feather: float | None = None,
        progress: bool = True,
        output_type: str = "pil",
    ) -> EditResult:
        """Edit an inverted photo: row 0 is its reconstruction, then one row per target prompt.

        The edits are pasted back onto the original photo at its own resolution through the local-blend
        (or user) mask, feathered (by default with a Gaussian a third of an attention-map cell wide, so the
        map's blocks do not show), so pixels away from the edited region are exactly the photo's. A user
        mask covers the whole photo (white = edit) and replaces or intersects the attention mask.
        """
        targets = _prompt_list(targets)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        start, uncond, pivots = self._replay(inv)
        photo_size = (inv.original.shape[1], inv.original.shape[0])
        user = None if mask is None else user_mask(mask, inv.latent_size, inv.box, photo_size)
        prompts = [inv.prompt, *targets]
        final, latent_mask, attention = self.run(
            prompts, start, uncond, source_pivots=pivots,
            edit=edit, cross_replace_steps=cross_replace_steps, self_replace_steps=self_replace_steps,
            self_replace_max_res=self_replace_max_res, blend_words=blend_words, subtract_words=subtract_words,
            blend_threshold=blend_threshold, blend_start=blend_start, equalizer=equalizer, mask=user,
            mask_mode=mask_mode, num_inference_steps=inv.num_inference_steps, guidance_scale=inv.guidance_scale,
            progress=progress,
        )
        if output_type == "latent":
            return EditResult(final, prompts, None, attention, final, {"size": photo_size, "blend_mask": latent_mask})
        decoded = self.decode(final)
        blend = latent_mask
        if latent_mask is None:  # no blend: the whole working box is the edit
            latent_mask = torch.ones(len(targets), 1, *inv.latent_size)
        full = torch.ones(1, 1, *inv.latent_size)
        pasted, soft = paste_back(
            inv.original, decoded.cpu(), torch.cat([full, latent_mask.float().cpu()]), inv.box,
            feather=self._feather(feather, attention), device=self.device,
        )
        images = torch.from_numpy(pasted).permute(0, 3, 1, 2).float() / 255.0
        masks = [Image.fromarray((m * 255).round().astype(np.uint8)) for m in soft[1:]]
        return EditResult(
            to_output(images, output_type), prompts, masks, attention, final,
            {"size": photo_size, "method": inv.method, "blend_mask": blend},
        )
