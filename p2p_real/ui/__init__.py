"""The web page of `p2p-real ui`: a thin Gradio layer over the library.

`choices` (the words a page offers, the EditSpec and command line of its settings), `studio` (one model's work
for the page: invert, edit, re-threshold, files) and the brush, history and sweep logic (`brush`, `history`,
`sweeps`) import no Gradio and are tested on their own. The Gradio side reads as the page's steps: `layout` (the
components of steps 1 photo and caption, 2 Invert, 3 Edit and the results), `steps` (which buttons are ready),
`inverting` and `editing` (the events of steps 1-2 and 3), `messages` (errors as messages, Stop as a notice),
the panels (`brush_panel`, `history_panel`, `sweep_panel`) and `app`, which assembles them and launches the page.
Importing this package loads neither torch nor Gradio.
"""
