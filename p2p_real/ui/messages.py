"""What the page tells people while and after a job runs: the progress bar, errors as messages (gr.Error, never a
traceback) and Stop as a notice (gr.Info), not an error."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from p2p_real.editor import Cancelled
from p2p_real.ui.studio import StepReport

log = logging.getLogger(__name__)
STAGES = {
    "ddim": "inverting: DDIM pivot",
    "null-text": "inverting: null-text optimisation",
    "reconstructing": "reconstructing",
    "editing": "editing",
}
PROGRESS = gr.Progress()  # the marker by which Gradio hands a handler its progress bar (one per event)
STOPPED = "Stopped: nothing was changed, the page shows what it showed before"


def one_line(exc: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none)."""
    return " ".join((str(exc) or type(exc).__name__).split())


def page_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler so that every error reaches the page as a message (gr.Error): the library's user errors
    (ValueError, OSError) as they are, others with their type; tracebacks go to the server's log only. A job
    stopped with Stop is a notice (gr.Info) and changes nothing on the page."""

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        """Call the handler; turn its exception into a gr.Error, or a stop into a notice."""
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Cancelled as exc:
            gr.Info(f"{STOPPED} ({one_line(exc)})", title="Stopped")
            return gr.skip()  # every output as it was
        except (ValueError, OSError) as exc:
            raise gr.Error(one_line(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("%s failed", handler.__name__)
            raise gr.Error(
                f"{type(exc).__name__}: {one_line(exc)} (the server's log has the details)", print_exception=False
            ) from None

    return wrapped


@dataclass(frozen=True)
class Unreadable:
    """An upload that is not a picture the page can read: its file name and why."""

    name: str
    reason: str

    def message(self) -> str:
        """The message the page shows."""
        return f"{self.name} is not a picture the page can read ({self.reason}): upload a PNG, JPEG or WebP photo"


def unreadable(payload: Any, exc: BaseException) -> Unreadable:
    """An upload that an image component could not read, named as the person named the file (not by the page's
    copy of it)."""
    path = str(getattr(payload, "path", "") or "")
    name = getattr(payload, "orig_name", None) or Path(path).name or "the upload"
    return Unreadable(name, one_line(exc).replace(path, name) if path else one_line(exc))


def progress_report(progress: gr.Progress) -> StepReport:
    """The Studio's step reports as the page's progress bar."""

    def report(stage: str, step: int, steps: int) -> None:
        """Move the bar to step + 1 of `steps`."""
        progress((step + 1, steps), desc=STAGES.get(stage, stage))

    return report
