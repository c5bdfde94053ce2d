"""The page's brush panel (docs/page_tools.md, "Brush masks"): paint over the photo where the edit may change it;
the painted mask, shown over the photo, replaces the attention mask or keeps only its painted part, and Edit (and
Sweep) use it. The mask itself is p2p_real/ui/brush.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from p2p_real.spec import MASK_MODES
from p2p_real.ui.brush import MASK_COLOR, brush_choices, editor_value, mask_preview, painted_mask
from p2p_real.ui.choices import EditChoices
from p2p_real.ui.layout import Page
from p2p_real.ui.messages import page_errors
from p2p_real.ui.steps import QUICK
from p2p_real.ui.studio import Studio, Workspace

MODE_LABEL = "the painted mask: replace the attention mask, or intersect it (keep its part under the paint)"
BRUSH_LABEL = "brush: paint where the edit may change the photo"
NO_PAINT = "Nothing painted: the edit uses the attention mask of the blend words."


@dataclass
class BrushPanel:
    """The brush's components."""

    editor: gr.ImageEditor  # the photo with the paint on it
    mode: gr.Radio  # EditSpec.mask_mode
    preview: gr.Image  # the painted mask over the photo
    note: gr.Markdown  # what the paint does
    mask: gr.State  # the painted mask at the photo's resolution ("L"), or None


def add_brush(page: Page, studio: Studio) -> BrushPanel:
    """The panel in the page's brush slot; Edit and Sweep take its mask; a new photo clears it."""
    hex_color = "#{:02x}{:02x}{:02x}".format(*MASK_COLOR)
    with page.slots["brush"], gr.Accordion(BRUSH_LABEL, open=False, elem_id="brush-panel"):
        editor = gr.ImageEditor(
            type="pil",
            image_mode="RGBA",
            sources=[],
            transforms=[],
            layers=False,
            brush=gr.Brush(colors=[hex_color], default_color=hex_color, color_mode="fixed"),
            eraser=gr.Eraser(),
            format="png",
            label="paint over the photo (after Invert)",
            elem_id="brush",
        )
        mode = gr.Radio(list(MASK_MODES), value="replace", label=MODE_LABEL, elem_id="mask-mode")
        note = gr.Markdown(NO_PAINT, elem_id="brush-note")
        preview = gr.Image(
            label="the brush mask over the photo", format="png", interactive=False, elem_id="brush-preview"
        )
    panel = BrushPanel(editor, mode, preview, note, gr.State(None))
    page.extras["brush"] = panel
    page.extras["edit inputs"] = [panel.mask, panel.mode]

    def hook(choices: EditChoices, ws: Workspace, mask: Image.Image | None, mode: str | None) -> EditChoices:
        """The edit's choices with the painted mask, saved into the output folder."""
        return brush_choices(choices, mask, mode, studio.out, ws.name)

    page.extras["choices hook"] = hook
    page.reset((editor, None), (preview, None), (note, NO_PAINT), (panel.mask, None), (mode, "replace"))
    return panel


def painted_note(mask: Image.Image | None) -> str:
    """What the paint does, in a line."""
    if mask is None:
        return NO_PAINT
    share = np.count_nonzero(np.asarray(mask)) / (mask.width * mask.height)
    return f"Painted {100 * share:.0f}% of the photo: Edit and Sweep use this mask."


def wire_brush(page: Page, panel: BrushPanel) -> None:
    """Painting gives the mask and its preview; an inversion (or "Edit this result") puts its photo in the editor,
    and so does the editor's bin (which would empty it of the photo too)."""

    @page_errors
    def paint(ws: Workspace | None, value: dict[str, Any] | None) -> tuple[Any, ...]:
        """The painted mask at the photo's resolution, and the photo tinted where it is painted."""
        if ws is None:  # the editor emptied by a new photo is no paint; paint before Invert has nothing under it
            if painted_mask(value, (1, 1)) is not None:
                raise ValueError("invert a photo first: the brush paints over the inverted photo")
            return None, None, NO_PAINT
        photo = ws.original
        mask = painted_mask(value, photo.size)
        return mask, (mask_preview(photo, mask) if mask is not None else None), painted_note(mask)

    # the editor's first `input` (and first `change`) never reach the server (Gradio's frontend skips them): both
    gr.on(
        [panel.editor.change, panel.editor.input],
        paint,
        [page.workspace, panel.editor],
        [panel.mask, panel.preview, panel.note],
        api_name="brush",
        trigger_mode="always_last",
        concurrency_id="brush",
        show_progress="hidden",
    )

    def show_photo(ws: Workspace | None) -> tuple[Any, ...]:
        """The inverted photo in the editor, nothing painted."""
        return editor_value(ws.original if ws is not None else None), None, None, NO_PAINT

    outputs = [panel.editor, panel.mask, panel.preview, panel.note]
    for name in ("invert", "continue"):
        page.events[name].success(show_photo, [page.workspace], outputs, **QUICK)
    panel.editor.clear(show_photo, [page.workspace], outputs, **QUICK)  # its bin empties all: the photo back
