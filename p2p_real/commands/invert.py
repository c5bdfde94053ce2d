"""p2p-real invert: invert a photo, save the inversion, print the reconstruction report."""

from __future__ import annotations

import argparse
from pathlib import Path

from p2p_real.commands import options, session
from p2p_real.commands.options import DEFAULT_OUT, PROG, CliError

NAME = "invert"
HELP = "invert a photo and save the inversion; print the reconstruction report"
EPILOG = f"""\
examples:
  {PROG} invert cat.jpg -p "a cat sitting on a wall"            # writes {DEFAULT_OUT}/cat.inv.safetensors
  {PROG} invert cat.jpg -p "a cat sitting on a wall" --method null-text -o cat-nti.inv.safetensors
then edit it as often as you like without inverting again:
  {PROG} edit {DEFAULT_OUT}/cat.inv.safetensors -t "a dog sitting on a wall" --blend cat:dog
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The photo, inversion options, --output, model and run options."""
    p.add_argument("input", metavar="PHOTO", help="the photo to invert")
    options.add_inversion_options(p)
    p.add_argument(
        "-o", "--output", metavar="FILE", help=f"inversion file (default: {DEFAULT_OUT}/PHOTO.inv.safetensors)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help=f"output folder, as for the other commands: the inversion is "
        f"DIR/PHOTO.inv.safetensors (default: {DEFAULT_OUT})",
    )
    p.add_argument("--no-report", action="store_true", help="skip the reconstruction report")
    options.add_model_options(p)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Invert the photo, save the inversion and print the reconstruction report."""
    inputs = session.read_inputs(args)
    if inputs.inversion is not None:
        raise CliError("invert takes a photo, not an inversion (use `p2p-real reconstruct` to check a saved one)")
    from inversion.storage.files import INVERSION_SUFFIX
    from p2p_real.batches.photo_plan import Outputs, PhotoRequest

    name = session.output_name(None, inputs.name)
    if args.output and args.out:
        raise CliError("give --output FILE or --out DIR, not both")
    folder = session.out_folder(args.out) if args.out else Path(DEFAULT_OUT)
    output = Path(args.output).expanduser() if args.output else folder / f"{name}{INVERSION_SUFFIX}"
    stem = output.name[: -len(INVERSION_SUFFIX)] if output.name.endswith(INVERSION_SUFFIX) else output.stem
    outputs = Outputs(output.parent, stem, (output,), args.overwrite, tuple(inputs.files))
    loaded, plan = session.planned(args, PhotoRequest(inputs.photo, options.settings_from_args(args), outputs=outputs))
    with plan.reserved() as reservation:  # the same lock as `edit` writing NAME.inv.safetensors in that folder
        inv = plan.invert(loaded.progress, loaded.log)
        inv.save(output, replace=args.overwrite or reservation.may_replace(output))
    session.report_written([output], args.quiet)
    if not args.no_report:
        print(loaded.editor.reconstruct(inv, progress=loaded.progress).report())
    return 0
