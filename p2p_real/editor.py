"""The public editor: Prompt-to-Prompt generation and editing on a Stable Diffusion (1.x/2.x or XL) pipeline."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from inversion import validation
from inversion.artifact import ArtifactError, Inversion
from inversion.cache import InversionCache
from inversion.devices import pipeline_device
from inversion.encoding import sdxl
from inversion.encoding.prompts import encode_prompts, encode_unconditional, prompt_tokenizer
from inversion.encoding.vae import decode_latents, vae_scale_factor
from inversion.fingerprint import ADAPTERS, pipeline_fingerprint, scheduler_fingerprint
from inversion.invert import invert
from inversion.loops.ddim import ddim_scheduler
from inversion.loops.ddim_inversion import InversionStep
from inversion.loops.null_text import EPSILON, INNER_STEPS
from inversion.metrics import latent_error, psnr, ssim
from inversion.photos.image import Source, load_image, model_side
from inversion.settings import DEFAULT_GUIDANCE, DEFAULT_STEPS, InversionSettings
from masks.local_blend import apply_blend, blend_mask, combine_user_mask
from masks.paste import FEATHER, MaskSource, paste_back, user_mask
from p2p_real.batches.sweep import DEFAULT_BATCH, SweepResult, run_sweep
from p2p_real.core.controllers import P2PController
from p2p_real.core.edit_plan import EditPlan, plan_edit, prompt_list
from p2p_real.core.finite import check_finite
from p2p_real.core.processor import attention_control
from p2p_real.core.sampling import sample, unconditional_per_step
from p2p_real.defaults import DEFAULT_ATTENTION_RES
from p2p_real.files.results import (
    OUTPUT_TYPES,
    AttentionMaps,
    EditResult,
    Reconstruction,
    input_file,
    inversion_parameters,
    mask_images,
    to_output,
)
from p2p_real.spec import CrossWindow, EditSpec, Equalizer, Window, Words, given_spec, settings_in

# diffusers' callback_on_step_end: (editor, step index, timestep, {"latents": ...}) -> dict or None
StepCallback = Callable[["Editor", int, int, dict[str, Any]], "dict[str, Any] | None"]


class Cancelled(Exception):
    """A call stopped by Editor.cancel() (from a step callback or another thread); it returns nothing."""


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
        plan_edit(self.tokenizer, prompt_list(prompts), spec or EditSpec(), self._steps(num_inference_steps))

    def _steps(self, num_inference_steps: int | None) -> int:
        steps = self.num_inference_steps if num_inference_steps is None else num_inference_steps
        return validation.steps(steps, "num_inference_steps")

    def _size(self, height: int | None, width: int | None) -> tuple[int, int]:
        """(h, w) of the latent for an image of height x width (default: the model's size)."""
        w0, h0 = self.default_size
        factor = vae_scale_factor(self.pipe.vae)
        multiple, most = math.lcm(8, factor), validation.MAX_WORKING_SIDE
        height = validation.multiple_of(h0 if height is None else height, multiple, "height", most)
        width = validation.multiple_of(w0 if width is None else width, multiple, "width", most)
        return height // factor, width // factor

    def _start_latent(
        self, latents: torch.Tensor | None, generator: torch.Generator | int | None, latent_hw: tuple[int, int]
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
            generator = torch.Generator().manual_seed(validation.seed(generator, "generator"))
        elif generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")
        z = randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)
        return z * self.scheduler.init_noise_sigma

    def _run(
        self,
        prompts: list[str],
        start: torch.Tensor,
        uncond: torch.Tensor | Sequence[torch.Tensor],
        spec: EditSpec | Sequence[EditSpec],
        *,
        source_pivots: Sequence[torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        progress: bool = True,
        callback_on_step_end: StepCallback | None = None,
        trajectory: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, AttentionMaps | None]:
        """The denoising loop: rows [source, targets] from one start latent (1, C, h, w) under P2P control.

        Returns the final latents, the last local-blend mask (targets, 1, h, w) and the attention maps.
        `trajectory` (steps, rows, C, h, w), if given, is filled with the latents after each step (after the
        blend and the callback: what the next step starts from), for EditResult.as_inversion.
        A sequence of specs, one per target, gives each target row its own settings (edit_plan.plan_rows).
        """
        steps = self._steps(num_inference_steps)
        guidance = validation.number(
            self.guidance_scale if guidance_scale is None else guidance_scale, "guidance_scale", minimum=0
        )
        validation.callback(callback_on_step_end, "callback_on_step_end")
        plan: EditPlan = plan_edit(self.tokenizer, prompts, spec, steps, mask, self.device)
        blend = plan.blend
        latent_hw = (start.shape[-2], start.shape[-1])
        controller = P2PController(
            len(prompts),
            guidance > 1,
            latent_hw,
            self.pipe.unet,
            plan.cross_edit,
            plan.self_windows,
            plan.self_max_res,
            steps,
            store_res=self.attention_res,
            device=self.device,
            dtype=self.dtype,
        )
        self.scheduler.set_timesteps(steps, device=self.device)
        cond = self.embed(prompts)
        latents = start.to(self.device, self.dtype).expand(len(prompts), -1, -1, -1).clone()
        last_mask: list[torch.Tensor] = []
        self._cancelled = False

        def after_step(i: int, latents: torch.Tensor) -> torch.Tensor:
            """End the controller's step, keep the source on its pivot, blend, call back, check for cancel."""
            controller.end_step()
            if source_pivots is not None:  # direct inversion: the source row stays on the pivot trajectory
                latents[:1] = source_pivots[i]
            started = blend.started(i, len(prompts) - 1) if blend.active else []
            if any(started):
                step_mask = self._mask_now(controller, plan, latent_hw)
                last_mask[:] = [step_mask]
                latents = apply_blend(latents, step_mask, started)
            if callback_on_step_end is not None:
                out = callback_on_step_end(self, i, int(self.scheduler.timesteps[i]), {"latents": latents})
                latents = (out or {}).get("latents", latents)
            if trajectory is not None:
                trajectory[i].copy_(latents)
            if self._cancelled:
                raise Cancelled(f"cancelled after step {i + 1} of {steps}")
            return latents

        with attention_control(self.pipe.unet, controller):
            latents = sample(
                self.denoiser,
                self.scheduler,
                latents,
                cond,
                uncond,
                guidance,
                begin_step=controller.begin_step,
                callback=after_step,
                progress=progress,
                desc="editing",
            )
        if blend.active and len(prompts) > 1 and not last_mask:  # blend started after the last step
            last_mask.append(self._mask_now(controller, plan, latent_hw))
        attention = None
        mean = controller.store.mean()
        if mean is not None:
            h, w = controller.store_size
            attention = AttentionMaps(mean.reshape(len(prompts), h, w, -1).cpu(), plan.tokens)
        return latents, (last_mask[0] if last_mask else None), attention

    def _mask_now(self, controller: P2PController, plan: EditPlan, latent_hw: tuple[int, int]) -> torch.Tensor:
        blend = plan.blend
        if blend.add is not None and controller.store.total is not None:
            mask = blend_mask(
                controller.store.total,
                controller.store_size,
                latent_hw,
                blend.add,
                blend.subtract,
                blend.threshold,
                blend.pool,
            )
        else:
            mask = torch.ones(controller.n_rows - 1, 1, *latent_hw, device=self.device)
        return combine_user_mask(mask, blend.user_mask, blend.mode if blend.add is not None else "replace")

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
        *,
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
                `callback(editor, step, timestep, {"latents": latents})`; a returned {"latents": ...}
                replaces the latents; `editor.cancel()` stops the call (it raises Cancelled).

        Returns:
            EditResult: images (row 0 the source), masks when blending, per-word attention maps.
        """
        spec = (given_spec(spec) or EditSpec.synthetic()).updated(**settings_in(locals()))
        prompts = prompt_list(prompts)
        validation.choice(output_type, OUTPUT_TYPES, "output_type")
        steps = self._steps(num_inference_steps)
        guidance = validation.number(
            self.guidance_scale if guidance_scale is None else guidance_scale, "guidance_scale", minimum=0
        )
        latent_hw = self._size(height, width)
        start = self._start_latent(latents, generator, latent_hw)
        final, mask, attention = self._run(
            prompts,
            start,
            self.uncond_embedding(),
            spec,
            num_inference_steps=steps,
            guidance_scale=guidance,
            progress=progress,
            callback_on_step_end=callback_on_step_end,
        )
        factor = vae_scale_factor(self.pipe.vae)
        size = (latent_hw[1] * factor, latent_hw[0] * factor)
        images = final if output_type == "latent" else to_output(self.decode(final), output_type)
        masks = mask_images(mask, size) if mask is not None else None
        parameters = {
            "command": "generate",
            "prompts": prompts,
            "spec": spec.to_dict(),
            "steps": steps,
            "guidance": guidance,
            "size": list(size),
            "seed": generator if isinstance(generator, int) and latents is None else None,
            **self.model_parameters(),
        }
        return EditResult(
            images,
            prompts,
            masks,
            attention,
            final,
            {"size": size, "blend_mask": mask},
            spec=spec,
            parameters=parameters,
        )

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
        validation.callback(callback_on_step_end, "callback_on_step_end")

        def step(s: InversionStep) -> None:
            """Call the user's callback with one inversion step; stop if cancelled."""
            if callback_on_step_end is not None:
                callback_on_step_end(
                    self, s.index, s.timestep, {"latents": s.latents, "stage": s.stage, "loss": s.loss}
                )
            if self._cancelled:
                raise Cancelled(f"inversion cancelled at step {s.index + 1} ({s.stage})")

        def run() -> Inversion:
            """Invert the photo with the resolved settings."""
            self._cancelled = False
            return invert(
                self.pipe,
                self.scheduler,
                image,
                settings.prompt,
                settings.method,
                settings.num_inference_steps,
                settings.guidance_scale,
                num_inner_steps,
                epsilon,
                progress,
                settings.size,
                settings.square,
                callback=step,
                compile=compile,
            )

        return run() if cache is None else cache.get(image, settings, self.pipe, run, name)[0]

    def _replay(self, inv: Inversion) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor], list | None]:
        """Start latent, unconditional embedding(s) and source pivots of an inversion, on the device."""
        if not isinstance(inv, Inversion):
            raise ValueError(f"expected an Inversion (from Editor.invert or Inversion.load), got {type(inv).__name__}")
        inv.check_compatible(
            pipeline_fingerprint(self.pipe),
            scheduler_fingerprint(self.scheduler),
            inv.num_inference_steps,
            model_family=sdxl.model_family(self.pipe),
        )
        factor = vae_scale_factor(self.pipe.vae)
        if inv.vae_scale_factor != factor:
            raise ArtifactError(
                f"inversion is not compatible: it was made with a VAE of factor "
                f"{inv.vae_scale_factor}, this model's VAE has factor {factor}"
            )
        start = inv.latent_T.to(self.device, self.dtype)
        uncond = inv.unconditional(self.embed([inv.prompt]), self.uncond_embedding())
        return start, uncond, inv.source_pivots(start)

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
        start, uncond, pivots = self._replay(inv)
        self.scheduler.set_timesteps(inv.num_inference_steps, device=self.device)
        cond = self.embed([inv.prompt])
        # plain DDIM from the start: the reconstruction, or for a pivot-following inversion the drift its pivots
        # correct (its source row is set onto them after every step, so it ends on the last one)
        desc = "reconstructing" if pivots is None else "drift without the pivots"
        plain = sample(
            self.denoiser, self.scheduler, start, cond, uncond, inv.guidance_scale, progress=progress, desc=desc
        )
        latents = plain if pivots is None else pivots[-1].clone()
        rows = [latents, inv.z0.to(self.device, self.dtype), *([] if pivots is None else [plain])]
        photo = load_image(inv.original, size=inv.size, multiple=1).pixels  # the photo as the model saw it
        decoded = self.decode(torch.cat(rows))
        image, vae_image, *drift_image = to_output(decoded, "pil")
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
            drift_image=drift_image[0] if drift_image else None,
            drift_psnr=psnr(decoded[2], photo[0]) if drift_image else None,
            parameters={"command": "reconstruct", **inversion_parameters(inv), **self.model_parameters()},
        )

    @staticmethod
    def _feather(feather: float | None, attention: AttentionMaps | None) -> float:
        """The paste-back feather: as given, else a third of a working-resolution map cell."""
        if feather is not None:
            return feather
        if attention is None:
            return FEATHER
        return max(FEATHER, 1.0 / (3 * min(attention.maps.shape[1:3])))

    def edit(
        self,
        inv: Inversion,
        targets: str | Sequence[str],
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
        *,
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
        targets = prompt_list(targets, "targets")
        validation.choice(output_type, OUTPUT_TYPES, "output_type")
        start, uncond, pivots = self._replay(inv)
        photo_size = (inv.original.shape[1], inv.original.shape[0])
        user = None if mask is None else user_mask(mask, inv.latent_size, inv.box, photo_size)
        prompts = [inv.prompt, *targets]
        keep = keep_trajectory and output_type != "latent"  # a latent result has no image to continue from
        trajectory = torch.empty(inv.num_inference_steps, len(prompts), *start.shape[1:]) if keep else None
        final, latent_mask, attention = self._run(
            prompts,
            start,
            uncond,
            spec,
            source_pivots=pivots,
            mask=user,
            num_inference_steps=inv.num_inference_steps,
            guidance_scale=inv.guidance_scale,
            progress=progress,
            callback_on_step_end=callback_on_step_end,
            trajectory=trajectory,
        )
        result = self._edit_result(inv, prompts, spec, final, latent_mask, attention, mask, output_type)
        if keep:
            result.trajectory = trajectory
            result.unconditional = unconditional_per_step(uncond, inv.num_inference_steps)
        return result

    def sweep(
        self,
        inv: Inversion,
        target: str,
        *,
        spec: EditSpec | None = None,
        mask: MaskSource | None = None,
        progress: bool = True,
        batch_size: int = DEFAULT_BATCH,
        **lists: Any,
    ) -> SweepResult:
        """Edit an inverted photo once per combination of settings given as lists, e.g.
        `sweep(inv, "a dog", cross_replace_steps=[0.2, 0.5, 0.8], self_replace_steps=[0.2, 0.6])` (6 edits).

        Any EditSpec setting may be listed (a list gives its values; other values, such as a (start, end) window,
        are one value); the others come from `spec`, else EditSpec(). Combinations that share an inversion run
        in denoising batches of up to `batch_size` targets, each the edit `edit(inv, target, spec=...)` makes.
        SweepError (a ValueError) before any work: no such setting, an empty list, more than 64 combinations,
        a value a setting refuses. Returns a SweepResult: one EditResult per combination, the contact sheet,
        and `.save(folder, name)`. See p2p_real.batches.sweep and docs/sweep.md.
        """
        return run_sweep(self, inv, target, lists, spec=spec, mask=mask, progress=progress, batch_size=batch_size)

    def _edit_result(
        self,
        inv: Inversion,
        prompts: list[str],
        spec: EditSpec,
        final: torch.Tensor,
        latent_mask: torch.Tensor | None,
        attention: AttentionMaps | None,
        mask: MaskSource | None,
        output_type: str,
    ) -> EditResult:
        """The EditResult of an edit's final latents: decoded, pasted back onto the photo, with its parameters."""
        targets = prompts[1:]
        photo_size = (inv.original.shape[1], inv.original.shape[0])
        mask_file, mask_sha256 = input_file(mask)
        parameters = {
            "command": "edit",
            **inversion_parameters(inv),
            "targets": targets,
            "spec": spec.to_dict(),
            "mask": mask_file,
            "mask_sha256": mask_sha256,
            **self.model_parameters(),
        }
        info = {"size": photo_size, "method": inv.method, "blend_mask": latent_mask}
        if output_type == "latent":
            return EditResult(
                final, prompts, None, attention, final, info, spec=spec, inversion=inv, parameters=parameters
            )
        decoded = self.decode(final)
        if latent_mask is None:  # no blend: the whole working box is the edit
            latent_mask = torch.ones(len(targets), 1, *inv.latent_size)
        full = torch.ones(1, 1, *inv.latent_size)
        pasted, soft = paste_back(
            inv.original,
            decoded.cpu(),
            torch.cat([full, latent_mask.float().cpu()]),
            inv.box,
            feather=self._feather(spec.feather, attention),
            device=self.device,
        )
        images = torch.from_numpy(pasted).permute(0, 3, 1, 2).float() / 255.0
        masks = [Image.fromarray((m * 255).round().astype(np.uint8)) for m in soft[1:]]
        return EditResult(
            to_output(images, output_type),
            prompts,
            masks,
            attention,
            final,
            info,
            spec=spec,
            inversion=inv,
            parameters=parameters,
        )
