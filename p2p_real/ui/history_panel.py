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
from p2p_real.ui.history import History, HistoryEntry, record, restore
from p2p_real.ui.inverting import inverted
from p2p_real.ui.layout import Page
from p2p_real.ui.messages import page_errors
from p2p_real.ui.steps import QUICK
from p2p_real.ui.studio import Studio, Workspace

GALLERY_LABEL = "history: every edit of this photo (click one to go back to it)"


@dataclass
class HistoryPanel:
    """The history's components (the history itself is the workspace's: Workspace.history)."""

    gallery: gr.Gallery
    undo: gr.Button
    index: gr.Number  # hidden: the entry to show (set by a click on the gallery, or by the API)


def add_history(page: Page) -> HistoryPanel:
    """The panel in the page's history slot; every edit is recorded (page.extras["after edit"]); a new photo
    empties it."""
    with page.slots["history"]:
        gallery = gr.Gallery(
            label=GALLERY_LABEL,
            columns=5,
            height=240,
            allow_preview=False,
            preview=False,
            object_fit="contain",
            format="png",
            elem_id="history",
        )
        undo = gr.Button("Undo: back one edit", interactive=False, elem_id="undo")
        index = gr.Number(visible=False, precision=0, elem_id="history-index")
    panel = HistoryPanel(gallery, undo, index)
    page.extras["history"] = panel
    page.extras.setdefault("after edit", []).append(record)
    page.extras.setdefault("gates", []).append((undo, "edit"))
    page.reset((gallery, []), (index, None))
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


def brush_values(entry: HistoryEntry, ws: Workspace) -> list[Any]:
    """The brush (editor, mask, preview, note, mode) with the entry's painted mask, if it had one."""
    mask = None
    if entry.choices.mask is not None and entry.choices.mask.is_file():
        with Image.open(entry.choices.mask) as opened:
            mask = opened.convert("L")
    preview = mask_preview(ws.original, mask) if mask is not None else None
    painted = entry.choices.mask if mask is not None else None
    return [editor_value(ws.original, painted), mask, preview, painted_note(mask), entry.choices.mask_mode]


def restore_outputs(page: Page) -> list[Any]:
    """What restoring an entry sets: the workspace, step 2's picture and report, the caption, the edit controls,
    the results, and the brush when the page has one."""
    step = page.invert
    outputs = [page.workspace, step.reconstruction, step.verdict, step.report, page.photo.caption]
    outputs += [*page.edit.controls(), *page.results.outputs()]
    brush = page.extras.get("brush")
    if brush is not None:
        outputs += [brush.editor, brush.mask, brush.preview, brush.note, brush.mode]
    return outputs


def shown(page: Page, studio: Studio, entry: HistoryEntry, current: Workspace | None) -> list[Any]:
    """The values of restore_outputs for `entry`."""
    ws, view = restore(studio, entry, current)
    values = [ws, *inverted(studio, ws)[1:], entry.caption, *control_values(studio, entry)]
    values += page.results.values(view)
    if page.extras.get("brush") is not None:
        values += brush_values(entry, ws)
    return values


def history_of(ws: Workspace | None) -> History:
    """The history of the page's workspace (an empty one before its first edit)."""
    return ws.history if ws is not None and ws.history is not None else History()


def wire_history(page: Page, studio: Studio, panel: HistoryPanel) -> None:
    """The gallery follows the edits; a click on it (or /restore with an index) and Undo restore an entry."""

    def gallery(ws: Workspace | None) -> list[Any]:
        """The gallery of the workspace's history."""
        return history_of(ws).gallery()

    for name in ("edit", "invert", "continue"):
        page.events[name].success(gallery, [page.workspace], [panel.gallery], **QUICK)

    @page_errors
    def select(index: float | None, current: Workspace | None) -> list[Any]:
        """Restore the entry at `index` of the gallery."""
        entry = history_of(current).select(int(index) if index is not None else -1)
        return shown(page, studio, entry, current)

    @page_errors
    def undo(current: Workspace | None) -> list[Any]:
        """Restore the entry before the one shown."""
        return shown(page, studio, history_of(current).undo(), current)

    def clicked(evt: gr.SelectData) -> int:
        """The gallery index clicked."""
        return int(evt.index)

    outputs = restore_outputs(page)
    quick: dict[str, Any] = {"concurrency_id": "history", "show_progress": "hidden"}
    clicks = panel.gallery.select(clicked, None, [panel.index], **QUICK)
    clicks.then(select, [panel.index, page.workspace], outputs, api_name="restore", **quick)
    panel.undo.click(undo, [page.workspace], outputs, api_name="undo", **quick)
