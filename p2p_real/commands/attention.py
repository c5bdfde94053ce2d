"""p2p-real attention: per-word cross-attention heat maps of a photo (inverted) or of a generated prompt."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path

from inversion.methods import DEFAULT_METHOD
from p2p_real.commands import options, session
from p2p_real.commands.options import CliError

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
    from p2p_real.files.outputs import attention_paths, slug

    name = session.output_name(args.name, inputs.name if inputs else slug(args.prompt))
    out = session.out_folder(args.out)
    paths = attention_paths(out, name)
    session.check_outputs(paths, args.overwrite, inputs.files if inputs else [], f"{name}.attention")
    session.check_writable(out)
    session.check_images(inputs.photo if inputs else None)
    loaded = session.open_session(args)
    with contextlib.ExitStack() as held:

        def reserve() -> None:
            """Reserve the outputs once the request passed its checks."""
            held.enter_context(
                session.reserved(out, f"{name}.attention", paths, args.overwrite, inputs.files if inputs else [])
            )

        return _run(args, loaded, inputs, targets, out, name, reserve)


def _run(
    args: argparse.Namespace,
    loaded: session.Session,
    inputs: session.Inputs | None,
    targets: list[str],
    out: Path,
    name: str,
    reserve: Callable[[], None],
) -> int:
    """Invert (or generate), then write the maps; `reserve` is called before the slow work."""
    from p2p_real.batches.workflow import prepare_inversion
    from p2p_real.files.outputs import save_attention

    session.seed_everything(args.seed)
    if inputs is not None:
        inv, _ = prepare_inversion(
            loaded.editor,
            inputs.photo,
            options.settings_from_args(args),
            targets,
            inversion=inputs.inversion,
            progress=loaded.progress,
            log=loaded.log,
            ready=reserve,
        )
        result = loaded.editor.edit(inv, targets or [inv.prompt], progress=loaded.progress)
        prompts = [inv.prompt, *targets]
        from masks.visualize import to_rgb

        images = [to_rgb(image).crop(inv.box) for image in [inv.original, *result.images[1 : len(prompts)]]]
        argv = ["attention", *inputs.argv(inv, args)]
    else:
        prompts = [args.prompt, *targets]
        reserve()
        width, height = args.size or (None, None)
        result = loaded.editor.generate(
            prompts,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=args.seed,
            height=height,
            width=width,
            progress=loaded.progress,
        )
        images = result.images
        argv = [
            "attention",
            "--prompt",
            args.prompt,
            "--steps",
            str(result.parameters["steps"]),
            "--guidance",
            repr(result.parameters["guidance"]),
        ]
        argv += ["--size", f"{args.size[0]}x{args.size[1]}"] if args.size else []
    if result.attention is None:
        raise CliError("the model produced no cross-attention maps")
    argv += [*[x for t in targets for x in ("--target", t)], "--seed", str(args.seed), *loaded.run_options()]
    parameters = {**result.parameters, "command": "attention", "targets": targets}
    written = save_attention(
        result.attention,
        images,
        prompts,
        out,
        name,
        parameters,
        {**session.reproduction(argv), "runtime": loaded.runtime},
        args.overwrite,
    )
    session.report_written(written, args.quiet)
    return 0
