"""The page's sweep panel (docs/sweep.md, docs/page_tools.md "Sweeps"): choose a setting and its values, Sweep (a
model job), see one tile per value, click the best to load its values into the edit controls. The sweep itself is
p2p_real/ui/sweeps.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from p2p_real.ui.editing import edit_inputs, hooked_choices
from p2p_real.ui.layout import Page
from p2p_real.ui.messages import page_errors
from p2p_real.ui.steps import QUICK, model_job
from p2p_real.ui.studio import Studio, Workspace
from p2p_real.ui.sweeps import PAGE_SWEEPS, sweep_page, tile_settings


@dataclass
class SweepPanel:
    """The sweep's components."""

    setting: gr.Dropdown
    values: gr.Textbox
    button: gr.Button
    tiles: gr.Gallery  # one edit per combination: a click loads its settings
    sheet: gr.Image  # the contact sheet as saved (the photo, its reconstruction and every edit)
    index: gr.Number  # hidden: the tile picked (set by a click, or by the API)
    combinations: gr.State  # the slider values of each combination of the last sweep


def add_sweep_panel(page: Page) -> SweepPanel:
    """The panel in the page's sweep slot; a new photo resets it, and Sweep waits for an inversion."""
    with page.slots["sweep"], gr.Accordion("sweep: try several values of a setting at once", open=False):
        with gr.Row():
            setting = gr.Dropdown(
                list(PAGE_SWEEPS), value=next(iter(PAGE_SWEEPS)), label="setting to sweep", elem_id="sweep-setting"
            )
            values = gr.Textbox("0.2,0.5,0.8", label="its values, comma-separated", elem_id="sweep-values")
        button = gr.Button("Sweep", interactive=False, elem_id="sweep")
        tiles = gr.Gallery(
            label="one edit per value: click the best to load its settings into the controls",
            columns=4,
            height=260,
            allow_preview=False,
            preview=False,
            object_fit="contain",
            format="png",
            elem_id="sweep-tiles",
        )
        with gr.Accordion("the contact sheet, as saved", open=False):
            sheet = gr.Image(format="png", interactive=False, show_label=False, elem_id="sweep-sheet")
        index = gr.Number(visible=False, precision=0, elem_id="sweep-index")
    panel = SweepPanel(setting, values, button, tiles, sheet, index, gr.State([]))
    page.extras["sweep"] = panel
    page.extras.setdefault("gates", []).append((button, "inversion"))
    page.reset((tiles, []), (sheet, None), (index, None), (panel.combinations, []))
    return panel


def wire_sweep(page: Page, studio: Studio, panel: SweepPanel) -> None:
    """Sweep as a model job, and a click on a tile (or /pick with its index) that loads that combination's values
    into the edit controls."""

    @page_errors
    def sweep(ws: Workspace | None, caption: str, *values: Any) -> tuple[Any, ...]:
        """One edit per value of the chosen setting, the others as the page sets them: the tiles and the sheet."""
        *controls, setting, text = values
        ws, choices = hooked_choices(page, ws, caption, controls)
        view = sweep_page(studio, ws, choices, setting, text)
        return view.tiles, view.sheet, view.sliders

    @page_errors
    def pick(index: float | None, combinations: list[dict[str, Any]]) -> tuple[Any, ...]:
        """Load the settings of the combination at `index` into the edit controls."""
        values = tile_settings(combinations or [], None if index is None else int(index))
        return values["kind"], values["cross"], values["self"], values["threshold"]

    def clicked(evt: gr.SelectData) -> int:
        """The tile clicked."""
        return int(evt.index)

    inputs = [*edit_inputs(page), panel.setting, panel.values]
    outputs = [panel.tiles, panel.sheet, panel.combinations]
    page.events["sweep"] = model_job(page, panel.button, sweep, inputs, outputs, "sweep")
    edit = page.edit
    clicks = panel.tiles.select(clicked, None, [panel.index], **QUICK)
    clicks.then(
        pick,
        [panel.index, panel.combinations],
        [edit.kind, edit.cross, edit.self_, edit.threshold],
        api_name="pick",
        concurrency_id="words",
        show_progress="hidden",
    )
