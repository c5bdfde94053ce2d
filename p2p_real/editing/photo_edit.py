"""Edits of an inverted photo: its inversion replayed on this model, the edit loop, and the edited rows pasted
back onto the photo at its own resolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from inversion import validation
from inversion.artifact import Inversion
from inversion.encoding import sdxl
from inversion.encoding.vae import vae_scale_factor
from inversion.fingerprint import pipeline_fingerprint, scheduler_fingerprint
from masks.paste import FEATHER, MaskSource, paste_back, user_mask
from p2p_real.core.edit_plan import prompt_list
from p2p_real.core.sampling import unconditional_per_step
from p2p_real.editing.edit_loop import StepCallback, run_rows
from p2p_real.editing.editor_like import EditorLike
from p2p_real.files.results import OUTPUT_TYPES, AttentionMaps, EditResult, input_file, inversion_parameters, to_output
from p2p_real.spec import EditSpec

# an inversion replayed on the editor's device: start latent, unconditional embedding(s), source pivots (or None)
Replayed = tuple[torch.Tensor, torch.Tensor | list[torch.Tensor], list[torch.Tensor] | None]


def replay(editor: EditorLike, inv: Inversion) -> Replayed:
    """Start latent, unconditional embedding(s) and source pivots of an inversion, on the device; ArtifactError if
    it was made with another model, scheduler or VAE."""
    if not isinstance(inv, Inversion):
        raise ValueError(f"expected an Inversion (from Editor.invert or Inversion.load), got {type(inv).__name__}")
    inv.check_compatible(
        pipeline_fingerprint(editor.pipe),
        scheduler_fingerprint(editor.scheduler),
        inv.num_inference_steps,
        model_family=sdxl.model_family(editor.pipe),
        vae_scale_factor=vae_scale_factor(editor.pipe.vae),
    )
    start = inv.latent_T.to(editor.device, editor.dtype)
    uncond = inv.unconditional(editor.embed([inv.prompt]), editor.uncond_embedding())
    return start, uncond, inv.source_pivots(start)


def edit_photo(
    editor: EditorLike,
    inv: Inversion,
    targets: str | Sequence[str],
    spec: EditSpec,
    mask: MaskSource | None,
    progress: bool,
    output_type: str,
    callback_on_step_end: StepCallback | None,
    keep_trajectory: bool,
) -> EditResult:
    """Editor.edit with its settings gathered in `spec`: row 0 the reconstruction, then one row per target."""
    validation.callback(callback_on_step_end, "callback_on_step_end")
    targets = prompt_list(targets, "targets")
    validation.choice(output_type, OUTPUT_TYPES, "output_type")
    replayed = replay(editor, inv)
    user = user_latent_mask(inv, mask)
    prompts = [inv.prompt, *targets]
    keep = keep_trajectory and output_type != "latent"  # a latent result has no image to continue from
    trajectory = torch.empty(inv.num_inference_steps, len(prompts), *replayed[0].shape[1:]) if keep else None
    final, latent_mask, attention = edit_rows(
        editor, inv, replayed, prompts, spec, user, progress, callback_on_step_end, trajectory
    )
    result = photo_result(editor, inv, prompts, spec, final, latent_mask, attention, mask, output_type)
    if keep:
        result.trajectory = trajectory
        result.unconditional = unconditional_per_step(replayed[1], inv.num_inference_steps)
    return result


def user_latent_mask(inv: Inversion, mask: MaskSource | None) -> torch.Tensor | None:
    """A user mask covering the whole photo, as the (1, 1, h, w) latent mask of the inversion's working box."""
    photo_size = (inv.original.shape[1], inv.original.shape[0])
    return None if mask is None else user_mask(mask, inv.latent_size, inv.box, photo_size)


def edit_rows(
    editor: EditorLike,
    inv: Inversion,
    replayed: Replayed,
    prompts: list[str],
    spec: EditSpec | Sequence[EditSpec],
    mask: torch.Tensor | None,
    progress: bool,
    callback_on_step_end: StepCallback | None = None,
    trajectory: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, AttentionMaps | None]:
    """The edit loop (edit_loop.run_rows) over rows [the photo's caption, targets], from the inversion's replay: its
    start, unconditional embeddings, source pivots, steps and guidance."""
    start, uncond, pivots = replayed
    return run_rows(
        editor,
        prompts,
        start,
        uncond,
        spec,
        source_pivots=pivots,
        mask=mask,
        num_inference_steps=inv.num_inference_steps,
        guidance_scale=inv.guidance_scale,
        progress=progress,
        callback_on_step_end=callback_on_step_end,
        trajectory=trajectory,
    )


def feather_width(feather: float | None, attention: AttentionMaps | None) -> float:
    """The paste-back feather: as given, else a third of a working-resolution map cell."""
    if feather is not None:
        return feather
    if attention is None:
        return FEATHER
    return max(FEATHER, 1.0 / (3 * min(attention.maps.shape[1:3])))


def edit_parameters(
    editor: EditorLike, inv: Inversion, targets: list[str], spec: EditSpec, mask: MaskSource | None
) -> dict[str, Any]:
    """What an edit of a photo ran, for its result's parameters: the inversion, targets, settings, mask and model."""
    mask_file, mask_sha256 = input_file(mask)
    return {
        "command": "edit",
        **inversion_parameters(inv),
        "targets": targets,
        "spec": spec.to_dict(),
        "mask": mask_file,
        "mask_sha256": mask_sha256,
        **editor.model_parameters(),
    }


def photo_result(
    editor: EditorLike,
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
    parameters = edit_parameters(editor, inv, prompts[1:], spec, mask)
    photo_size = (inv.original.shape[1], inv.original.shape[0])
    info = {"size": photo_size, "method": inv.method, "blend_mask": latent_mask}
    if output_type == "latent":
        return EditResult(final, prompts, None, attention, final, info, spec=spec, inversion=inv, parameters=parameters)
    decoded = editor.decode(final)
    if latent_mask is None:  # no blend: the whole working box is the edit
        latent_mask = torch.ones(len(prompts) - 1, 1, *inv.latent_size)
    full = torch.ones(1, 1, *inv.latent_size)
    pasted, soft = paste_back(
        inv.original,
        decoded.cpu(),
        torch.cat([full, latent_mask.float().cpu()]),
        inv.box,
        feather=feather_width(spec.feather, attention),
        device=editor.device,
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
