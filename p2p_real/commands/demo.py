"""p2p-real demo: the toy-world scene inverted and edited five ways (colour, shape, background, an added object,
size), each checked, as one grid (offline)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from inversion.methods import METHOD_NAMES
from p2p_real.batches.preflight import Outputs
from p2p_real.commands import options, session

NAME = "demo"
HELP = "offline demo on the shipped toy-world model: invert a scene, make five edits and check them"
EPILOG = ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--out, --steps, model and run options."""
    group = p.add_argument_group("output")
    group.add_argument("--out", default="p2p-demo", metavar="DIR", help="output folder (default: p2p-demo)")
    group.add_argument("--steps", type=options.steps_value, default=50, help="DDIM steps (default: 50)")
    group.add_argument(
        "--method",
        choices=METHOD_NAMES,
        default=None,
        help="inversion method the edits start from (default: the demo's, direct, from which the "
        "toy model's edits work most often; docs/toyworld.md)",
    )
    options.add_model_options(p)
    p.set_defaults(model=None)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Run the toy-world demo and write its grid, photo and sidecar."""
    out = Path(args.out).expanduser()
    grid, photo, sidecar = out / "demo.png", out / "demo.photo.png", out / "demo.json"
    Outputs(out, "demo", (grid, photo, sidecar), args.overwrite).check()
    if args.model is None:
        args.model = "toy"
    loaded = session.open_session(args)
    loaded.editor.num_inference_steps = args.steps
    from p2p_real.files.output_sets import OutputSet
    from p2p_real.files.outputs import json_writer, png_text, png_writer, sidecar_data
    from p2p_real.toyworld.demo import run_demo

    start = time.perf_counter()
    chosen = {} if args.method is None else {"method": args.method}
    result = run_demo(loaded.editor, progress=loaded.progress, **chosen)
    method = result.info["method"]
    parameters = {"command": "demo", **loaded.editor.model_parameters(), "steps": args.steps, "method": method}
    runtime = {**loaded.runtime, "demo_s": round(time.perf_counter() - start, 2)}
    argv = ["demo", *loaded.run_options(), "--steps", str(args.steps), "--method", method]
    outputs = {"grid": grid.name, "photo": photo.name, **result.info}
    data = sidecar_data(parameters, outputs, {**session.reproduction(argv), "runtime": runtime})
    with OutputSet(out, "demo", [grid, photo, sidecar], args.overwrite) as files:
        written = [
            files.write(grid, png_writer(result.grid, png_text(parameters))),
            files.write(photo, png_writer(result.photo, png_text(parameters, prompt=result.info["caption"]))),
            files.write(sidecar, json_writer(data)),
        ]
    session.report_written(written, args.quiet)
    return 0
