"""The Gradio page of `p2p-real ui`: components and events over a Studio, and launching it.

No editing logic here: each handler calls the Studio or p2p_real.ui.choices and turns the library's errors
into a message on the page (gr.Error), never a traceback. The calls that run the model share one
concurrency group of one: one model job at a time, whatever the number of pages open.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from inversion.methods import DEFAULT_METHOD, METHOD_NAMES
from p2p_real.editor import Cancelled
from p2p_real.spec import DEFAULT_CROSS_REPLACE, DEFAULT_SELF_REPLACE, EDIT_KINDS, MAX_REWEIGHT, EditSpec
from p2p_real.ui.choices import EditChoices, changed_words, prompt_words, slider
from p2p_real.ui.sessions import MAX_UPLOAD_BYTES, SESSION_IDLE_S
from p2p_real.ui.studio import StepReport, Studio, Workspace, coverage_text
from p2p_real.ui.sweeps import PAGE_SWEEPS, pick_index, sweep_page

log = logging.getLogger(__name__)
MODEL_JOBS = "model"  # the concurrency group of invert and edit
STAGES = {
    "ddim": "inverting: DDIM pivot",
    "null-text": "inverting: null-text optimisation",
    "reconstructing": "reconstructing",
    "editing": "editing",
}
PROGRESS = gr.Progress()  # the marker by which Gradio hands a handler its progress bar (one per event)
EMPTY_MASK = (
    "the blend mask is empty at this threshold, so the edit changed nothing: lower the threshold or "
    "pick other blend words"
)


@dataclass(frozen=True)
class PageDefaults:
    """What the page starts with."""

    method: str = DEFAULT_METHOD
    steps: int = 50
    title: str = "p2p-real"
    model: str = ""
    examples: Sequence[tuple[str, str, str]] = ()  # (photo file, caption, target)


def one_line(exc: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none)."""
    return " ".join((str(exc) or type(exc).__name__).split())


def page_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler so that every error reaches the page as a message (gr.Error): the library's user errors
    (ValueError, OSError, Cancelled) as they are, others with their type; tracebacks go to the server's log only."""

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        """Call the handler; turn its exception into a gr.Error."""
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Cancelled as exc:
            raise gr.Error(f"stopped ({one_line(exc)})", title="Stopped", print_exception=False) from None
        except (ValueError, OSError) as exc:
            raise gr.Error(one_line(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("%s failed", handler.__name__)
            raise gr.Error(
                f"{type(exc).__name__}: {one_line(exc)} (the server's log has the details)", print_exception=False
            ) from None

    return wrapped


def upload_errors(preprocess: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a component's preprocess so that an upload it cannot read is a message on the page (gr.Error)."""

    @functools.wraps(preprocess)
    def wrapped(payload: Any) -> Any:
        """Preprocess the upload; an error becomes a gr.Error naming it."""
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(f"the upload is not a readable image ({one_line(exc)})", print_exception=False) from None

    return wrapped


def progress_report(progress: gr.Progress) -> StepReport:
    """The Studio's step reports as the page's progress bar."""

    def report(stage: str, step: int, steps: int) -> None:
        """Move the bar to step + 1 of `steps`."""
        progress((step + 1, steps), desc=STAGES.get(stage, stage))

    return report


def inversion_text(ws: Workspace) -> str:
    """The reconstruction report and where the inversion came from."""
    how = {"reused": "reused the saved inversion", "continued": "continues the last edit, not inverted again"}.get(
        ws.origin, "inverted now"
    )
    path = ws.inversion.path.name if ws.inversion.path is not None else "not saved"
    return f"{ws.reconstruction.report()}\n{how}: {path}"


def word_updates(tokenizer: Any, caption: str, target: str, reweight: Sequence[str] | None) -> tuple[dict, dict, dict]:
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


def page_choices(
    ws: Workspace | None,
    caption: str,
    target: str,
    blend_source: Sequence[str] | None,
    blend_target: Sequence[str] | None,
    threshold: float,
    reweight_words: Sequence[str] | None,
    factor: float,
    kind: str,
    cross: float,
    self_: float,
) -> tuple[Workspace, EditChoices]:
    """The page's edit controls as EditChoices, once a photo is inverted under the caption still shown."""
    if ws is None:
        raise ValueError("invert a photo first")
    if (caption or "").strip() != ws.inversion.prompt.strip():
        raise ValueError(
            f"the caption changed since the photo was inverted with {ws.inversion.prompt!r}: invert it again"
        )
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


def build_app(studio: Studio, defaults: PageDefaults = PageDefaults()) -> gr.Blocks:
    """The page: photo and caption, inversion, edit settings, the results and the downloads."""
    spec = EditSpec()
    with gr.Blocks(title=defaults.title, analytics_enabled=False) as page:
        workspace = gr.State(None, time_to_live=SESSION_IDLE_S, delete_callback=studio.forget)  # freed when idle
        gr.Markdown(
            f"# {defaults.title}\nInvert a photo once, then edit it by editing its caption. Model: `{defaults.model}`."
        )
        with gr.Row():
            with gr.Column():
                photo = gr.Image(label="photo", type="filepath", image_mode=None, sources=["upload"], elem_id="photo")
                # an unreadable upload: a message, not null (this component's method replaced: mypy refuses that)
                photo.preprocess = upload_errors(photo.preprocess)  # type: ignore[method-assign,assignment]
                caption = gr.Textbox(label="caption: what the photo shows", elem_id="caption")
                with gr.Row():
                    method = gr.Dropdown(
                        list(METHOD_NAMES), value=defaults.method, label="inversion method", elem_id="method"
                    )
                    steps = gr.Slider(2, 200, value=defaults.steps, step=1, label="steps", elem_id="steps")
                invert_button = gr.Button("Invert", variant="primary", elem_id="invert")
                target = gr.Textbox(label="target prompt: the caption with your change", elem_id="target", render=False)
                if defaults.examples:
                    gr.Examples([list(e) for e in defaults.examples], [photo, caption, target], label="example")
            with gr.Column():
                reconstruction = gr.Image(
                    label="reconstruction", format="png", interactive=False, elem_id="reconstruction"
                )
                report = gr.Textbox(label="reconstruction report", lines=5, interactive=False, elem_id="report")
        with gr.Row():
            with gr.Column():
                target.render()
                blend_source = gr.CheckboxGroup(label="blend: caption words", elem_id="blend-source")
                blend_target = gr.CheckboxGroup(label="blend: target words", elem_id="blend-target")
                threshold = gr.Slider(
                    0, 1, value=spec.blend_threshold, step=0.01, label="blend threshold", elem_id="threshold"
                )
                with gr.Row():
                    reweight_words = gr.Dropdown([], multiselect=True, label="reweight words", elem_id="reweight")
                    factor = gr.Slider(
                        -MAX_REWEIGHT, MAX_REWEIGHT, value=1.0, step=0.1, label="reweight factor", elem_id="factor"
                    )
                with gr.Accordion("attention injection", open=False):
                    kind = gr.Radio(list(EDIT_KINDS), value=spec.edit, label="edit kind", elem_id="kind")
                    cross = gr.Slider(
                        0, 1, value=DEFAULT_CROSS_REPLACE, step=0.05, label="cross-attention steps", elem_id="cross"
                    )
                    self_ = gr.Slider(
                        0, 1, value=DEFAULT_SELF_REPLACE, step=0.05, label="self-attention steps", elem_id="self"
                    )
                with gr.Row():
                    edit_button = gr.Button("Edit", variant="primary", elem_id="edit")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
                continue_button = gr.Button("Edit this result", elem_id="continue")  # p2p_real.core.chain
                with gr.Accordion("sweep: try several values of a setting at once", open=False):  # docs/sweep.md
                    with gr.Row():
                        sweep_setting = gr.Dropdown(
                            list(PAGE_SWEEPS),
                            value=next(iter(PAGE_SWEEPS)),
                            label="setting to sweep",
                            elem_id="sweep-setting",
                        )
                        sweep_values = gr.Textbox(
                            "0.2,0.5,0.8", label="its values, comma-separated", elem_id="sweep-values"
                        )
                    sweep_button = gr.Button("Sweep", elem_id="sweep")
                    sweep_sheet = gr.Image(
                        label="contact sheet: one edit per value",
                        format="png",
                        interactive=False,
                        elem_id="sweep-sheet",
                    )
                    sweep_pick = gr.Dropdown(
                        [],
                        label="pick the best: loads its settings into the controls",
                        allow_custom_value=True,
                        elem_id="sweep-pick",
                    )
                    sweep_state = gr.State([])  # (pick, slider values) per combination of the last sweep
            with gr.Column():
                comparison = comparison_components()
                mask = gr.Image(label="blend mask over the photo", format="png", interactive=False, elem_id="mask")
                coverage = gr.Markdown(elem_id="coverage")
        heatmaps = gr.Gallery(label="attention per word", columns=6, format="png", elem_id="heatmaps")
        with gr.Row():
            downloads = gr.File(
                label="downloads: the edit, its mask, the sidecar and the inversion",
                file_count="multiple",
                interactive=False,
                height=180,
                elem_id="downloads",
            )
            command = gr.Textbox(
                label="the same edit on the command line",
                lines=4,
                max_lines=8,
                interactive=False,
                buttons=["copy"],
                elem_id="command",
            )

        @page_errors
        def invert(
            photo: str | None,
            caption: str,
            method: str,
            steps: float,
            target: str,
            old: Workspace | None,
            progress: gr.Progress = PROGRESS,
        ) -> tuple:
            """Invert the photo (or reuse its inversion); start the target from the caption."""
            studio.forget(old)
            ws = studio.invert(photo, caption, method, int(steps), progress_report(progress))
            if ws.origin == "reused":
                gr.Info("reused the saved inversion of this photo and these settings")
            return ws, ws.reconstruction.image, inversion_text(ws), target if (target or "").strip() else caption

        @page_errors
        def edit(
            ws: Workspace | None,
            caption: str,
            target: str,
            blend_source: list[str],
            blend_target: list[str],
            threshold: float,
            reweight_words: list[str],
            factor: float,
            kind: str,
            cross: float,
            self_: float,
            progress: gr.Progress = PROGRESS,
        ) -> tuple:
            """Edit the inverted photo with the page's settings."""
            ws, choices = page_choices(
                ws, caption, target, blend_source, blend_target, threshold, reweight_words, factor, kind, cross, self_
            )
            view = studio.edit(ws, choices, progress_report(progress))
            if view.coverage == 0:
                gr.Warning(EMPTY_MASK)
            return (
                ws,
                *comparison_values(view.before, view.after, len(comparison)),
                view.mask,
                coverage_text(view.coverage),
                view.heatmaps,
                [str(p) for p in view.files],
                view.command,
            )

        @page_errors
        def remask(ws: Workspace | None, threshold: float) -> tuple:
            """The last edit's mask at the slider's threshold, from its stored maps (no sampling)."""
            if ws is None or ws.result is None:
                return gr.update(), gr.update()
            overlay, share = studio.mask(ws, slider(threshold))
            return overlay, coverage_text(share)

        @page_errors
        def words(caption: str, target: str, reweight: list[str]) -> tuple:
            """The word pickers for the current prompts."""
            return word_updates(studio.tokenizer, caption, target, reweight)

        @page_errors
        def continue_edit(ws: Workspace | None, progress: gr.Progress = PROGRESS) -> tuple:
            """The last edit becomes the photo being edited (its own inversion); its target becomes the caption."""
            ws = studio.continue_edit(ws, progress_report(progress))
            return ws, ws.reconstruction.image, inversion_text(ws), ws.inversion.prompt, ws.inversion.prompt

        @page_errors
        def sweep(
            ws: Workspace | None,
            caption: str,
            target: str,
            blend_source: list[str],
            blend_target: list[str],
            threshold: float,
            reweight_words: list[str],
            factor: float,
            kind: str,
            cross: float,
            self_: float,
            setting: str,
            values: str,
        ) -> tuple:
            """One edit per value of the chosen setting, the others as the page sets them: the contact sheet."""
            ws, choices = page_choices(
                ws, caption, target, blend_source, blend_target, threshold, reweight_words, factor, kind, cross, self_
            )
            view = sweep_page(studio, ws, choices, setting, values)
            return view.sheet, gr.update(choices=view.picks, value=None), list(zip(view.picks, view.sliders))

        @page_errors
        def pick(choice: str | None, combinations: list) -> tuple:
            """Load the picked combination's settings into the edit controls."""
            picks = [label for label, _ in combinations or []]
            values = combinations[pick_index(picks, choice)][1]
            return values["kind"], values["cross"], values["self"], values["threshold"]

        def stop() -> None:
            """Stop the invert or edit in progress after its current step."""
            studio.editor.cancel()

        def forget(old: Workspace | None) -> tuple:
            """A new photo: forget the inversion of the last one."""
            studio.forget(old)
            return None, None, ""

        gpu: dict[str, Any] = {"concurrency_id": MODEL_JOBS, "concurrency_limit": 1}
        invert_button.click(
            invert,
            [photo, caption, method, steps, target, workspace],
            [workspace, reconstruction, report, target],
            api_name="invert",
            **gpu,
        )
        edit_button.click(
            edit,
            [
                workspace,
                caption,
                target,
                blend_source,
                blend_target,
                threshold,
                reweight_words,
                factor,
                kind,
                cross,
                self_,
            ],
            [workspace, *comparison, mask, coverage, heatmaps, downloads, command],
            api_name="edit",
            **gpu,
        )
        threshold.change(
            remask,
            [workspace, threshold],
            [mask, coverage],
            api_name="mask",
            trigger_mode="always_last",
            concurrency_id="mask",
            show_progress="hidden",
        )
        gr.on(
            [caption.change, target.change],
            words,
            [caption, target, reweight_words],
            [blend_source, blend_target, reweight_words],
            api_name="words",
            trigger_mode="always_last",
            concurrency_id="words",
            show_progress="hidden",
        )
        photo.change(
            forget, [workspace], [workspace, reconstruction, report], api_visibility="private", concurrency_id="words"
        )
        stop_button.click(stop, None, None, api_name="stop", concurrency_id="stop", concurrency_limit=None)
        sweep_button.click(
            sweep,
            [
                workspace,
                caption,
                target,
                blend_source,
                blend_target,
                threshold,
                reweight_words,
                factor,
                kind,
                cross,
                self_,
                sweep_setting,
                sweep_values,
            ],
            [sweep_sheet, sweep_pick, sweep_state],
            api_name="sweep",
            **gpu,
        )
        sweep_pick.input(
            pick,
            [sweep_pick, sweep_state],
            [kind, cross, self_, threshold],
            api_name="pick",
            concurrency_id="words",
            show_progress="hidden",
        )
        continue_button.click(
            continue_edit, [workspace], [workspace, reconstruction, report, caption, target], api_name="continue", **gpu
        )
    return page


def comparison_components() -> list[gr.components.Component]:
    """The before / after view at the photo's resolution: Gradio's ImageSlider, else the two side by side."""
    if hasattr(gr, "ImageSlider"):
        return [gr.ImageSlider(label="before / after", type="pil", format="png", interactive=False, elem_id="compare")]
    with gr.Row():
        return [
            gr.Image(label="before", format="png", interactive=False, elem_id="before"),
            gr.Image(label="after", format="png", interactive=False, elem_id="compare"),
        ]


def comparison_values(before: Image.Image, after: Image.Image, n: int) -> list[Any]:
    """The values of the comparison components: one pair for a slider, else the two images."""
    return [(before, after)] if n == 1 else [before, after]


def launch(
    page: gr.Blocks, host: str, port: int | None, out: Path, quiet: bool = False, block: bool = True
) -> gr.Blocks:
    """Serve the page on host:port (None: the first free port from 7860) with a queue; return it running when
    `block` is False, else serve until interrupted."""
    page.queue(default_concurrency_limit=1)
    page.launch(
        server_name=host,
        server_port=port,
        blocked_paths=[str(out)],
        max_file_size=MAX_UPLOAD_BYTES,
        show_error=False,
        quiet=True,
        prevent_thread_lock=True,
        inbrowser=False,
        share=False,
        footer_links=["api", "settings"],
    )  # serves no file of `out`: see p2p_real/ui/sessions.py
    if not quiet:
        print(f"p2p-real ui: {page.local_url} (Ctrl+C stops it)", flush=True)
    if block:
        page.block_thread()
    return page
