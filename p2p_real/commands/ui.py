"""p2p-real ui: a local web page that keeps a photo's inversion in the session, so that each edit takes seconds."""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path
from typing import Any

from inversion.methods import DEFAULT_METHOD, METHOD_NAMES
from p2p_real.commands import options, session
from p2p_real.commands.options import PROG, CliError
from p2p_real.defaults import TOY_MODEL
from p2p_real.spec import DEFAULT_SELF_REPLACE

NAME = "ui"
HELP = "a local web page: upload a photo, invert it once, then edit it in seconds (needs p2p-real[ui])"
EPILOG = f"""\
examples:
  {PROG} ui                          # http://127.0.0.1:7860, Stable Diffusion 1.5
  {PROG} ui --model toy              # offline, on the shipped toy-world model (with an example photo)
  {PROG} ui --host 0.0.0.0 --port 8080   # reachable from other machines: anyone there can use your GPU

edits, their masks and sidecars go to OUT/edits, inversions to OUT/inversions (reused for the same photo and
settings), the uploaded photos to OUT/photos (the command line the page shows names them). One model job runs at
a time; Stop ends it after its current step.
"""
DEFAULT_OUT = "p2p-ui"
DEFAULT_HOST = "127.0.0.1"
EXAMPLE_SCALE = 3  # the toy example photo is this many times the toy model's working side


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--host, --port, --out, the page's default method and steps, model and run options."""
    group = p.add_argument_group("page")
    group.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)"
    )
    group.add_argument("--port", type=port_number, default=None, help="port (default: the first free one from 7860)")
    group.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR", help=f"folder of the edits and inversions (default: {DEFAULT_OUT})"
    )
    group.add_argument(
        "--method",
        choices=METHOD_NAMES,
        default=DEFAULT_METHOD,
        help=f"the page's inversion method to start with (default: {DEFAULT_METHOD})",
    )
    group.add_argument(
        "--steps", type=options.steps_value, default=None, help="the page's DDIM steps to start with (default: 50)"
    )
    options.add_model_options(p)
    options.add_run_options(p, overwrite=False)


def port_number(text: str) -> int:
    """--port: a TCP port, 1 to 65535 (checked before the model loads)."""
    port = options.positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (1 to 65535)")
    return port


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    """Load the model and build the page (not yet serving); returns it and its Studio."""
    if importlib.util.find_spec("gradio") is None:
        raise CliError(f"{PROG} ui needs Gradio: pip install 'p2p-real[ui]'")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local tool: nothing sent anywhere
    out = session.out_folder(args.out).resolve()
    loaded = session.open_session(args)
    if args.steps is not None:
        loaded.editor.num_inference_steps = args.steps
    from p2p_real.ui.app import PageDefaults, build_app
    from p2p_real.ui.studio import Studio

    studio = Studio(loaded.editor, out, loaded.run_options(), loaded.model)
    examples = (
        toy_examples(studio.sessions.root / "examples", loaded.editor.default_size[0])
        if loaded.model == TOY_MODEL
        else []
    )  # in the page's private folder: --out is never served
    defaults = PageDefaults(args.method, loaded.editor.num_inference_steps, f"{PROG} ui", loaded.model, examples)
    return build_app(studio, defaults), studio


def toy_examples(folder: Path, side: int) -> list[tuple[str, str, str, str, float]]:
    """The toy-world demo scene as an example photo (written to `folder`), its caption, and the demo's colour swap
    with the method and self-attention steps it works with (docs/toyworld.md, "The five edits")."""
    from PIL import Image

    from p2p_real.toyworld.demo import DEMO_CHOICES, DEMO_METHOD, DEMO_SCENE
    from p2p_real.toyworld.edits import make_edit
    from p2p_real.toyworld.scenes import render

    rendered = render(DEMO_SCENE, side * EXAMPLE_SCALE)
    path = folder / "toy-scene.png"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rendered.image).save(path)
    swap = make_edit("colour", rendered, prefer=DEMO_CHOICES["colour"])
    self_steps = float(swap.options.get("self_replace_steps", DEFAULT_SELF_REPLACE))
    return [(str(path), str(rendered.caption), str(swap.target), DEMO_METHOD, self_steps)]


def run(args: argparse.Namespace) -> int:
    """Build the page and serve it until interrupted."""
    page, studio = build(args)
    from p2p_real.ui.app import launch

    launch(page, args.host, args.port, studio.out, quiet=args.quiet)
    return 0
