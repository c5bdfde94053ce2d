"""The web page of `p2p-real ui`: a thin Gradio layer over the library.

`choices` (the words a page offers, the EditSpec and command line of its settings) and `studio` (one
model's work for the page: invert, edit, re-threshold, files) import no Gradio and are tested on their
own; `app` wires them to Gradio components. Importing this package loads neither torch nor Gradio.
"""
