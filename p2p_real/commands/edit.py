"""p2p-real edit: invert a photo (or load its inversion), apply Prompt-to-Prompt edits, write the results."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_real.commands import options, session, sweeping
from p2p_real.commands.options import PROG, CliError
from p2p_real.spec import EditSpec

if TYPE_CHECKING:
    from p2p_real.batches.photo_plan import PhotoPlan, PhotoRequest
    from p2p_real.sweep_grid import Combination

NAME = "edit"
HELP = "edit a photo: invert it, then apply Prompt-to-Prompt edits"
EPILOG = f"""\
examples:
  {PROG} edit cat.jpg -p "a cat sitting on a wall" -t "a dog sitting on a wall" --blend cat:dog
  {PROG} edit cat.jpg -p "a cat sitting on a wall" -t "a fluffy cat sitting on a wall" --reweight fluffy=2
  {PROG} edit p2p-out/cat.inv.safetensors -t "a lion sitting on a wall" --blend cat:lion --name lion
  {PROG} edit dog.jpg -p "a dog on a sofa" -t "a cat on a sofa" --spec p2p-out/cat.json   # cat.json's settings
  {PROG} edit cat.jpg -p "a cat on a wall" -t "a dog on a wall" --sweep cross=0.2,0.5,0.8 --sweep self=0.2,0.6

outputs (in --out, NAME = the photo's stem or --name):
  NAME.inv.safetensors   the inversion (reused by the next edit of the same photo and settings; an input too)
  NAME.0.png             the reconstruction, NAME.1.png ... one edit per --target, at the photo's resolution
  NAME.K.mask.png        the edit masks (with --blend or --mask)
  NAME.K.inv.safetensors edit K as an inversion of the edited image (with --save-inversions): edit it again with
                         {PROG} edit NAME.K.inv.safetensors -t "..." (no new inversion)
  NAME.grid.png          photo | reconstruction | edits, masks below
  NAME.json              parameters and the command that reproduces the images (also in the PNG text chunks)
  with --sweep (one --target): NAME.K.* as above for each combination K, NAME.sweep.png the contact sheet
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The photo or inversion, targets, inversion, edit, mask, output, model and run options."""
    p.add_argument("input", nargs="?", metavar="PHOTO", help="the photo, or a saved inversion (.safetensors)")
    p.add_argument("-t", "--target", action="append", required=True, help="target prompt (repeatable)")
    p.add_argument("--inversion", metavar="FILE", help="reuse a saved inversion of the photo")
    options.add_inversion_options(p)
    options.add_edit_options(p, EditSpec())
    options.add_mask_options(p)
    options.add_output_options(p)
    sweeping.add_sweep_option(p)
    p.add_argument(
        "--save-inversions",
        action="store_true",
        help="also write NAME.K.inv.safetensors, each edit K as an inversion of the edited image, to edit "
        "it again without inverting it (docs/design.md, 'Edits of edits')",
    )
    options.add_format_options(p)
    options.add_model_options(p)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Check everything that can be checked without the model, then invert or reuse, edit and save."""
    inputs = session.read_inputs(args)
    targets = list(args.target)
    if not all(t.strip() for t in targets):
        raise CliError("--target must not be empty")
    spec = options.spec_from_args(args, len(targets))
    request, chosen = _request(args, inputs, targets, spec)
    loaded, plan = session.planned(args, request)
    with plan.reserved(loaded.log):  # the outputs are ours from the checks of the request to the last file
        if chosen is None:
            extra = {**session.reproduction(_argv(args, inputs, plan, spec, loaded)), "runtime": loaded.runtime}
            written = plan.run(extra, seed=args.seed, progress=loaded.progress, log=loaded.log)
        else:
            written = _sweep(args, inputs, plan, spec, loaded)
    if plan.source == "reused" and not args.quiet:
        print(f"reused {plan.inversion_file}")
    session.report_written(written, args.quiet)
    return 0


def _request(
    args: argparse.Namespace, inputs: session.Inputs, targets: list[str], spec: EditSpec
) -> tuple[PhotoRequest, list[Combination] | None]:
    """The request of the command line (its outputs: the edit's files, or with --sweep the sweep's), and the
    combinations of --sweep (None without it)."""
    from inversion.cache import InversionCache
    from p2p_real.batches.photo_plan import Outputs, PhotoRequest
    from p2p_real.files.outputs import edit_paths

    mask = None if args.mask is None else session.existing_file(args.mask, "mask")
    out = session.out_folder(args.out)
    stem, fmt = options.output_format(args, inputs.name)
    name = session.output_name(stem if args.name is not None else None, inputs.name)
    chosen = sweeping.combinations(args, spec, targets, fmt)  # --sweep, else None
    if chosen is not None and args.save_inversions:
        raise CliError(
            "--save-inversions applies to plain edits, not to --sweep: edit the combination you like "
            "again (its NAME.K.json has the settings) with --save-inversions"
        )
    masked = spec.blend_words is not None or mask is not None
    paths = edit_paths(out, name, len(targets) + 1, masked, fmt, args.save_inversions).all()
    files = paths if chosen is None else sweeping.output_paths(out, name, chosen, mask is not None)
    outputs = Outputs(out, name, tuple(files), args.overwrite, (*inputs.files, mask))
    # a fresh inversion is saved at once as NAME.inv.safetensors: an edit that fails or is interrupted does not
    # lose it, and the next edit of the photo with the same settings reuses it
    cache = None if inputs.inversion is not None else InversionCache(out, keyed=False, replace=args.overwrite)
    settings = options.settings_from_args(args)
    request = PhotoRequest(inputs.photo, settings, inputs.inversion, targets, spec, mask, outputs, cache, name)
    request.image_format, request.quality, request.save_inversions = fmt, args.quality, args.save_inversions
    return request, chosen


def _argv(
    args: argparse.Namespace, inputs: session.Inputs, plan: PhotoPlan, spec: EditSpec, loaded: session.Session
) -> list[str]:
    """The arguments that make the same edit again (the inversion's settings spelt out)."""
    request = plan.request
    return [
        "edit",
        *inputs.argv(plan.made_with, args),
        *[x for t in request.targets for x in ("--target", t)],
        "--spec",
        options.spec_json(spec),
        *(["--mask", session.shown_path(request.mask)] if request.mask else []),
        "--seed",
        str(args.seed),
        *options.format_argv(args, request.image_format),
        *(["--save-inversions"] if request.save_inversions else []),
        *loaded.run_options(),
    ]


def _sweep(
    args: argparse.Namespace, inputs: session.Inputs, plan: PhotoPlan, spec: EditSpec, loaded: session.Session
) -> list[Path]:
    """--sweep: the planned inversion edited once per combination, written with the contact sheet."""
    request, outputs = plan.request, plan.request.outputs
    assert outputs is not None  # _request gave the sweep's files
    start = time.perf_counter()
    inv = plan.invert(loaded.progress, loaded.log)
    timing = {"invert_s": round(time.perf_counter() - start, 3)}
    session.seed_everything(args.seed)
    target, folder, name = request.targets[0], outputs.folder, outputs.name
    return [
        *plan.saved,
        *sweeping.edit_and_save(loaded, inv, target, spec, request.mask, args, inputs, folder, name, timing),
    ]
