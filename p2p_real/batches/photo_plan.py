"""Plan, then run: a request on one photo is checked whole before anything slow starts, and its plan says where the
inversion comes from and which files will be written; the caller holds the plan's outputs, then `run` (or `invert`)
does the slow part. The command line, the page and batches all go through here (docs/design.md §9).

    request = PhotoRequest(photo, settings, targets=..., spec=..., outputs=Outputs(folder, name, files))
    request.check_files()                  # optional, before the model loads: images, outputs, folders
    plan = plan_photo(editor, request)     # + the words, the saved inversion or the cache: what will be done
    with plan.reserved():                  # the output set is this run's (its files checked again)
        written = plan.run(extra)          # invert (or reuse), edit, save: exactly plan.files
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inversion.settings import InversionSettings, ResolvedInversionSettings
from p2p_real.batches.preflight import Outputs, PlanError, check_images, check_outputs, check_writable
from p2p_real.spec import EditSpec

if TYPE_CHECKING:
    from inversion.artifact import Inversion
    from inversion.cache import InversionCache
    from p2p_real.editor import Editor

Log = Callable[[str], None]


@dataclass
class PhotoRequest:
    """What a caller asks of one photo: the photo (or its saved inversion), how to invert it, the prompts and edit
    settings the work will use, and the files it will write."""

    photo: Path | None  # inverted, or with `inversion` checked against it
    settings: InversionSettings  # a saved inversion is checked against those set
    inversion: Path | None = None  # a saved inversion to use instead of inverting
    targets: Sequence[str] = ()
    spec: EditSpec | None = None  # the edit's settings (default EditSpec()); words are checked against the prompts
    mask: Path | None = None  # a user mask for the edit
    outputs: Outputs | None = None  # the output set the work writes
    cache: InversionCache | None = None  # where a fresh inversion is saved, and a fitting one found again
    name: str | None = None  # the photo's name in the cache (default: the photo file's stem)
    image_format: str = "png"  # how `run` writes the edit's images
    quality: int | None = None
    save_inversions: bool = False  # `run` also writes each edit as an inversion (NAME.K.inv.safetensors)
    checked: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def inputs(self) -> tuple[Path | None, ...]:
        """The input files (None where not given), never written over."""
        return (self.photo, self.inversion, self.mask)

    def check_files(self) -> None:
        """The checks that need no model (once): the images can be read, the outputs may be written, the folders
        can be, and the cache's file for this photo is not an input, a link or a folder."""
        if self.checked:
            return
        check_images(self.photo, self.mask)
        if self.outputs is not None:
            self.outputs.check()
        if self.cache is not None and self.inversion is None:
            check_writable(self.cache.folder)
            if not self.cache.keyed and self.photo is not None:  # its file is known without the model
                check_outputs([self.cache.path(self.photo, self.settings, None, self.name)], True, self.inputs)
        self.checked = True

    def check_words(self, editor: Editor, prompt: str | None = None, steps: int | None = None) -> None:
        """Editor.check on [the caption, *targets] with the spec: a prompt too long, a word in no prompt ..."""
        caption = self.settings.resolved().prompt if prompt is None else prompt  # no caption: a PromptError
        steps = self.settings.num_inference_steps if steps is None else steps
        editor.check([caption, *self.targets], self.spec, steps)


@dataclass(frozen=True)
class PhotoPlan:
    """A checked request and what running it does. `source`: "loaded" (the saved inversion given), "reused" (a
    fitting one found in the cache) or "fresh" (the photo is inverted by `invert`, and saved in the cache)."""

    editor: Editor
    request: PhotoRequest
    source: str
    settings: ResolvedInversionSettings | None  # how the photo is (or was) inverted; None for a loaded one
    found: Inversion | None = None  # the loaded or reused inversion
    inversion_file: Path | None = None  # the file loaded or reused, or where a fresh one is saved (None: not saved)
    why: str = ""  # fresh: why the cache's inversion of the photo did not fit

    @property
    def made_with(self) -> Inversion | ResolvedInversionSettings:
        """The inversion's caption, method, steps and guidance, known before running (a file's own for a loaded one)."""
        made = self.found if self.found is not None else self.settings
        assert made is not None  # a plan has one or the other
        return made

    @property
    def saved(self) -> list[Path]:
        """The file a fresh inversion is saved in (none if it is not saved, or not fresh)."""
        return [self.inversion_file] if self.source == "fresh" and self.inversion_file is not None else []

    @property
    def files(self) -> list[Path]:
        """Every file running the plan writes: a fresh inversion's file first, then the output set's."""
        return [*self.saved, *(self.request.outputs.files if self.request.outputs is not None else ())]

    def describe(self) -> list[str]:
        """What running the plan does, one line a step."""
        made, request = self.made_with, self.request
        how = f"({made.method}, {made.num_inference_steps} steps)"
        if self.source == "fresh":
            lines = [f"invert {request.photo} {how}" + (f" and save it as {self.inversion_file}" if self.saved else "")]
        else:
            lines = [f"{'load' if self.source == 'loaded' else 'reuse'} {self.inversion_file} {how}"]
        if request.targets:
            lines.append(f"edit {len(request.targets)} target(s): " + ", ".join(map(repr, request.targets)))
        if request.outputs is not None:
            lines.append(f"write {len(request.outputs.files)} files in {request.outputs.folder}")
        return lines

    def reserved(self, log: Log | None = None) -> contextlib.AbstractContextManager[Any]:
        """Hold the output set for this run (Outputs.reserved); nothing to hold without outputs."""
        outputs = self.request.outputs
        return contextlib.nullcontext() if outputs is None else outputs.reserved(log)

    def invert(self, progress: bool = True, log: Log | None = None, callback: Any = None) -> Inversion:
        """The inversion: the loaded or reused one, or the photo inverted now (and saved in the cache at once, so an
        edit that fails later does not lose it). `callback` is Editor.invert's callback_on_step_end."""
        if self.found is not None:
            return self.found
        settings, photo = self.settings, self.request.photo
        assert settings is not None and photo is not None  # a fresh plan has both
        if log is not None:
            if self.why:
                log(f"saved inversion unusable ({self.why}), inverting again")
            log(f"inverting {photo.name} ({settings.method}, {settings.num_inference_steps} steps)")
        inv = self.editor.invert(
            photo,
            settings.prompt,
            settings.method,
            settings.num_inference_steps,
            settings.guidance_scale,
            progress,
            settings.size,
            settings.square,
            callback_on_step_end=callback,
        )
        if log is not None and inv.info is not None and inv.info.note:
            log(inv.info.note)  # e.g. a photo's ICC profile left out of the outputs
        cache = self.request.cache
        if cache is not None:
            cache.save(inv, photo, settings, self.editor.pipe, self.request.name)
        return inv

    def run(
        self,
        extra: dict[str, Any] | None = None,
        *,
        seed: int | None = None,
        progress: bool = True,
        log: Log | None = None,
    ) -> list[Path]:
        """Invert (or reuse), edit every target and save the edit into the output set, with `extra` in its sidecar
        (its "runtime" gains invert_s and edit_s); `seed` seeds torch first. Returns the files written: `files`."""
        request, outputs = self.request, self.request.outputs
        if outputs is None or not request.targets:
            raise ValueError("run edits the photo: the request needs targets and outputs")
        start = time.perf_counter()
        inv = self.invert(progress, log)
        timing = {"invert_s": round(time.perf_counter() - start, 3)}
        if seed is not None:
            import torch

            torch.manual_seed(seed)
        if log is not None:
            log(f"editing {len(request.targets)} target(s)")
        start = time.perf_counter()
        result = self.editor.edit(inv, list(request.targets), spec=request.spec, mask=request.mask, progress=progress)
        timing["edit_s"] = round(time.perf_counter() - start, 3)
        sidecar = {**(extra or {}), "runtime": {**(extra or {}).get("runtime", {}), **timing}}
        written = result.save(
            outputs.folder,
            outputs.name,
            sidecar,
            overwrite=outputs.overwrite,
            format=request.image_format,
            quality=request.quality,
            inversions=request.save_inversions,
        )
        return [*self.saved, *written]


def plan_photo(editor: Editor, request: PhotoRequest) -> PhotoPlan:
    """Check the request (its files, unless checked already; its words; a saved inversion against the photo, the
    settings and the model; the cache) and say what running it will do. Nothing slow runs and nothing is written.
    PlanError, PromptError, MismatchError (ValueErrors) name what is wrong."""
    request.check_files()
    if request.inversion is not None:
        from inversion.artifact import Inversion

        inv = Inversion.load(request.inversion)
        inv.check_matches(request.settings, request.photo, editor.pipe)
        request.check_words(editor, inv.prompt, inv.num_inference_steps)
        return PhotoPlan(editor, request, "loaded", None, inv, request.inversion)
    if request.photo is None:
        raise PlanError("give a photo to invert or a saved inversion")
    settings = request.settings.resolved(editor.num_inference_steps, editor.guidance_scale)
    request.check_words(editor, settings.prompt, settings.num_inference_steps)
    cache = request.cache
    if cache is None:
        return PhotoPlan(editor, request, "fresh", settings)
    from inversion.cache import CachedMismatchError

    try:
        found, why = cache.find(request.photo, settings, editor.pipe, request.name)
    except CachedMismatchError as exc:
        raise PlanError(f"{exc}; pass --overwrite to replace it, or choose another --out or --name") from exc
    path = cache.path(request.photo, settings, editor.pipe, request.name)
    return PhotoPlan(editor, request, "fresh" if found is None else "reused", settings, found, path, why)
