"""p2p-real attention: per-word cross-attention heat maps of a photo (inverted) or of a generated prompt."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from inversion.methods import DEFAULT_METHOD
from p2p_real.commands import options, session
from p2p_real.commands.options import CliError

if TYPE_CHECKING:
    from p2p_real.batches.photo_plan import PhotoPlan

NAME = "attention"
HELP = "per-word cross-attention heat maps of a photo or a prompt"
EPILOG = ""
METHOD = DEFAULT_METHOD  # direct: one DDIM pass, and the source row replays the photo exactly


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The photo or inversion (or just --prompt), targets, inversion, output, model and run options."""
    p.add_argument(
        "input",
        nargs="?",
        metavar="PHOTO|INVERSION",
        help="a photo or saved inversion; without one, generate from --prompt and --seed",
    )
    p.add_argument("-t", "--target", action="append", help="also show the maps of a target prompt (repeatable)")
    p.add_argument("--inversion", metavar="FILE", help="reuse a saved inversion of the photo")
    options.add_inversion_options(p, f"{METHOD}, fast")
    options.add_output_options(p)
    options.add_model_options(p)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Invert or generate, then write each prompt's per-word heat maps, the maps and the sidecar."""
    targets = list(args.target or [])
    from_photo = args.input is not None or args.inversion is not None
    if from_photo and args.method is None and args.inversion is None and not session.is_artifact(args.input or ""):
        args.method = METHOD
    inputs = session.read_inputs(args) if from_photo else None
    if inputs is None and not (args.prompt or "").strip():
        raise CliError("give a PHOTO (or a saved inversion) and/or --prompt: there is nothing to look at")
    from p2p_real.batches.photo_plan import Outputs, PhotoRequest
    from p2p_real.files.outputs import attention_paths, save_attention, slug

    name = session.output_name(args.name, inputs.name if inputs else slug(args.prompt))
    out = session.out_folder(args.out)
    paths = tuple(attention_paths(out, name))
    outputs = Outputs(out, f"{name}.attention", paths, args.overwrite, tuple(inputs.files) if inputs else ())
    if inputs is None:
        outputs.check()
        loaded, plan = session.open_session(args), None
        session.seed_everything(args.seed)
    else:
        settings = options.settings_from_args(args)
        request = PhotoRequest(inputs.photo, settings, inputs.inversion, targets, outputs=outputs)
        loaded, plan = session.planned(args, request)
    with outputs.reserved():
        made = _generated(args, loaded, targets) if plan is None else _inverted(args, loaded, plan)
        result, images, prompts, argv = made
        if result.attention is None:
            raise CliError("the model produced no cross-attention maps")
        argv += [*[x for t in targets for x in ("--target", t)], "--seed", str(args.seed), *loaded.run_options()]
        parameters = {**result.parameters, "command": "attention", "targets": targets}
        sidecar = {**session.reproduction(argv), "runtime": loaded.runtime}
        written = save_attention(result.attention, images, prompts, out, name, parameters, sidecar, args.overwrite)
    session.report_written(written, args.quiet)
    return 0


Made = tuple[Any, list[Any], list[str], list[str]]  # the result, its images, the prompts, the command's first options


def _inverted(args: argparse.Namespace, loaded: session.Session, plan: PhotoPlan) -> Made:
    """The photo's inversion (planned) edited to every target (or to its caption): the result, the photo and the
    edits cropped to the working area, the prompts and the reproduction command's input options."""
    from masks.visualize import to_rgb

    inv = plan.invert(loaded.progress, loaded.log)
    targets = list(plan.request.targets)
    result = loaded.editor.edit(inv, targets or [inv.prompt], progress=loaded.progress)
    prompts = [inv.prompt, *targets]
    images = [to_rgb(image).crop(inv.box) for image in [inv.original, *result.images[1 : len(prompts)]]]
    inputs = session.Inputs(plan.request.photo, plan.request.inversion)
    return result, images, prompts, ["attention", *inputs.argv(inv, args)]


def _generated(args: argparse.Namespace, loaded: session.Session, targets: list[str]) -> Made:
    """--prompt and the targets generated from --seed: the result, its images, the prompts and the reproduction
    command's prompt and sampling options."""
    from p2p_real.commands.generate import sample

    prompts = [args.prompt, *targets]
    result, sampling = sample(loaded, args, prompts)
    return result, result.images, prompts, ["attention", "--prompt", args.prompt, *sampling]
