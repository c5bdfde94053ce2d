"""p2p-real edit: invert a photo (or load its inversion), apply Prompt-to-Prompt edits, write the results."""

from __future__ import annotations

import argparse
import contextlib
import time

from p2p_real.commands import options, session, sweeping
from p2p_real.commands.options import PROG, CliError
from p2p_real.spec import EditSpec

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
    settings = options.settings_from_args(args)
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
    from inversion.storage.files import INVERSION_SUFFIX
    from p2p_real.files.outputs import edit_paths

    paths = edit_paths(
        out, name, len(targets) + 1, spec.blend_words is not None or mask is not None, fmt, args.save_inversions
    )
    outputs = paths.all() if chosen is None else sweeping.output_paths(out, name, chosen, mask is not None)
    saved = out / f"{name}{INVERSION_SUFFIX}" if inputs.inversion is None else None  # reused when it fits
    protected = [*inputs.files, mask]
    session.check_outputs(outputs, args.overwrite, protected, name)
    session.check_outputs([saved] if saved else [], True, protected)
    session.check_writable(out)
    session.check_images(inputs.photo, mask)
    loaded = session.open_session(args)
    from inversion.cache import CachedMismatchError, InversionCache
    from p2p_real.batches.workflow import prepare_inversion

    with contextlib.ExitStack() as held:  # the outputs are ours from the checks of the request to the last file

        def reserve() -> None:
            """Reserve the outputs (and check them again) once the request passed its checks."""
            held.enter_context(session.reserved(out, name, outputs, args.overwrite, protected, loaded.log))

        start = time.perf_counter()
        cache = None if saved is None else InversionCache(out, keyed=False, replace=args.overwrite)
        try:  # a fresh inversion is saved at once: an edit that fails or is interrupted does not lose it
            inv, origin = prepare_inversion(
                loaded.editor,
                inputs.photo,
                settings,
                targets,
                spec,
                inversion=inputs.inversion,
                cache=cache,
                name=name,
                progress=loaded.progress,
                log=loaded.log,
                ready=reserve,
            )
        except CachedMismatchError as exc:
            raise CliError(f"{exc}; pass --overwrite to replace it, or choose another --out or --name") from exc
        timing = {"invert_s": round(time.perf_counter() - start, 3)}
        session.seed_everything(args.seed)
        if chosen is not None:  # --sweep: one edit per combination, and the contact sheet
            written = sweeping.edit_and_save(loaded, inv, targets[0], spec, mask, args, inputs, out, name, timing)
        else:
            loaded.log(f"editing {len(targets)} target(s)")
            start = time.perf_counter()
            result = loaded.editor.edit(inv, targets, spec=spec, mask=mask, progress=loaded.progress)
            timing["edit_s"] = round(time.perf_counter() - start, 3)
            argv = [
                "edit",
                *inputs.argv(inv, args),
                *[x for t in targets for x in ("--target", t)],
                "--spec",
                options.spec_json(spec),
                *(["--mask", session.shown_path(mask)] if mask else []),
                "--seed",
                str(args.seed),
                *options.format_argv(args, fmt),
                *(["--save-inversions"] if args.save_inversions else []),
                *loaded.run_options(),
            ]
            written = result.save(
                out,
                name,
                {**session.reproduction(argv), "runtime": {**loaded.runtime, **timing}},
                overwrite=args.overwrite,
                format=fmt,
                quality=args.quality,
                inversions=args.save_inversions,
            )
    if origin == "fresh" and saved is not None:
        written.insert(0, saved)
    if origin == "reused" and not args.quiet:
        print(f"reused {saved}")
    session.report_written(written, args.quiet)
    return 0
