"""Synthetic Prompt-to-Prompt: the source prompt and its edits generated from one shared start latent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor

from inversion import validation
from inversion.encoding.vae import vae_scale_factor
from p2p_real.core.edit_plan import prompt_list
from p2p_real.editing.edit_loop import StepCallback, guidance_of, run_rows, steps_of
from p2p_real.editing.editor_like import EditorLike
from p2p_real.files.results import OUTPUT_TYPES, EditResult, mask_images, to_output
from p2p_real.spec import EditSpec


@dataclass(frozen=True)
class Sampling:
    """How Editor.generate samples: steps and guidance (None: the editor's), the shared start (a generator or int
    seed, or the latent itself) and the image size (None: the model's)."""

    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    generator: torch.Generator | int | None = None
    latents: torch.Tensor | None = None
    height: int | None = None
    width: int | None = None

    @property
    def seed(self) -> int | None:
        """The int seed the start was drawn from, for the result's parameters (None for given latents)."""
        return self.generator if isinstance(self.generator, int) and self.latents is None else None


def latent_size(editor: EditorLike, height: int | None, width: int | None) -> tuple[int, int]:
    """(h, w) of the latent for an image of height x width (default: the model's size)."""
    w0, h0 = editor.default_size
    factor = vae_scale_factor(editor.pipe.vae)
    multiple, most = math.lcm(8, factor), validation.MAX_WORKING_SIDE
    height = validation.multiple_of(h0 if height is None else height, multiple, "height", most)
    width = validation.multiple_of(w0 if width is None else width, multiple, "width", most)
    return height // factor, width // factor


def start_latent(
    editor: EditorLike,
    latents: torch.Tensor | None,
    generator: torch.Generator | int | None,
    latent_hw: tuple[int, int],
) -> torch.Tensor:
    """The shared z_T (1, C, h, w): the given latents (checked), else drawn from the generator or seed."""
    shape = (1, editor.latent_channels, *latent_hw)
    if latents is not None:
        if not torch.is_tensor(latents) or tuple(latents.shape) != shape:
            got = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
            raise ValueError(f"latents must be a tensor of shape {shape} (one shared z_T), got {got}")
        if not torch.isfinite(latents).all():
            raise ValueError("latents contain NaN or infinite values")
        return latents.to(editor.device, editor.dtype)
    if isinstance(generator, int) and not isinstance(generator, bool):
        generator = torch.Generator().manual_seed(validation.seed(generator, "generator"))
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")
    z = randn_tensor(shape, generator=generator, device=editor.device, dtype=editor.dtype)
    return z * editor.scheduler.init_noise_sigma


def generate_rows(
    editor: EditorLike,
    prompts: str | Sequence[str],
    spec: EditSpec,
    sampling: Sampling,
    progress: bool,
    output_type: str,
    callback_on_step_end: StepCallback | None,
) -> EditResult:
    """Editor.generate with its settings gathered in `spec`: row 0 the source prompt's image, then its edits."""
    validation.callback(callback_on_step_end, "callback_on_step_end")
    prompts = prompt_list(prompts)
    validation.choice(output_type, OUTPUT_TYPES, "output_type")
    steps, guidance = steps_of(editor, sampling.num_inference_steps), guidance_of(editor, sampling.guidance_scale)
    latent_hw = latent_size(editor, sampling.height, sampling.width)
    start = start_latent(editor, sampling.latents, sampling.generator, latent_hw)
    final, mask, attention = run_rows(
        editor,
        prompts,
        start,
        editor.uncond_embedding(),
        spec,
        num_inference_steps=steps,
        guidance_scale=guidance,
        progress=progress,
        callback_on_step_end=callback_on_step_end,
    )
    factor = vae_scale_factor(editor.pipe.vae)
    size = (latent_hw[1] * factor, latent_hw[0] * factor)
    images = final if output_type == "latent" else to_output(editor.decode(final), output_type)
    masks = mask_images(mask, size) if mask is not None else None
    parameters = {
        "command": "generate",
        "prompts": prompts,
        "spec": spec.to_dict(),
        "steps": steps,
        "guidance": guidance,
        "size": list(size),
        "seed": sampling.seed,
        **editor.model_parameters(),
    }
    info = {"size": size, "blend_mask": mask}
    return EditResult(images, prompts, masks, attention, final, info, spec=spec, parameters=parameters)
