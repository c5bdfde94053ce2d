"""Getting the inversion a photo edit needs, the way the command line and batches do: check the words
first, then load the inversion given, reuse a saved one that fits, or invert the photo."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from inversion.artifact import Inversion
from inversion.cache import InversionCache, photo_name
from inversion.photos.image import Source
from inversion.settings import InversionSettings
from p2p_real.editor import Editor
from p2p_real.spec import EditSpec


def prepare_inversion(
    editor: Editor,
    photo: Source | None,
    settings: InversionSettings,
    targets: Sequence[str] = (),
    spec: EditSpec | None = None,
    *,
    inversion: str | os.PathLike | None = None,
    cache: InversionCache | None = None,
    name: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    save: bool = True,
    ready: Callable[[], object] | None = None,
) -> tuple[Inversion, str]:
    """The inversion to edit and where it came from.

    "loaded": the file `inversion`, checked (Inversion.check_matches) against the model, `photo` if given
    and each setting of `settings` that is set. "reused": a saved inversion in `cache` that fits the photo,
    the settings and the model. "fresh": `photo` inverted now (and saved in `cache` when there is one,
    unless `save` is False: then the caller saves it, e.g. only once its edit has succeeded).
    Before any inverting, Editor.check runs on [caption, *targets] with `spec` (default EditSpec()); then
    `ready()` is called, e.g. to reserve the outputs, so that nothing is written for a request that fails its
    checks and nothing slow runs for outputs that cannot be written.
    """
    if inversion is not None:
        inv = Inversion.load(inversion)
        inv.check_matches(settings, photo, editor.pipe)
        editor.check([inv.prompt, *targets], spec, inv.num_inference_steps)
        if ready is not None:
            ready()
        return inv, "loaded"
    if photo is None:
        raise ValueError("give a photo to invert or a saved inversion")
    resolved = settings.resolved(editor.num_inference_steps, editor.guidance_scale)
    editor.check([resolved.prompt, *targets], spec, resolved.num_inference_steps)
    if ready is not None:
        ready()

    def invert() -> Inversion:
        """Invert the photo with the resolved settings (logged)."""
        if log is not None:
            log(f"inverting {photo_name(photo)} ({resolved.method}, {resolved.num_inference_steps} steps)")
        inv = editor.invert(
            photo,
            resolved.prompt,
            resolved.method,
            resolved.num_inference_steps,
            resolved.guidance_scale,
            progress,
            resolved.size,
            resolved.square,
        )
        if log is not None and inv.info is not None and inv.info.note:
            log(inv.info.note)  # e.g. a photo's ICC profile left out of the outputs
        return inv

    if cache is None:
        return invert(), "fresh"
    return cache.get(photo, resolved, editor.pipe, invert, name, log, save)
