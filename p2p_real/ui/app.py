"""The Gradio page of `p2p-real ui`: its steps laid out (p2p_real/ui/layout.py), the parts added, the events wired
(inverting.py: steps 1 and 2; editing.py: step 3; sweep_panel.py: the sweep), and launching it.

No editing logic here or there: each handler calls the Studio or p2p_real.ui.choices and turns the library's
errors into a message on the page (p2p_real/ui/messages.py). The calls that run the model share one concurrency
group of one: one model job at a time, whatever the number of pages open.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from p2p_real.ui.brush_panel import add_brush, wire_brush
from p2p_real.ui.editing import wire_continue_and_stop, wire_edit, wire_mask, wire_words
from p2p_real.ui.history_panel import add_history, wire_history
from p2p_real.ui.inverting import wire_invert, wire_photo
from p2p_real.ui.layout import PAGE_CSS, PageDefaults, build_layout
from p2p_real.ui.sessions import MAX_UPLOAD_BYTES
from p2p_real.ui.steps import wire_gates
from p2p_real.ui.studio import Studio
from p2p_real.ui.sweep_panel import add_sweep_panel, wire_sweep

__all__ = ["PageDefaults", "build_app", "launch"]


def build_app(studio: Studio, defaults: PageDefaults | None = None) -> gr.Blocks:
    """The page: 1 photo and caption, 2 Invert, 3 Edit, the results and the downloads."""
    defaults = defaults or PageDefaults()
    with gr.Blocks(title=defaults.title, analytics_enabled=False) as blocks:
        page = build_layout(defaults, studio.forget)
        # the parts that add components (and what a new photo resets, and the buttons they gate) come first,
        sweep = add_sweep_panel(page)
        brush = add_brush(page, studio)
        history = add_history(page)
        # then the events: a new photo resets what every part derived from the last one
        wire_photo(page, studio)
        wire_gates(page)
        wire_invert(page, studio)
        wire_edit(page, studio)
        wire_mask(page, studio)
        wire_continue_and_stop(page, studio)
        wire_words(page, studio)  # after the events that set the prompts (page.extras["words after"])
        wire_sweep(page, studio, sweep)
        wire_brush(page, brush)
        wire_history(page, studio, history)
    blocks.page = page  # for the tests and other parts: the components by step
    return blocks


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
        show_error=True,  # errors are messages already (messages.page_errors): none is hidden
        quiet=True,
        prevent_thread_lock=True,
        inbrowser=False,
        share=False,
        footer_links=["api", "settings"],
        css=PAGE_CSS,
    )  # serves no file of `out`: see p2p_real/ui/sessions.py
    if not quiet:
        print(f"p2p-real ui: {page.local_url} (Ctrl+C stops it)", flush=True)
    if block:
        page.block_thread()
    return page
