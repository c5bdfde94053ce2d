"""Step 3 of the page: the words on offer, Edit, the mask at another threshold (a preview: Edit applies it),
"Edit this result", and Stop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from p2p_real.ui.choices import EditChoices, changed_words, prompt_words, slider
from p2p_real.ui.inverting import inverted
from p2p_real.ui.layout import Page
from p2p_real.ui.messages import PROGRESS, page_errors, progress_report
from p2p_real.ui.steps import model_job
from p2p_real.ui.studio import Studio, Workspace, coverage_text

EMPTY_MASK = (
    "the blend mask is empty at this threshold, so the edit changed nothing: lower the threshold or "
    "pick other blend words"
)


def word_updates(tokenizer: Any, caption: str, target: str, reweight: Sequence[str] | None) -> tuple[Any, Any, Any]:
    """Choices and values of the word pickers for these prompts: blend words of the caption and of the target,
    picked anew each time a prompt changes (what the target changes), and reweight words of the target (the
    picks that are still words of it kept)."""
    words = []
    for prompt in (caption, target):
        try:
            words.append(prompt_words(tokenizer, prompt))
        except ValueError:  # too long for the text encoder: inverting or editing says so
            words.append([])
    source_words, target_words = words
    removed, added = changed_words(source_words, target_words)
    return (
        gr.update(choices=source_words, value=removed if target_words else []),
        gr.update(choices=target_words, value=added),
        gr.update(choices=target_words, value=[w for w in reweight or [] if w in target_words]),
    )


def page_choices(ws: Workspace | None, caption: str, values: Sequence[Any]) -> tuple[Workspace, EditChoices]:
    """The page's edit controls (in EditStep.controls() order) as EditChoices, once a photo is inverted under the
    caption still shown."""
    if ws is None:
        raise ValueError("invert a photo first")
    if (caption or "").strip() != ws.inversion.prompt.strip():
        raise ValueError(
            f"the caption changed since the photo was inverted with {ws.inversion.prompt!r}: invert it again"
        )
    target, blend_source, blend_target, threshold, reweight_words, factor, kind, cross, self_ = values
    choices = EditChoices(
        target,
        tuple(blend_source or ()),
        tuple(blend_target or ()),
        threshold,
        tuple(reweight_words or ()),
        factor,
        kind,
        cross,
        self_,
    )
    return ws, choices


def wire_words(page: Page, studio: Studio) -> None:
    """The word pickers follow the caption and the target as they are typed (also while a job runs), and as the
    page sets them (the example, Invert's target, "Edit this result", a new photo's empty target): never after
    another part sets the words itself (a restored history entry)."""

    @page_errors
    def words(caption: str, target: str, reweight: list[str]) -> tuple[Any, ...]:
        """The word pickers for the current prompts."""
        return word_updates(studio.tokenizer, caption, target, reweight)

    step = page.edit
    inputs = [page.photo.caption, step.target, step.reweight_words]
    outputs = [step.blend_source, step.blend_target, step.reweight_words]
    quiet: dict[str, Any] = {"concurrency_id": "words", "show_progress": "hidden"}
    gr.on(
        [page.photo.caption.input, step.target.input],
        words,
        inputs,
        outputs,
        api_name="words",
        trigger_mode="always_last",
        **quiet,
    )
    example = [page.events["example"]] if "example" in page.events else []
    for event in example + page.extras.get("words after", []):  # the page's own changes of the prompts
        event.then(words, inputs, outputs, api_visibility="private", **quiet)


def hooked_choices(
    page: Page, ws: Workspace | None, caption: str, values: Sequence[Any]
) -> tuple[Workspace, EditChoices]:
    """page_choices of the edit's own settings (the first values, one per EditStep.controls()), then another part's
    hook on them with the values of its inputs (page.extras["choices hook"], fed by page.extras["edit inputs"]: the
    brush mask)."""
    n = len(page.edit.controls())  # the edit's own settings; other parts' inputs follow them
    ws, choices = page_choices(ws, caption, values[:n])
    hook = page.extras.get("choices hook")
    if hook is not None:
        choices = hook(choices, ws, *values[n:])
    return ws, choices


def edit_inputs(page: Page) -> list[Any]:
    """The inputs of an edit (and of a sweep): the workspace, the caption, the edit's settings, other parts'."""
    return [page.workspace, page.photo.caption, *page.edit.controls(), *page.extras.get("edit inputs", [])]


def wire_edit(page: Page, studio: Studio) -> None:
    """Edit as a model job, with the edit's settings and then any other part's inputs (see hooked_choices)."""

    @page_errors
    def edit(ws: Workspace | None, caption: str, *values: Any, progress: gr.Progress = PROGRESS) -> tuple[Any, ...]:
        """Edit the inverted photo with the page's settings."""
        ws, choices = hooked_choices(page, ws, caption, values)
        view = studio.edit(ws, choices, progress_report(progress))
        for after in page.extras.get("after edit", []):  # other parts' records of the edit (the history)
            after(ws)
        if view.coverage == 0:
            gr.Warning(EMPTY_MASK)
        return (ws, *page.results.values(view))

    outputs = [page.workspace, *page.results.outputs()]
    page.events["edit"] = model_job(page, page.edit.button, edit, edit_inputs(page), outputs, "edit")


def wire_mask(page: Page, studio: Studio) -> None:
    """The threshold slider redraws the last edit's mask from its stored maps (no sampling): a preview, which the
    coverage line says Edit applies."""

    @page_errors
    def remask(ws: Workspace | None, threshold: float) -> tuple[Any, Any]:
        """The last edit's mask at the slider's threshold."""
        if ws is None or ws.result is None:
            return gr.update(), gr.update()
        overlay, share = studio.mask(ws, slider(threshold))
        return overlay, coverage_text(share, slider(threshold), studio.edit_threshold(ws))

    page.edit.threshold.change(
        remask,
        [page.workspace, page.edit.threshold],
        [page.results.mask, page.results.coverage],
        api_name="mask",
        trigger_mode="always_last",
        concurrency_id="mask",
        show_progress="hidden",
    )


def wire_continue_and_stop(page: Page, studio: Studio) -> None:
    """ "Edit this result" as a model job (the edit becomes the photo, its target the caption), and Stop."""
    step = page.invert

    @page_errors
    def continue_edit(ws: Workspace | None, progress: gr.Progress = PROGRESS) -> tuple[Any, ...]:
        """The last edit becomes the photo being edited (its own inversion); its target becomes the caption."""
        ws = studio.continue_edit(ws, progress_report(progress))  # also an old entry of the history
        return (*inverted(studio, ws), ws.inversion.prompt, ws.inversion.prompt)

    outputs = [page.workspace, step.reconstruction, step.verdict, step.report, page.photo.caption, page.edit.target]
    page.events["continue"] = model_job(
        page, page.edit.continue_button, continue_edit, [page.workspace], outputs, "continue"
    )
    page.extras.setdefault("words after", []).append(page.events["continue"])

    def stop() -> None:
        """Stop the invert or edit in progress after its current step (the job then says so, as a notice)."""
        studio.editor.cancel()

    quick: dict[str, Any] = {"concurrency_id": "stop", "concurrency_limit": None, "show_progress": "hidden"}
    page.edit.stop.click(stop, None, None, api_name="stop", **quick)
    step.stop.click(stop, None, None, api_visibility="private", **quick)
