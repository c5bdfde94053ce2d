"""p2p-real reconstruct: sample a photo back from its inversion; report, side-by-side grid and sidecar."""

from __future__ import annotations

import argparse
import contextlib

from p2p_real.commands import options, session

NAME = "reconstruct"
HELP = "reconstruct a photo (or saved inversion): report and side-by-side image"
EPILOG = ""


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
    from p2p_real.files.outputs import reconstruction_paths

    paths = reconstruction_paths(out, name)
    session.check_outputs(paths, args.overwrite, inputs.files, f"{name}.recon")
    session.check_writable(out)
    session.check_images(inputs.photo)
    loaded = session.open_session(args)
    from p2p_real.batches.workflow import prepare_inversion

    session.seed_everything(args.seed)
    with contextlib.ExitStack() as held:

        def reserve() -> None:
            """Reserve the outputs once the request passed its checks."""
            held.enter_context(session.reserved(out, f"{name}.recon", paths, args.overwrite, inputs.files))

        inv, _ = prepare_inversion(
            loaded.editor,
            inputs.photo,
            options.settings_from_args(args),
            inversion=inputs.inversion,
            progress=loaded.progress,
            log=loaded.log,
            ready=reserve,
        )
        rec = loaded.editor.reconstruct(inv, progress=loaded.progress)
        print(rec.report())
        argv = ["reconstruct", *inputs.argv(inv, args), "--seed", str(args.seed), *loaded.run_options()]
        written = rec.save(out, name, {**session.reproduction(argv), "runtime": loaded.runtime}, args.overwrite)
    session.report_written(written, args.quiet)
    return 0
