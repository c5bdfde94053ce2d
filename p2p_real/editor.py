"""The public editor: Prompt-to-Prompt generation and editing on a Stable Diffusion (1.x/2.x or XL) pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from inversion import validation
from inversion.artifact import Inversion
from inversion.cache import InversionCache
from inversion.devices import pipeline_device
from inversion.encoding import sdxl
from inversion.encoding.prompts import encode_prompts, encode_unconditional, prompt_tokenizer
from inversion.encoding.vae import decode_latents
from inversion.fingerprint import ADAPTERS
from inversion.loops.ddim import ddim_scheduler
from inversion.loops.null_text import EPSILON, INNER_STEPS
from inversion.photos.image import Source, model_side
from inversion.settings import DEFAULT_GUIDANCE, DEFAULT_STEPS, InversionSettings
from masks.paste import MaskSource
from p2p_real.core.edit_plan import plan_edit, prompt_list
from p2p_real.core.finite import check_finite
from p2p_real.defaults import DEFAULT_ATTENTION_RES
from p2p_real.editing.edit_loop import Cancelled, StepCallback, steps_of
from p2p_real.editing.inverting import invert_photo
from p2p_real.editing.photo_edit import edit_photo
from p2p_real.editing.reconstruction import reconstruct_photo
from p2p_real.editing.sweep import DEFAULT_BATCH, SweepResult, run_sweep
from p2p_real.editing.synthetic import Sampling, generate_rows
from p2p_real.files.results import EditResult, Reconstruction
from p2p_real.spec import CrossWindow, EditSpec, Equalizer, Window, Words, given_spec, settings_in

__all__ = ["Cancelled", "Editor", "StepCallback"]


class Editor:
    """Prompt-to-Prompt editing with a diffusers Stable Diffusion 1.x/2.x or XL pipeline (sampled with DDIM).

    The pipeline is used as it is and left exactly as it was after every call.
    """

    def __init__(
        self,
        pipe: Any,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        attention_res: float = DEFAULT_ATTENTION_RES,
    ) -> None:
        """`attention_res` is the side of the stored attention maps (heat maps, local blend) as a fraction of
        the latent's side: 1/4 (16x16 at 512 px, as the original code) unless a small model wants finer maps
        (the toy-world model: p2p_real.toyworld.model.ATTENTION_RES); the nearest UNet level with
        cross-attention is used."""
        problem = sdxl.parts_problem(pipe)
        if problem:
            raise ValueError(problem)
        self.pipe = pipe
        self.num_inference_steps = validation.steps(num_inference_steps, "num_inference_steps")
        model_side(pipe)  # the model's configured size within the working-size limit, before any work
        self.guidance_scale = validation.number(guidance_scale, "guidance_scale", minimum=0)
        self.attention_res = validation.side_fraction(attention_res, "attention_res")
        self.scheduler = ddim_scheduler(pipe.scheduler.config)
        self._cancelled = False

    @property
    def device(self) -> torch.device:
        """Where the editor computes: the UNet's execution device (the GPU also when the pipeline is
        CPU-offloaded, where the UNet's own `.device` is the CPU or "meta")."""
        return pipeline_device(self.pipe)

    @property
    def is_sdxl(self) -> bool:
        """Whether the pipeline is Stable Diffusion XL (two text encoders, pooled embeddings, size/crop ids)."""
        return sdxl.is_sdxl(self.pipe)

    @property
    def denoiser(self) -> torch.nn.Module:
        """What the loops call as `unet(x, t, encoder_hidden_states=...)`: the UNet, or for SDXL the UNet
        taking packed embeddings and adding the size/crop time ids (`inversion.encoding.sdxl.SDXLUNet`)."""
        return sdxl.denoiser(self.pipe)

    @property
    def tokenizer(self) -> Any:
        """The tokenizer prompts and words are aligned with (multi-vector textual-inversion tokens expanded
        as the pipeline's encode_prompt expands them)."""
        return prompt_tokenizer(self.pipe)

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's dtype."""
        return self.pipe.unet.dtype

    @property
    def latent_channels(self) -> int:
        """Channels of the UNet's latents (4 for Stable Diffusion)."""
        return self.pipe.unet.config.in_channels

    @property
    def default_size(self) -> tuple[int, int]:
        """(width, height) the model was trained at."""
        side = model_side(self.pipe)
        return side, side

    def cancel(self) -> None:
        """Stop the invert / edit / generate call in progress after its current step: it raises Cancelled.
        Call it from a step callback or from another thread."""
        self._cancelled = True

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text embeddings (n, tokens, dim) of the prompts, as the pipeline computes them, in the UNet's dtype
        (SDXL: both encoders' token embeddings, then the pooled one, `inversion.encoding.sdxl.pack`)."""
        return encode_prompts(self.pipe, prompts).to(self.dtype)

    def uncond_embedding(self) -> torch.Tensor:
        """The unconditional embedding (1, tokens, dim) the pipeline uses without a negative prompt: the empty
        prompt's, or zeros for an SDXL model whose config says force_zeros_for_empty_prompt (SDXL base)."""
        return encode_unconditional(self.pipe).to(self.dtype)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [0, 1] from latents; NonFiniteError if the VAE gives NaN or infinity."""
        return check_finite(decode_latents(self.pipe.vae, latents), "the decoded images")

    def check(
        self, prompts: str | Sequence[str], spec: EditSpec | None = None, num_inference_steps: int | None = None
    ) -> None:
        """Check prompts and every word of the settings before any slow work (inverting takes minutes).

        Args:
            prompts: the source prompt (a photo's caption), then the target prompts.
            spec: the edit settings (default: EditSpec()).
            num_inference_steps: the steps the edit will run (per-word windows are checked against them).

        Raises:
            PromptError (a ValueError) naming the prompt or word and the setting it came from, as the spec
            spells it: a prompt too long for the text encoder, a word in no prompt, prompts that a replace
            edit cannot line up, a per-target list of the wrong length.
        """
        plan_edit(self.tokenizer, prompt_list(prompts), spec or EditSpec(), steps_of(self, num_inference_steps))

    def model_parameters(self) -> dict[str, Any]:
        """The model (with the LoRAs and embeddings load_pipeline added, if any) and where it ran, for a
        result's parameters."""
        name = getattr(self.pipe, "name_or_path", None)
        adapters = getattr(self.pipe, ADAPTERS, None)
        return {
            "model": str(name) if name else None,
            "model_family": sdxl.model_family(self.pipe),
            **({"adapters": adapters} if adapters else {}),
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        edit: str | None = None,
        cross_replace_steps: CrossWindow | None = None,
        self_replace_steps: Window | None = None,
        blend_words: Words | None = None,
        blend_threshold: float | None = None,
        blend_start: float | None = None,
        equalizer: Equalizer | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | int | None = None,
        latents: torch.Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        progress: bool = True,
        output_type: str = "pil",
        subtract_words: Words | None = None,
        self_replace_max_res: float | None = None,
        blend_pool: int | None = None,
        spec: EditSpec | None = None,
        callback_on_step_end: StepCallback | None = None,
    ) -> EditResult:
        """Synthetic Prompt-to-Prompt: the source prompt and its edits, all from one starting latent.

        Row 0 is exactly what the pipeline makes of the source prompt alone from the same latent.

        Args:
            prompts: the source prompt, then one or more target prompts.
            edit, cross_replace_steps, self_replace_steps, blend_words, blend_threshold, blend_start,
                equalizer, subtract_words, self_replace_max_res, blend_pool: the edit settings (see EditSpec). Those
                given override `spec`; the others come from `spec`, else EditSpec.synthetic() (cross 0.8,
                self 0.4 at latent/4, blend threshold 0.3 from 0.2 of the steps).
            num_inference_steps: DDIM steps (default: the editor's, 50).
            guidance_scale: classifier-free guidance scale (default: the editor's, 7.5).
            generator: a torch.Generator or an int seed for the shared starting noise.
            latents: the shared starting latent z_T (1, C, h, w) instead of drawing one.
            height, width: image size, multiples of 8 up to 2048 (default: the model's own).
            progress: show a progress bar.
            output_type: "pil" (list of images), "np" ((N, H, W, 3) floats in [0, 1]) or "latent".
            spec: all edit settings at once; keyword arguments given above override it.
            callback_on_step_end: called after every step as diffusers calls it,
                `callback(editor, step, timestep, {"latents": latents, "blend_mask": mask or None})` (the
                local-blend mask the step made); a returned {"latents": ...} replaces the latents;
                `editor.cancel()` stops the call (it raises Cancelled).

        Returns:
            EditResult: images (row 0 the source), masks when blending, per-word attention maps.
        """
        spec = (given_spec(spec) or EditSpec.synthetic()).updated(**settings_in(locals()))
        sampling = Sampling(num_inference_steps, guidance_scale, generator, latents, height, width)
        return generate_rows(self, prompts, spec, sampling, progress, output_type, callback_on_step_end)

    def invert(
        self,
        image: Source,
        prompt: str,
        method: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        progress: bool = True,
        size: tuple[int, int] | None = None,
        square: bool = False,
        num_inner_steps: int = INNER_STEPS,
        epsilon: float = EPSILON,
        *,
        cache: InversionCache | None = None,
        name: str | None = None,
        callback_on_step_end: StepCallback | None = None,
        compile: bool = False,
    ) -> Inversion:
        """Invert a photo so that it can be edited many times. Save the result with `.save(path)`.

        Args:
            image: the photo: a file path, a PIL image or an (H, W, 3) array.
            prompt: its caption (the source prompt of every edit).
            method: "direct" (default), "null-text", "null-text-fast", "negative-prompt" or "ddim"
                (inversion.methods; README, "Choosing an inversion method", has the evidence for the default).
            num_inference_steps: DDIM steps (default: the editor's, 50); edits replay the same steps.
            guidance_scale: guidance the edits will use (default: the editor's, 7.5).
            progress: show progress bars.
            size: working (width, height), multiples of 8 (default: the photo's aspect ratio at about the
                model's pixel count).
            square: centre-crop a square working image.
            num_inner_steps, epsilon: null-text's Adam steps per step and early-stop loss.
            cache: reuse an inversion saved there that fits the photo, these settings and the model;
                otherwise invert and save the result there.
            name: the file name stem in the cache (default: the photo file's stem).
            callback_on_step_end: called after every inversion step as
                `callback(editor, step, timestep, {"latents": ..., "stage": "ddim" | "null-text", "loss": ...})`
                (its return value is not used); `editor.cancel()` stops inverting (it raises Cancelled).
            compile: run the inversion's UNet passes through torch.compile (same result up to float rounding;
                a one-off compilation that pays only over many passes, docs/inversion_speed.md).

        Returns:
            Inversion: start latent, per-step data and the original photo.
        """
        settings = InversionSettings(prompt, method, num_inference_steps, guidance_scale, size, square).resolved(
            self.num_inference_steps, self.guidance_scale
        )
        return invert_photo(
            self, image, settings, num_inner_steps, epsilon, progress, cache, name, callback_on_step_end, compile
        )

    def reconstruct(self, inv: Inversion, progress: bool = True) -> Reconstruction:
        """Sample the photo back from its inversion and measure how close it comes.

        Args:
            inv: an inversion made with this pipeline's model (Editor.invert or Inversion.load).
            progress: show a progress bar.

        Returns:
            Reconstruction: the image, PSNR/SSIM against the photo at the working size, and the VAE's
            own reconstruction (the ceiling any inversion can reach); `.report()` prints them with a verdict.
            For an inversion whose source row follows its pivots (direct), whose reconstruction is exact by
            construction, it also holds plain DDIM's reconstruction from the same start (`drift_image`,
            `drift_psnr`): the drift the pivots correct, larger for a caption that does not fit the photo.
        """
        return reconstruct_photo(self, inv, progress)

    def edit(
        self,
        inv: Inversion,
        targets: str | Sequence[str],
        *,
        edit: str | None = None,
        cross_replace_steps: CrossWindow | None = None,
        self_replace_steps: Window | None = None,
        blend_words: Words | None = None,
        blend_threshold: float | None = None,
        blend_start: float | None = None,
        equalizer: Equalizer | None = None,
        mask: MaskSource | None = None,
        mask_mode: str | None = None,
        subtract_words: Words | None = None,
        self_replace_max_res: float | None = None,
        feather: float | None = None,
        progress: bool = True,
        output_type: str = "pil",
        blend_pool: int | None = None,
        spec: EditSpec | None = None,
        callback_on_step_end: StepCallback | None = None,
        keep_trajectory: bool = True,
    ) -> EditResult:
        """Edit an inverted photo: row 0 is its reconstruction, then one row per target prompt.

        The edits are pasted back onto the original photo at its own resolution through the local-blend
        (or user) mask, feathered (by default with a Gaussian a third of an attention-map cell wide, so the
        map's blocks do not show), so pixels away from the edited region are exactly the photo's.

        Args:
            inv: the photo's inversion (Editor.invert or Inversion.load), made with this pipeline's model.
            targets: one target prompt or a list; each usually changes a few words of the caption.
            edit, cross_replace_steps, self_replace_steps, blend_words, blend_threshold, blend_start,
                equalizer, mask_mode, subtract_words, self_replace_max_res, feather, blend_pool: the edit
                settings (see EditSpec). Those given override `spec`; the others come from `spec`, else EditSpec() (the
                defaults for photos: cross 0.8, self 0.6 at latent/2, blend threshold 0.3 from 0.2).
            mask: a user mask covering the whole photo (path, PIL image, array or tensor; white = edit);
                it replaces the attention mask, or intersects it with mask_mode="intersect".
            progress: show a progress bar.
            output_type: "pil", "np" or "latent" (the final latents, not pasted back).
            spec: all edit settings at once; keyword arguments given above override it.
            callback_on_step_end: as in `generate`.
            keep_trajectory: keep every row's latents after each step (on the CPU: steps x rows x latent), so
                that `result.as_inversion(k)` can continue from edit k (not with output_type "latent").

        Returns:
            EditResult: images at the photo's resolution, masks, attention maps, and `.save(folder, name)`.
        """
        spec = (given_spec(spec) or EditSpec()).updated(**settings_in(locals()))
        return edit_photo(self, inv, targets, spec, mask, progress, output_type, callback_on_step_end, keep_trajectory)

    def sweep(
        self,
        inv: Inversion,
        target: str,
        *,
        spec: EditSpec | None = None,
        mask: MaskSource | None = None,
        progress: bool = True,
        batch_size: int = DEFAULT_BATCH,
        keep_trajectory: bool = True,
        **lists: Any,
    ) -> SweepResult:
        """Edit an inverted photo once per combination of settings given as lists, e.g.
        `sweep(inv, "a dog", cross_replace_steps=[0.2, 0.5, 0.8], self_replace_steps=[0.2, 0.6])` (6 edits).

        Any EditSpec setting may be listed (a list gives its values; other values, such as a (start, end) window,
        are one value); the others come from `spec`, else EditSpec(). Combinations that share an inversion run
        in denoising batches of up to `batch_size` targets, each the edit `edit(inv, target, spec=...)` makes.
        SweepError (a ValueError) before any work: no such setting, an empty list, more than 64 combinations,
        a value a setting refuses. Returns a SweepResult: one EditResult per combination, the contact sheet,
        and `.save(folder, name)`; keep_trajectory=False records no latents, so its results cannot be continued
        (EditResult.as_inversion). See p2p_real.editing.sweep and docs/sweep.md.
        """
        return run_sweep(
            self,
            inv,
            target,
            lists,
            spec=spec,
            mask=mask,
            progress=progress,
            batch_size=batch_size,
            keep_trajectory=keep_trajectory,
        )
