"""The page's history panel (docs/page_tools.md, "History"): every edit of the photo in a gallery with its settings;
clicking one (or Undo, back one) restores it: its settings into the controls, its result, mask and downloads into
the results, its brush mask into the brush; "Edit this result" then continues from it. The store is
p2p_real/ui/history.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from p2p_real.ui.brush import editor_value, mask_preview
from p2p_real.ui.brush_panel import painted_note
from p2p_real.ui.choices import EditChoices, prompt_words
from p2p_real.ui.history import History, HistoryEntry, restore
from p2p_real.ui.inverting import inverted
from p2p_real.ui.layout import Page, comparison_values
from p2p_real.ui.messages import page_errors
from p2p_real.ui.steps import QUICK
from p2p_real.ui.studio import EditView, Studio, Workspace, coverage_text

GALLERY_LABEL = "history: every edit of this photo (click one to go back to it)"


@dataclass
class HistoryPanel:
    """The history's components."""

    gallery: gr.Gallery
    undo: gr.Button
    index: gr.Number  # hidden: the entry to show (set by a click on the gallery, or by the API)
    history: gr.State  # History, or None before the first edit of the photo


def add_history(page: Page) -> HistoryPanel:
    """The panel in the page's history slot; a new photo empties it."""
    with page.slots["history"]:
        gallery = gr.Gallery(
            label=GALLERY_LABEL,
            columns=5,
            height=240,
            allow_preview=False,
            format="png",
            elem_id="history",
        )
        undo = gr.Button("Undo: back one edit", interactive=False, elem_id="undo")
        index = gr.Number(visible=False, precision=0, elem_id="history-index")
    panel = HistoryPanel(gallery, undo, index, gr.State(None))
    page.extras["history"] = panel
    page.extras.setdefault("gates", []).append((undo, "edit"))
    page.reset((gallery, []), (panel.history, None), (index, None))
    return panel


def control_values(studio: Studio, entry: HistoryEntry) -> list[Any]:
    """The edit controls (EditStep.controls() order) as the entry's edit had them, the word pickers offering the
    words of its prompts."""
    c: EditChoices = entry.choices
    caption_words = prompt_words(studio.tokenizer, entry.caption)
    target_words = prompt_words(studio.tokenizer, c.target)
    return [
        c.target,
        gr.update(choices=caption_words, value=list(c.blend_source)),
        gr.update(choices=target_words, value=list(c.blend_target)),
        c.threshold,
        gr.update(choices=target_words, value=list(c.reweight_words)),
        c.reweight,
        c.edit,
        c.cross_replace,
        c.self_replace,
    ]


def result_values(page: Page, view: EditView) -> list[Any]:
    """The results' components (ResultsView.outputs() order) showing `view`."""
    n = len(page.results.comparison)
    files = [str(p) for p in view.files]
    return [
        *comparison_values(view.before, view.after, n),
        view.mask,
        coverage_text(view.coverage),
        view.heatmaps,
        files,
        view.command,
    ]


def brush_values(entry: HistoryEntry, ws: Workspace) -> list[Any]:
    """The brush (editor, mask, preview, note, mode) with the entry's painted mask, if it had one."""
    mask = None
    if entry.choices.mask is not None and entry.choices.mask.is_file():
        with Image.open(entry.choices.mask) as opened:
            mask = opened.convert("L")
    preview = mask_preview(ws.original, mask) if mask is not None else None
    painted = entry.choices.mask if mask is not None else None
    return [editor_value(ws.original, painted), mask, preview, painted_note(mask), entry.choices.mask_mode]


def restore_outputs(page: Page, panel: HistoryPanel) -> list[Any]:
    """What restoring an entry sets: the workspace and history, step 2's picture and report, the caption, the
    edit controls, the results, and the brush when the page has one."""
    step = page.invert
    outputs = [page.workspace, panel.history, step.reconstruction, step.verdict, step.report, page.photo.caption]
    outputs += [*page.edit.controls(), *page.results.outputs()]
    brush = page.extras.get("brush")
    if brush is not None:
        outputs += [brush.editor, brush.mask, brush.preview, brush.note, brush.mode]
    return outputs


def shown(page: Page, studio: Studio, history: History, entry: HistoryEntry, current: Workspace | None) -> list[Any]:
    """The values of restore_outputs for `entry`."""
    ws, view = restore(studio, entry, current)
    values = [ws, history, *inverted(studio, ws)[1:], entry.caption, *control_values(studio, entry)]
    values += result_values(page, view)
    if page.extras.get("brush") is not None:
        values += brush_values(entry, ws)
    return values


def wire_history(page: Page, studio: Studio, panel: HistoryPanel) -> None:
    """Each edit recorded; a click on the gallery (or /restore with an index) and Undo restore an entry."""

    def record(ws: Workspace | None, history: History | None) -> tuple[Any, Any]:
        """The edit just made as the newest entry."""
        history = history or History()
        if ws is not None and ws.result is not None:
            history.add(ws)
        return history, history.gallery()

    page.events["edit"].success(record, [page.workspace, panel.history], [panel.history, panel.gallery], **QUICK)

    @page_errors
    def select(index: float | None, current: Workspace | None, history: History | None) -> list[Any]:
        """Restore the entry at `index` of the gallery."""
        history = history or History()
        entry = history.select(int(index) if index is not None else -1)
        return shown(page, studio, history, entry, current)

    @page_errors
    def undo(current: Workspace | None, history: History | None) -> list[Any]:
        """Restore the entry before the one shown."""
        history = history or History()
        return shown(page, studio, history, history.undo(), current)

    def clicked(evt: gr.SelectData) -> int:
        """The gallery index clicked."""
        return int(evt.index)

    outputs = restore_outputs(page, panel)
    quick: dict[str, Any] = {"concurrency_id": "history", "show_progress": "hidden"}
    clicks = panel.gallery.select(clicked, None, [panel.index], **QUICK)
    clicks.then(select, [panel.index, page.workspace, panel.history], outputs, api_name="restore", **quick)
    panel.undo.click(undo, [page.workspace, panel.history], outputs, api_name="undo", **quick)
