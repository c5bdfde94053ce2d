"""Editor.invert's work: a photo inverted with resolved settings, through the cache if one is given, with the step
callback and cancelling of the editor's calls."""

from __future__ import annotations

from inversion import validation
from inversion.artifact import Inversion
from inversion.cache import InversionCache
from inversion.invert import invert
from inversion.loops.ddim_inversion import InversionStep
from inversion.photos.image import Source
from inversion.settings import ResolvedInversionSettings
from p2p_real.editing.edit_loop import Cancelled, StepCallback
from p2p_real.editing.editor_like import EditorLike


def invert_photo(
    editor: EditorLike,
    image: Source,
    settings: ResolvedInversionSettings,
    num_inner_steps: int,
    epsilon: float,
    progress: bool,
    cache: InversionCache | None,
    name: str | None,
    callback_on_step_end: StepCallback | None,
    compile: bool,
) -> Inversion:
    """Invert `image` with `settings` (resolved against the editor's defaults), or take it from `cache`."""
    validation.callback(callback_on_step_end, "callback_on_step_end")

    def step(s: InversionStep) -> None:
        """Call the user's callback with one inversion step; stop if cancelled."""
        if callback_on_step_end is not None:
            callback_on_step_end(editor, s.index, s.timestep, {"latents": s.latents, "stage": s.stage, "loss": s.loss})
        if editor._cancelled:
            raise Cancelled(f"inversion cancelled at step {s.index + 1} ({s.stage})")

    def run() -> Inversion:
        """Invert the photo with the resolved settings."""
        editor._cancelled = False
        return invert(
            editor.pipe,
            editor.scheduler,
            image,
            settings,
            progress=progress,
            num_inner_steps=num_inner_steps,
            epsilon=epsilon,
            callback=step,
            compile=compile,
        )

    return run() if cache is None else cache.get(image, settings, editor.pipe, run, name)[0]
