"""Steps 1 and 2 of the page: a new photo (everything derived from the last one reset), and Invert (the
reconstruction at the photo's size, the report in plain words with its figures behind a disclosure, the target
started from the caption unless one was typed meanwhile)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from p2p_real.ui.layout import Page, comparison_values
from p2p_real.ui.messages import PROGRESS, Unreadable, page_errors, progress_report
from p2p_real.ui.steps import QUICK, gate_updates, gates, model_job
from p2p_real.ui.studio import Studio, Workspace

ORIGINS = {
    "fresh": "Inverted now",
    "reused": "Reused the saved inversion of this photo and these settings",
    "continued": "Continues from the last edit (not inverted again)",
}


def verdict_text(ws: Workspace) -> str:
    """The reconstruction's verdict in plain words, and where the inversion came from."""
    verdict = ws.reconstruction.verdict()
    saved = f"`{ws.inversion.path.name}`" if ws.inversion.path is not None else "not saved"
    return (
        f"**The reconstruction is {verdict.level}**: {verdict.reason}.\n\n"
        f"{ORIGINS.get(ws.origin, ORIGINS['fresh'])} (saved as {saved})."
    )


def inverted(studio: Studio, ws: Workspace) -> tuple[Any, ...]:
    """What the page shows of an inversion: the workspace, the reconstruction at the photo's size, the verdict and
    the figures."""
    return ws, studio.reconstruction_picture(ws), verdict_text(ws), ws.reconstruction.report()


def derived_values(page: Page) -> tuple[list[Any], list[Any]]:
    """The components a new photo resets (the results first) and the values it resets them to."""
    results = page.results
    own = [
        (page.invert.reconstruction, None),
        (page.invert.verdict, ""),
        (page.invert.report, ""),
        *[(c, v) for c, v in zip(results.comparison, comparison_values(None, None, len(results.comparison)))],
        (results.mask, None),
        (results.coverage, ""),
        (results.heatmaps, []),
        (results.downloads, None),
        (results.command, ""),
    ]
    pairs = own + page.derived
    return [c for c, _ in pairs], [v for _, v in pairs]


def photo_state(photo: str | Unreadable | None) -> tuple[bool, str]:
    """Whether the page can invert this photo, and the note about it (a warning too when it cannot read it)."""
    if isinstance(photo, Unreadable):
        gr.Warning(photo.message(), title="Not a photo")
        return False, photo.message()
    return isinstance(photo, str), ""


def wire_photo(page: Page, studio: Studio) -> None:
    """A new photo: the last one's inversion freed, all derived from it reset, a message when the page cannot read
    it, and the buttons of the steps set anew. A person's upload or clear also empties the target and the last
    photo's caption (one typed before the first photo stays); the example brings its own."""
    buttons, needs = zip(*gates(page))
    components, values = derived_values(page)
    step = page.photo

    def by_person(old: Workspace | None, had_photo: bool, photo: str | Unreadable | None, caption: str) -> list[Any]:
        """Forget the last photo and its prompts."""
        studio.forget(old)
        ok, note = photo_state(photo)
        caption = "" if had_photo or old is not None else caption
        return [None, *values, ok, note, caption, "", *gate_updates(needs, ok, caption, None)]

    def by_example(old: Workspace | None, photo: str | Unreadable | None, caption: str) -> list[Any]:
        """Forget the last photo; the example's prompts stay."""
        studio.forget(old)
        ok, note = photo_state(photo)
        return [None, *values, ok, note, *gate_updates(needs, ok, caption, None)]

    reset = [page.workspace, *components, page.photo_ok, step.note]
    person = step.photo.input(  # an upload or a clear (not the example's photo)
        by_person,
        [page.workspace, page.photo_ok, step.photo, step.caption],
        [*reset, step.caption, page.edit.target, *buttons],
        **QUICK,
    )
    page.events["new photo"] = person
    page.extras.setdefault("words after", []).append(person)
    if "example" in page.events:
        page.events["example"].then(by_example, [page.workspace, step.photo, step.caption], [*reset, *buttons], **QUICK)


def wire_invert(page: Page, studio: Studio) -> None:
    """Invert as a model job; then the target starts as the caption unless one was typed meanwhile."""
    step = page.invert

    @page_errors
    def invert(
        photo: str | Unreadable | None,
        caption: str,
        method: str,
        steps: float,
        old: Workspace | None,
        progress: gr.Progress = PROGRESS,
    ) -> tuple[Any, ...]:
        """Invert the photo (or reuse its inversion); the last inversion is freed once this one is made."""
        if isinstance(photo, Unreadable):
            raise ValueError(photo.message())
        ws = studio.invert(photo, caption, method, int(steps), progress_report(progress))
        studio.forget(old)
        if ws.origin == "reused":
            gr.Info("reused the saved inversion of this photo and these settings")
        return inverted(studio, ws)

    def start_target(ws: Workspace | None, caption: str, target: str) -> Any:
        """The target as typed, or the caption to change when none was (nothing after a stopped Invert)."""
        if ws is None or (target or "").strip():
            return gr.skip()
        return caption

    inputs = [page.photo.photo, page.photo.caption, step.method, step.steps, page.workspace]
    outputs = [page.workspace, step.reconstruction, step.verdict, step.report]
    job = model_job(page, step.button, invert, inputs, outputs, "invert")
    typed = [page.workspace, page.photo.caption, page.edit.target]
    started = job.success(start_target, typed, [page.edit.target], **QUICK)
    page.extras.setdefault("words after", []).append(started)
    page.events["invert"] = job
