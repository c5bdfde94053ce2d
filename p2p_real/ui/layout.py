"""The page's components, laid out as its steps: 1 photo and caption, 2 Invert, 3 Edit, then the results.

Only components here, no events (p2p_real/ui/inverting.py and editing.py wire them). Each step's components are
held in a dataclass, and the page's in `Page`, so that the wiring (and the brush, history and sweep parts) can name
them. Components are made first (unrendered) and placed afterwards, so that the example can fill any of them.
"""

from __future__ import annotations

from abc import ABCMeta
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from inversion.methods import DEFAULT_METHOD, METHOD_NAMES
from p2p_real.spec import DEFAULT_CROSS_REPLACE, DEFAULT_SELF_REPLACE, EDIT_KINDS, MAX_REWEIGHT, EditSpec
from p2p_real.ui.messages import unreadable
from p2p_real.ui.sessions import SESSION_IDLE_S
from p2p_real.ui.studio import EditView, coverage_text

PICTURE_HEIGHT = 320  # the photo and its reconstruction are shown at this height, side by side
THRESHOLD_LABEL = "blend threshold (the mask below follows it at once; Edit applies it to the result)"
# the before / after slider's two sides, labelled on the picture itself
PAGE_CSS = """
#compare { position: relative; }
#compare::before, #compare::after {
  position: absolute; bottom: 12px; z-index: 1000; padding: 2px 8px; border-radius: 4px;
  background: rgba(0, 0, 0, 0.65); color: #fff; font-size: 13px; pointer-events: none;
}
#compare::before { content: "before: the photo"; left: 12px; }
#compare::after { content: "after: the edit"; right: 12px; }
#compare:not(:has(img))::before, #compare:not(:has(img))::after { display: none; }
"""


@dataclass(frozen=True)
class PageDefaults:
    """What the page starts with."""

    method: str = DEFAULT_METHOD
    steps: int = 50
    title: str = "p2p-real"
    model: str = ""
    # (photo file, caption, target, method, self-attention steps): an edit that works on this model
    examples: Sequence[tuple[str, str, str, str, float]] = ()


def _photo_upload_class() -> type[gr.Image]:
    """The class of the photo field: Gradio's image component, on which an upload it cannot read arrives at the
    handlers as messages.Unreadable, for them to say so (an error while reading it would only mark the outputs
    "Error"). A class, not a wrapped method: Gradio re-creates a component from its class once a session changes
    it (the example does). Made with ABCMeta.__new__, because Gradio's ComponentMeta.__new__ writes a .pyi stub
    beside the module of any subclass (it would shadow this module for type checkers) and adds nothing else to a
    subclass that declares no events."""

    def preprocess(self: gr.Image, payload: Any) -> Any:
        """The upload's path, or Unreadable."""
        try:
            return gr.Image.preprocess(self, payload)
        except Exception as exc:
            return unreadable(payload, exc)

    attrs = {
        "__module__": __name__,
        "__qualname__": "PhotoUpload",
        "__doc__": "The photo field: an unreadable upload arrives as messages.Unreadable.",
        "is_template": True,  # shown by the frontend as the image component it is
        "preprocess": preprocess,
    }
    return ABCMeta.__new__(type(gr.Image), "PhotoUpload", (gr.Image,), attrs)


PhotoUpload = _photo_upload_class()


@dataclass
class PhotoStep:
    """Step 1: the photo and what it shows."""

    photo: gr.Image  # a PhotoUpload
    caption: gr.Textbox
    note: gr.Markdown  # what is wrong with the photo, if anything


@dataclass
class InvertStep:
    """Step 2: the inversion's settings, its button and what it gave."""

    method: gr.Dropdown
    steps: gr.Slider
    button: gr.Button
    stop: gr.Button
    reconstruction: gr.Image
    verdict: gr.Markdown  # the report in plain words
    report: gr.Textbox  # its numbers, behind a disclosure


@dataclass
class EditStep:
    """Step 3: the target prompt, the words and sliders, and the buttons that run an edit."""

    target: gr.Textbox
    blend_source: gr.CheckboxGroup
    blend_target: gr.CheckboxGroup
    threshold: gr.Slider
    reweight_words: gr.Dropdown
    factor: gr.Slider
    kind: gr.Radio
    cross: gr.Slider
    self_: gr.Slider
    button: gr.Button
    stop: gr.Button
    continue_button: gr.Button

    def controls(self) -> list[Any]:
        """The edit's settings, in the order of the edit endpoint's parameters (EditChoices' fields)."""
        return [
            self.target,
            self.blend_source,
            self.blend_target,
            self.threshold,
            self.reweight_words,
            self.factor,
            self.kind,
            self.cross,
            self.self_,
        ]


@dataclass
class ResultsView:
    """What an edit shows: before / after, the mask, the heat maps, the downloads and the command line."""

    comparison: list[Any]  # one ImageSlider, or (before, after) images where Gradio has none
    mask: gr.Image
    coverage: gr.Markdown
    heatmaps: gr.Gallery
    downloads: gr.File
    command: gr.Textbox

    def outputs(self) -> list[Any]:
        """The components an edit fills, in the order of the edit endpoint's outputs."""
        return [*self.comparison, self.mask, self.coverage, self.heatmaps, self.downloads, self.command]

    def values(self, view: EditView) -> list[Any]:
        """What the components of outputs() show of an edit, in that order."""
        files = [str(p) for p in view.files]
        comparison = comparison_values(view.before, view.after, len(self.comparison))
        return [*comparison, view.mask, coverage_text(view.coverage), view.heatmaps, files, view.command]


@dataclass
class Page:
    """The page's components by step, what a new photo resets, and the events that later parts chain onto."""

    defaults: PageDefaults
    workspace: gr.State
    photo: PhotoStep
    invert: InvertStep
    edit: EditStep
    results: ResultsView
    photo_ok: gr.State  # whether the photo shown is one the page can read
    # (component, value) that a new photo resets: all that was derived from the last photo (more may be added)
    derived: list[tuple[Any, Any]] = field(default_factory=list)
    # events by name ("invert", "edit", "continue", "new photo"), for `.success(...)` chains of other parts
    events: dict[str, Any] = field(default_factory=dict)
    # empty columns where other parts put their components (`with page.slots["brush"]: ...`): "brush" (step 3,
    # under the threshold), "sweep" (step 3, under its buttons), "history" (under the results)
    slots: dict[str, gr.Column] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # the components other parts add, by name

    def reset(self, *pairs: tuple[Any, Any]) -> None:
        """Name more components that a new photo resets, with the value it resets them to."""
        self.derived.extend(pairs)


def photo_step() -> PhotoStep:
    """Step 1's components (unrendered)."""
    photo = PhotoUpload(
        label="photo",
        type="filepath",
        image_mode=None,
        sources=["upload"],
        height=PICTURE_HEIGHT,
        elem_id="photo",
        render=False,
    )
    caption = gr.Textbox(
        label="caption: what the photo shows",
        placeholder="e.g. a cat sitting on a wall",
        elem_id="caption",
        render=False,
    )
    return PhotoStep(photo, caption, gr.Markdown(elem_id="photo-note", render=False))


def invert_step(defaults: PageDefaults) -> InvertStep:
    """Step 2's components (unrendered)."""
    return InvertStep(
        method=gr.Dropdown(
            list(METHOD_NAMES), value=defaults.method, label="inversion method", elem_id="method", render=False
        ),
        steps=gr.Slider(2, 200, value=defaults.steps, step=1, label="steps", elem_id="steps", render=False),
        button=gr.Button("Invert", variant="primary", interactive=False, elem_id="invert", render=False),
        stop=gr.Button("Stop", variant="secondary", interactive=False, elem_id="stop-invert", render=False),
        reconstruction=gr.Image(
            label="reconstruction: the photo as the model gives it back",
            format="png",
            interactive=False,
            height=PICTURE_HEIGHT,
            elem_id="reconstruction",
            render=False,
        ),
        verdict=gr.Markdown(elem_id="verdict", render=False),
        report=gr.Textbox(label="the figures", lines=6, interactive=False, elem_id="report", render=False),
    )


def edit_step() -> EditStep:
    """Step 3's components (unrendered)."""
    spec = EditSpec()
    return EditStep(
        target=gr.Textbox(label="target prompt: the caption with your change", elem_id="target", render=False),
        blend_source=gr.CheckboxGroup(label="blend: caption words", elem_id="blend-source", render=False),
        blend_target=gr.CheckboxGroup(label="blend: target words", elem_id="blend-target", render=False),
        threshold=gr.Slider(
            0, 1, value=spec.blend_threshold, step=0.01, label=THRESHOLD_LABEL, elem_id="threshold", render=False
        ),
        reweight_words=gr.Dropdown([], multiselect=True, label="reweight words", elem_id="reweight", render=False),
        factor=gr.Slider(
            -MAX_REWEIGHT, MAX_REWEIGHT, value=1.0, step=0.1, label="reweight factor", elem_id="factor", render=False
        ),
        kind=gr.Radio(list(EDIT_KINDS), value=spec.edit, label="edit kind", elem_id="kind", render=False),
        cross=gr.Slider(
            0, 1, value=DEFAULT_CROSS_REPLACE, step=0.05, label="cross-attention steps", elem_id="cross", render=False
        ),
        self_=gr.Slider(
            0, 1, value=DEFAULT_SELF_REPLACE, step=0.05, label="self-attention steps", elem_id="self", render=False
        ),
        button=gr.Button("Edit", variant="primary", interactive=False, elem_id="edit", render=False),
        stop=gr.Button("Stop", variant="secondary", interactive=False, elem_id="stop", render=False),
        continue_button=gr.Button("Edit this result", interactive=False, elem_id="continue", render=False),
    )


def results_view() -> ResultsView:
    """The results' components, rendered where this is called."""
    comparison = comparison_components()
    mask = gr.Image(label="blend mask over the photo", format="png", interactive=False, elem_id="mask")
    coverage = gr.Markdown(elem_id="coverage")
    heatmaps = gr.Gallery(
        label="attention per word (the caption's words over the photo, the target's new words over the edit)",
        columns=4,
        format="png",
        elem_id="heatmaps",
    )
    return ResultsView(comparison, mask, coverage, heatmaps, *downloads_row())


def downloads_row() -> tuple[gr.File, gr.Textbox]:
    """The downloads and the command line, one above the other (the file names need the width)."""
    with gr.Column():
        downloads = gr.File(
            label="downloads: the edit, its mask, the sidecar and the inversion",
            file_count="multiple",
            interactive=False,
            height=180,
            elem_id="downloads",
        )
        command = gr.Textbox(
            label="the same edit on the command line (the photo by its path, so it runs from any folder)",
            lines=4,
            max_lines=8,
            interactive=False,
            buttons=["copy"],
            elem_id="command",
        )
    return downloads, command


def comparison_components() -> list[Any]:
    """The before / after view at the photo's resolution: Gradio's ImageSlider, else the two side by side."""
    if hasattr(gr, "ImageSlider"):
        return [
            gr.ImageSlider(
                label="before / after: drag the line",
                type="pil",
                format="png",
                interactive=False,
                height=PICTURE_HEIGHT,
                max_height=PICTURE_HEIGHT,
                elem_id="compare",
            )
        ]
    with gr.Row():
        return [
            gr.Image(label="before", format="png", interactive=False, elem_id="before"),
            gr.Image(label="after", format="png", interactive=False, elem_id="compare"),
        ]


def comparison_values(before: Any, after: Any, n: int) -> list[Any]:
    """The values of the comparison components: one pair for a slider, else the two images."""
    return [(before, after)] if n == 1 else [before, after]


def place_photo_step(
    photo: PhotoStep, edit: EditStep, invert: InvertStep, examples: Sequence[Sequence[Any]], page_events: dict[str, Any]
) -> None:
    """Step 1 in the current column: its heading, the photo, the caption and the example."""
    gr.Markdown("### 1 · Photo and caption\nUpload a photo and write what it shows.")
    photo.photo.render()
    photo.note.render()
    photo.caption.render()
    if examples:
        inputs = [photo.photo, photo.caption, edit.target, invert.method, edit.self_]
        example = gr.Examples(
            [list(e) for e in examples], inputs, label="example (click it, then Invert)", api_visibility="private"
        )
        page_events["example"] = example.load_input_event


def place_invert_step(step: InvertStep) -> None:
    """Step 2 in the current column: its heading, settings, buttons, the reconstruction and the report."""
    gr.Markdown("### 2 · Invert\nThe model learns the photo once; each edit then takes seconds.")
    with gr.Row():
        step.method.render()
        step.steps.render()
    with gr.Row():
        step.button.render()
        step.stop.render()
    step.reconstruction.render()
    step.verdict.render()
    with gr.Accordion("the figures behind the verdict", open=False, elem_id="figures"):
        step.report.render()


def place_edit_step(step: EditStep, slots: dict[str, gr.Column]) -> None:
    """Step 3's settings and buttons in the current column, with the slots of the brush and the sweep."""
    gr.Markdown("### 3 · Edit\nChange the caption into what the photo should show, then Edit.")
    step.target.render()
    step.blend_source.render()
    step.blend_target.render()
    step.threshold.render()
    slots["brush"] = gr.Column(elem_id="brush-slot")
    with gr.Row():
        step.reweight_words.render()
        step.factor.render()
    with gr.Accordion("attention injection", open=False):
        step.kind.render()
        step.cross.render()
        step.self_.render()
    with gr.Row():
        step.button.render()
        step.stop.render()
    step.continue_button.render()  # p2p_real.files.chain
    slots["sweep"] = gr.Column(elem_id="sweep-slot")


def build_layout(defaults: PageDefaults, forget: Any) -> Page:
    """The page's components in place: steps 1 and 2 side by side (the photo beside its reconstruction), then
    step 3 beside the results; `forget` frees a session's workspace when the session ends or idles out."""
    workspace = gr.State(None, time_to_live=SESSION_IDLE_S, delete_callback=forget)  # freed when idle
    photo, invert, edit = photo_step(), invert_step(defaults), edit_step()
    gr.Markdown(f"# {defaults.title}\nEdit a photo by editing its caption. Model: `{defaults.model}`.")
    slots: dict[str, gr.Column] = {}
    events: dict[str, Any] = {}
    with gr.Row():
        with gr.Column():
            place_photo_step(photo, edit, invert, defaults.examples, events)
        with gr.Column():
            place_invert_step(invert)
    with gr.Row():
        with gr.Column():
            place_edit_step(edit, slots)
        with gr.Column():
            results = results_view()
            slots["history"] = gr.Column(elem_id="history-slot")
    return Page(defaults, workspace, photo, invert, edit, results, gr.State(False), slots=slots, events=events)
