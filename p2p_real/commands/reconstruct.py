"""p2p-real reconstruct: sample a photo back from its inversion; report, side-by-side grid and sidecar."""

from __future__ import annotations

import argparse

from p2p_real.commands import options, session
from p2p_real.commands.options import DEFAULT_OUT, PROG

NAME = "reconstruct"
HELP = "reconstruct a photo (or saved inversion): report and side-by-side image"
EPILOG = f"""\
examples:
  {PROG} reconstruct cat.jpg -p "a cat sitting on a wall"      # inverts it first
  {PROG} reconstruct {DEFAULT_OUT}/cat.inv.safetensors               # a saved inversion: nothing is inverted
outputs (in --out, NAME = the photo's stem or --name): NAME.recon.png, NAME.recon.grid.png (photo | VAE only |
reconstruction) and NAME.recon.json with PSNR/SSIM; the report is printed
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The input, inversion, output, model and run options."""
    p.add_argument("input", metavar="PHOTO|INVERSION", help="a photo (inverted first) or a saved inversion")
    options.add_inversion_options(p)
    options.add_output_options(p)
    options.add_model_options(p)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Invert (or load), reconstruct, print the report and write the images and sidecar."""
    inputs = session.read_inputs(args, need_prompt=not session.is_artifact(args.input))
    out = session.out_folder(args.out)
    name = session.output_name(args.name, inputs.name)
    from p2p_real.batches.photo_plan import Outputs, PhotoRequest
    from p2p_real.files.outputs import reconstruction_paths

    outputs = Outputs(out, f"{name}.recon", tuple(reconstruction_paths(out, name)), args.overwrite, tuple(inputs.files))
    request = PhotoRequest(inputs.photo, options.settings_from_args(args), inputs.inversion, outputs=outputs)
    loaded, plan = session.planned(args, request)
    argv = ["reconstruct", *inputs.argv(plan.made_with, args), "--seed", str(args.seed), *loaded.run_options()]
    with plan.reserved():
        rec = loaded.editor.reconstruct(plan.invert(loaded.progress, loaded.log), progress=loaded.progress)
        print(rec.report())
        written = rec.save(out, name, {**session.reproduction(argv), "runtime": loaded.runtime}, args.overwrite)
    session.report_written(written, args.quiet)
    return 0
