"""One loaded model's work for the page: invert a photo once (kept in the page's session and in an inversion
cache on disk), edit it in seconds, re-threshold the blend mask from the stored maps, write the files.

No Gradio here: errors are the library's (ValueError for what the user can fix, Cancelled when stopped);
the page turns them into messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from inversion.artifact import Inversion
from inversion.cache import InversionCache
from inversion.methods import METHOD_NAMES
from inversion.settings import InversionSettings
from inversion.storage.files import INVERSION_SUFFIX, atomic_write_bytes
from masks.visualize import mask_overlay, word_heatmaps
from p2p_real.batches.photo_plan import PhotoRequest, plan_photo
from p2p_real.editing.reblend import blend_masks, photo_masks
from p2p_real.editor import Editor
from p2p_real.files.results import EditResult, Reconstruction
from p2p_real.spec import EditSpec
from p2p_real.ui.brush import applied_mask
from p2p_real.ui.choices import PAGE_NAMES, EditChoices, edit_command
from p2p_real.ui.sessions import SessionFolders

# (stage, step index, steps) after every step of a long call: the page's progress bar
StepReport = Callable[[str, int, int], None]
HEATMAP_SIDE = 192  # longest side of the heat-map pictures
DIM = 0.65  # how much the mask picture darkens the photo where the edit cannot reach
PREVIEW_SIDE = 1024  # longest side of the mask picture (it is redrawn as the threshold slider moves)


@dataclass
class Workspace:
    """A page's photo, its inversion and reconstruction, and its last edit."""

    photo: Path
    inversion: Inversion
    reconstruction: Reconstruction
    origin: str  # "fresh" (inverted now) or "reused" (found in the inversion cache)
    result: EditResult | None = None
    files: list[Path] = field(default_factory=list)
    command: str = ""
    folder: Path | None = None  # the session's own folder: the only files the page hands this session
    choices: EditChoices | None = None  # the settings of the last edit (its brush mask: p2p_real/ui/brush.py)
    history: Any = None  # the page's History of this photo's edits (p2p_real/ui/history.py); kept by continue_edit

    @property
    def name(self) -> str:
        """File name stem of the outputs: the photo's (a plain one: '.png' gives 'photo')."""
        return stem_of(self.photo)

    @property
    def original(self) -> Image.Image:
        """The photo at its own resolution."""
        return Image.fromarray(self.inversion.original)


@dataclass
class EditView:
    """What the page shows of an edit."""

    before: Image.Image  # the photo, at its resolution
    after: Image.Image  # the edit, at the photo's resolution
    mask: Image.Image | None  # the blend mask over the photo (dimmed outside it)
    coverage: float | None  # the part of the working area the mask covers
    heatmaps: list[tuple[Image.Image, str]]
    files: list[Path]
    command: str


class Studio:
    """The page's calls into the library on one editor; the page runs one of invert / edit at a time."""

    def __init__(
        self, editor: Editor, out: str | os.PathLike, run_options: Sequence[str] = (), model: str = ""
    ) -> None:
        self.editor = editor
        self.out = Path(out).expanduser().resolve()
        self.cache = InversionCache(self.out / "inversions")
        self.edits = self.out / "edits"
        self.run_options = list(run_options)
        self.model = model
        self.sessions = SessionFolders()  # never the user's --out: see p2p_real/ui/sessions.py

    @property
    def tokenizer(self) -> Any:
        """The editor's tokenizer (for the words a page offers; SDXL: both of its tokenizers as one)."""
        return self.editor.tokenizer

    def invert(
        self,
        photo: str | os.PathLike | None,
        caption: str,
        method: str | None = None,
        steps: int | None = None,
        report: StepReport | None = None,
    ) -> Workspace:
        """Invert the photo with its caption (or reuse its saved inversion) and reconstruct it."""
        if photo is None:
            raise ValueError("upload a photo first")
        if not (caption or "").strip():
            raise ValueError("write the photo's caption first: what it shows, e.g. 'a cat sitting on a wall'")
        photo = Path(photo)
        settings = InversionSettings(caption, method, steps, names=PAGE_NAMES)
        request = PhotoRequest(photo, settings, cache=self.cache, name=stem_of(photo))
        plan = plan_photo(self.editor, request)  # the photo, the caption (empty, too long), the cache: before inverting
        steps_made = plan.made_with.num_inference_steps

        def on_step(editor: Editor, step: int, timestep: int, data: dict[str, Any]) -> None:
            """Report one inversion step."""
            if report is not None:
                report(str(data.get("stage", "")), step, steps_made)

        inv, origin = plan.invert(progress=False, callback=on_step), plan.source  # "fresh" or "reused"
        if report is not None:
            report("reconstructing", 0, 1)
        rec = self.editor.reconstruct(inv, progress=False)
        return Workspace(photo, inv, rec, origin, folder=self.sessions.new())

    def forget(self, ws: Workspace | None) -> None:
        """Free a session's workspace: its folder of downloads goes (its files in --out stay)."""
        if isinstance(ws, Workspace):
            self.sessions.forget(ws.folder)
            ws.folder = None

    def edit(self, ws: Workspace, choices: EditChoices, report: StepReport | None = None) -> EditView:
        """Edit the inverted photo, write the edit, its mask, grid and sidecar, and describe it for the page."""
        if ws is None:
            raise ValueError("invert a photo first")
        if not choices.target.strip():
            raise ValueError("write a target prompt first: the caption with your change")
        inv = ws.inversion
        spec = choices.spec()
        self.editor.check([inv.prompt, choices.target], spec, inv.num_inference_steps)

        def on_step(editor: Editor, step: int, timestep: int, data: dict[str, Any]) -> None:
            """Report one edit step."""
            if report is not None:
                report("editing", step, inv.num_inference_steps)

        start = time.perf_counter()
        res = self.editor.edit(
            inv, choices.target, spec=spec, mask=choices.mask, progress=False, callback_on_step_end=on_step
        )
        seconds = round(time.perf_counter() - start, 3)
        command = self.command(ws, choices)
        name = self._free_name(ws.name)
        written = res.save(self.edits, name, {"reproduce": command, "ui": {"edit_s": seconds}})
        ws.result, ws.command, ws.choices = res, command, choices
        ws.files = [p for p in written if p.name in (f"{name}.1.png", f"{name}.1.mask.png", f"{name}.json")]
        ws.files += [p for p in (choices.mask, inv.path) if p is not None]  # the brush mask, the inversion
        mask, coverage = self.mask(ws)
        if not self.sessions.owns(ws.folder):  # a workspace made elsewhere: its own folder now
            ws.folder = self.sessions.new()
        downloads = self.sessions.publish(ws.folder, ws.files)
        return EditView(ws.original, res.images[1], mask, coverage, self.heatmaps(ws), downloads, command)

    def command(self, ws: Workspace, choices: EditChoices) -> str:
        """The `p2p-real edit` line of this edit, naming its photo (or, continued from an edit, that edit's
        inversion file) and its brush mask by absolute paths, so that it runs from any folder."""
        inv = ws.inversion
        chained = inv.method not in METHOD_NAMES  # continued from an edit: the command edits its inversion file
        settings = InversionSettings(
            inv.prompt, None if chained else inv.method, inv.num_inference_steps, inv.guidance_scale
        )
        source = str(inv.path) if chained and inv.path is not None else str(self.kept_photo(ws.photo))
        return edit_command(source, settings, choices.target, choices.spec(), self.run_options, mask=choices.mask)

    def continue_edit(self, ws: Workspace | None, report: StepReport | None = None) -> Workspace:
        """The edit as the page's photo (p2p_real.files.chain): its inversion, saved beside the edit's files, is the
        edit's own trajectory (nothing is inverted), its caption the edit's target; from its EditResult or, for an
        edit of the history that no longer keeps it (p2p_real/ui/history.py), from the inversion it was saved as."""
        if ws is None or (ws.result is None and not ws.files):
            raise ValueError("edit the photo first: there is no result to continue from")
        path = continuation_path(ws)
        if ws.result is None:
            if not path.is_file():
                raise ValueError("edit the photo first: there is no result to continue from")
            inv = Inversion.load(path)
        else:
            inv = ws.result.as_inversion(1)
            try:
                inv.save(path, replace=False)
            except FileExistsError:  # this edit was continued already (edit names are never reused): the same file
                inv = Inversion.load(path)
        if report is not None:
            report("reconstructing", 0, 1)
        rec = self.editor.reconstruct(inv, progress=False)
        return replace(
            ws, inversion=inv, reconstruction=rec, origin="continued", result=None, files=[], command="", choices=None
        )

    def mask(self, ws: Workspace | None, threshold: float | None = None) -> tuple[Image.Image | None, float | None]:
        """The last edit's blend mask over the photo at `threshold` (default: the edit's), recomputed from its
        stored attention maps, as the photo (at most PREVIEW_SIDE pixels a side) dimmed where the edit cannot
        reach, whatever its colours, and the part of the working area it covers (with a brush mask: the mask the edit
        applied); (None, None) without blend words or brush mask."""
        if ws is None or ws.result is None:
            return None, None
        user = ws.choices.mask if ws.choices is not None else None
        latent = applied_mask(ws.result, blend_masks(ws.result, self.tokenizer, threshold), user)
        if latent is None:
            return None, None
        (soft,) = photo_masks(ws.result, latent[:1])
        photo = ws.original
        photo.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        soft = soft.resize(photo.size, Image.Resampling.BILINEAR)
        return mask_overlay(photo, ImageOps.invert(soft), (0, 0, 0), DIM), float(latent[0].mean())

    def heatmaps(self, ws: Workspace) -> list[tuple[Image.Image, str]]:
        """Each word's averaged cross-attention, labelled once per word: the caption's words over the photo (a word
        said twice averaged), then the target's new words over the edit, in the working area."""
        res = ws.result
        if res is None or res.attention is None:
            return []
        cells = []
        shown: set[str] = set()
        for row, image, side in ((0, ws.original, ""), (1, res.images[1], " (target)")):
            crop = image.crop(ws.inversion.box)
            crop.thumbnail((HEATMAP_SIDE, HEATMAP_SIDE))
            words = [w for w, _ in res.attention.per_word(row)]
            for word in dict.fromkeys(words):
                if word.lower() in shown:
                    continue
                shown.add(word.lower())
                ((picture, _),) = word_heatmaps(crop, [(word, res.attention.word(word, row))])
                cells.append((picture, f"{word}{side}"))
        return cells

    def reconstruction_picture(self, ws: Workspace) -> Image.Image:
        """The reconstruction at the photo's resolution, to be seen beside it at the same size: the working area
        resized from the model's size, the rest of the photo (never edited) dimmed."""
        photo = ws.original
        box = ws.inversion.box
        rec = ws.reconstruction.image.convert("RGB").resize(
            (box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS
        )
        picture = Image.blend(photo.convert("RGB"), Image.new("RGB", photo.size), DIM)
        picture.paste(rec, box[:2])
        return picture

    def edit_threshold(self, ws: Workspace) -> float | None:
        """The blend threshold the last edit was made with (None before an edit)."""
        if ws.result is None:
            return None
        return (ws.result.spec or EditSpec()).blend_threshold

    def kept_photo(self, photo: Path) -> Path:
        """The photo kept in OUT/photos/HASH/ under its own name (the upload lives in Gradio's cache), so that the
        command line the page shows can name it by an absolute path that works from any folder; written once."""
        data = photo.read_bytes()
        kept = self.out / "photos" / hashlib.sha256(data).hexdigest()[:16] / photo.name
        if not kept.exists():
            with contextlib.suppress(FileExistsError):  # another session kept the same photo meanwhile
                atomic_write_bytes(kept, data, make_folder=True, replace=False)
        return kept

    def _free_name(self, stem: str) -> str:
        """STEM-K with the first K whose sidecar is not in the edits folder yet (edits are never replaced)."""
        k = 1
        while (self.edits / f"{stem}-{k}.json").exists():
            k += 1
        return f"{stem}-{k}"


def continuation_path(ws: Workspace) -> Path:
    """Where the edit of `ws` is saved as an inversion: NAME.1.inv.safetensors beside its sidecar NAME.json."""
    sidecar = next((p for p in ws.files if p.suffix == ".json"), None)
    if sidecar is None:
        raise ValueError("this edit wrote no files to continue from: edit the photo again")
    return sidecar.with_name(f"{sidecar.stem}.1{INVERSION_SUFFIX}")


def stem_of(photo: Path) -> str:
    """A plain file-name stem for a photo's outputs (no leading dots, no line breaks; 'photo' if none is left)."""
    return " ".join(photo.stem.split()).lstrip(".") or "photo"


def coverage_text(coverage: float | None, threshold: float | None = None, applied: float | None = None) -> str:
    """A line about the mask: how much of the working area the edit may change; for a preview at a threshold
    other than the one the edit was made with, that Edit applies it."""
    if coverage is None:
        return "no blend words: the edit may change the whole photo"
    line = f"the mask covers {100 * coverage:.0f}% of the working area"
    if threshold is None or applied is None or abs(threshold - applied) < 1e-9:
        return line
    return (
        f"{line} at threshold {threshold:g}: a preview. **Press Edit to apply it**: the result shown was made at "
        f"{applied:g}"
    )
