"""The edit loop: rows [source, targets] denoised from one start latent under Prompt-to-Prompt control."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from inversion import validation
from masks.local_blend import apply_blend, blend_mask, combine_user_mask
from p2p_real.core.controllers import P2PController
from p2p_real.core.edit_plan import EditPlan, plan_edit
from p2p_real.core.processor import attention_control
from p2p_real.core.sampling import sample
from p2p_real.editing.editor_like import EditorLike
from p2p_real.files.results import AttentionMaps
from p2p_real.spec import EditSpec

# diffusers' callback_on_step_end: (editor, step index, timestep, {"latents": ..., "blend_mask": ...}) -> dict or None;
# "blend_mask" is the local-blend mask (targets, 1, h, w) the step just made, None on a step that made none
StepCallback = Callable[[Any, int, int, dict[str, Any]], "dict[str, Any] | None"]


class Cancelled(Exception):
    """A call stopped by Editor.cancel() (from a step callback or another thread); it returns nothing."""


def run_rows(
    editor: EditorLike,
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
    `callback_on_step_end` gets {"latents": the step's latents, "blend_mask": the local-blend mask the step made
    (targets, 1, h, w), or None}; a returned {"latents": ...} replaces the latents.
    """
    steps, guidance = steps_of(editor, num_inference_steps), guidance_of(editor, guidance_scale)
    plan = plan_edit(editor.tokenizer, prompts, spec, steps, mask, editor.device)
    latent_hw = (start.shape[-2], start.shape[-1])
    controller = new_controller(editor, plan, guidance > 1, latent_hw, steps)
    editor.scheduler.set_timesteps(steps, device=editor.device)
    cond = editor.embed(prompts)
    latents = start.to(editor.device, editor.dtype).expand(len(prompts), -1, -1, -1).clone()
    after = AfterStep(editor, controller, plan, latent_hw, steps, source_pivots, callback_on_step_end, trajectory)
    editor._cancelled = False
    with attention_control(editor.pipe.unet, controller):
        latents = sample(
            editor.denoiser,
            editor.scheduler,
            latents,
            cond,
            uncond,
            guidance,
            begin_step=controller.begin_step,
            callback=after,
            progress=progress,
            desc="editing",
        )
    if plan.blend.active and len(prompts) > 1 and after.last_mask is None:  # blend started after the last step
        after.last_mask = step_mask(controller, plan, latent_hw, editor.device)
    return latents, after.last_mask, attention_maps(controller, plan)


def steps_of(editor: EditorLike, num_inference_steps: int | None) -> int:
    """The steps a call runs: as given, else the editor's; checked."""
    steps = editor.num_inference_steps if num_inference_steps is None else num_inference_steps
    return validation.steps(steps, "num_inference_steps")


def guidance_of(editor: EditorLike, guidance_scale: float | None) -> float:
    """The guidance scale a call uses: as given, else the editor's; checked."""
    guidance = editor.guidance_scale if guidance_scale is None else guidance_scale
    return validation.number(guidance, "guidance_scale", minimum=0)


def new_controller(
    editor: EditorLike, plan: EditPlan, guidance: bool, latent_hw: tuple[int, int], steps: int
) -> P2PController:
    """The controller of an edit's rows, storing maps at the editor's attention resolution."""
    return P2PController(
        len(plan.prompts),
        guidance,
        latent_hw,
        editor.pipe.unet,
        plan.cross_edit,
        plan.self_windows,
        plan.self_max_res,
        steps,
        store_res=editor.attention_res,
        device=editor.device,
        dtype=editor.dtype,
    )


@dataclass
class AfterStep:
    """What runs after each denoising step (sampling's callback); `last_mask` is the last blend mask made."""

    editor: EditorLike
    controller: P2PController
    plan: EditPlan
    latent_hw: tuple[int, int]
    steps: int
    pivots: Sequence[torch.Tensor] | None = None
    callback: StepCallback | None = None
    trajectory: torch.Tensor | None = None
    last_mask: torch.Tensor | None = None

    def __call__(self, i: int, latents: torch.Tensor) -> torch.Tensor:
        """End the controller's step, keep the source on its pivot, blend, call back, check for cancel."""
        self.controller.end_step()
        if self.pivots is not None:  # direct inversion: the source row stays on the pivot trajectory
            latents[:1] = self.pivots[i]
        blend = self.plan.blend
        started = blend.started(i, self.controller.n_rows - 1) if blend.active else []
        made = None
        if any(started):
            made = self.last_mask = step_mask(self.controller, self.plan, self.latent_hw, self.editor.device)
            latents = apply_blend(latents, made, started)
        if self.callback is not None:
            step = {"latents": latents, "blend_mask": made}
            out = self.callback(self.editor, i, int(self.editor.scheduler.timesteps[i]), step)
            latents = (out or {}).get("latents", latents)
        if self.trajectory is not None:
            self.trajectory[i].copy_(latents)
        if self.editor._cancelled:
            raise Cancelled(f"cancelled after step {i + 1} of {self.steps}")
        return latents


def step_mask(
    controller: P2PController, plan: EditPlan, latent_hw: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """The local-blend mask (targets, 1, h, w) from the maps stored so far, combined with the user's mask if any."""
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
        mask = torch.ones(controller.n_rows - 1, 1, *latent_hw, device=device)
    return combine_user_mask(mask, blend.user_mask, blend.mode if blend.add is not None else "replace")


def attention_maps(controller: P2PController, plan: EditPlan) -> AttentionMaps | None:
    """The per-word cross-attention maps the rows used, averaged over the steps; None if none were stored."""
    mean = controller.store.mean()
    if mean is None:
        return None
    h, w = controller.store_size
    return AttentionMaps(mean.reshape(controller.n_rows, h, w, -1).cpu(), plan.tokens)
