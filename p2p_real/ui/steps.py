"""The page's steps: which buttons are ready. Invert needs a readable photo and a caption, Edit (and what works on
an inversion) needs the photo inverted, "Edit this result" needs an edit, Stop needs a job running. A model job
turns every other button off while it runs and the right ones on again when it ends, however it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from p2p_real.ui.layout import Page
from p2p_real.ui.studio import Workspace

NEEDS = ("photo", "inversion", "edit", "job")  # what a button needs, from the first step to a running job
MODEL_JOBS = "model"  # the concurrency group of every call that runs the model: one at a time
QUICK: dict[str, Any] = {  # the events that only switch buttons: never queued behind a model job
    "concurrency_id": "steps",
    "concurrency_limit": None,
    "show_progress": "hidden",
    "api_visibility": "private",
}


def gates(page: Page) -> list[tuple[Any, str]]:
    """The page's buttons with what each needs (other parts add theirs to page.extras["gates"])."""
    own = [
        (page.invert.button, "photo"),
        (page.invert.stop, "job"),
        (page.edit.button, "inversion"),
        (page.edit.stop, "job"),
        (page.edit.continue_button, "edit"),
    ]
    return own + list(page.extras.get("gates", []))


def ready(photo_ok: bool, caption: str | None, ws: Workspace | None, running: bool) -> dict[str, bool]:
    """Which needs are met."""
    return {
        "photo": not running and bool(photo_ok) and bool((caption or "").strip()),
        "inversion": not running and isinstance(ws, Workspace),
        # an edit made (a restored entry of the history keeps its files, not its result; after a continue: neither)
        "edit": not running and isinstance(ws, Workspace) and (ws.result is not None or bool(ws.files)),
        "job": running,
    }


def gate_updates(
    needs: Sequence[str], photo_ok: bool, caption: str | None, ws: Workspace | None, running: bool = False
) -> list[Any]:
    """gr.update(interactive=...) for buttons that need `needs`."""
    met = ready(photo_ok, caption, ws, running)
    return [gr.update(interactive=met[need]) for need in needs]


def wire_gates(page: Page) -> None:
    """Switch the buttons as the caption changes (the photo's change switches them in inverting.py)."""
    buttons, needs = zip(*gates(page))
    page.photo.caption.change(
        lambda ok, caption, ws: gate_updates(needs, ok, caption, ws),
        [page.photo_ok, page.photo.caption, page.workspace],
        list(buttons),
        **QUICK,
    )


def model_job(
    page: Page, button: Any, fn: Callable[..., Any], inputs: list[Any], outputs: list[Any], api_name: str
) -> Any:
    """Wire `button` to run `fn` as a model job: the buttons off (Stop on), `fn`, then the buttons as the page now
    stands, whether `fn` succeeded, failed or was stopped. Returns `fn`'s event (chain `.success` onto it)."""
    buttons, needs = zip(*gates(page))
    state = [page.photo_ok, page.photo.caption, page.workspace]
    started = button.click(lambda: gate_updates(needs, False, "", None, running=True), None, list(buttons), **QUICK)
    job = started.then(fn, inputs, outputs, api_name=api_name, concurrency_id=MODEL_JOBS, concurrency_limit=1)
    job.then(lambda ok, caption, ws: gate_updates(needs, ok, caption, ws), state, list(buttons), **QUICK)
    return job
