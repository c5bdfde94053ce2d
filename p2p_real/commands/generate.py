"""p2p-real generate: synthetic Prompt-to-Prompt, a source prompt and its edits from one seed."""

from __future__ import annotations

import argparse
from typing import Any

from p2p_real.batches.preflight import Outputs
from p2p_real.commands import options, session
from p2p_real.commands.options import CliError
from p2p_real.spec import EditSpec

NAME = "generate"
HELP = "synthetic Prompt-to-Prompt: a source prompt and its edits from one seed"
EPILOG = ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The prompts, edit options, sampling, output, model and run options."""
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="the source prompt, then target prompts")
    options.add_edit_options(p, EditSpec.synthetic())
    group = p.add_argument_group("sampling")
    group.add_argument(
        "--steps", type=options.steps_value, default=None, help=f"DDIM steps (default: {options.DEFAULT_STEPS})"
    )
    group.add_argument(
        "--guidance",
        type=options.guidance_value,
        default=None,
        help=f"classifier-free guidance scale (default: {options.DEFAULT_GUIDANCE})",
    )
    group.add_argument(
        "--seed", type=options.seed_value, default=0, help="seed of the shared starting noise (default: 0)"
    )
    group.add_argument(
        "--size", type=options.size_value, default=None, metavar="WxH", help="image size (default: the model's)"
    )
    options.add_output_options(p)
    options.add_format_options(p)
    options.add_model_options(p)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Generate the source and its edits from one seed and write them with their sidecar."""
    prompts = list(args.prompts)
    if not all(p.strip() for p in prompts):
        raise CliError("prompts must not be empty")
    spec = options.spec_from_args(args, len(prompts) - 1, synthetic=True)
    from p2p_real.files.outputs import edit_paths, slug

    stem, fmt = options.output_format(args, slug(prompts[0]))
    name = session.output_name(stem if args.name is not None else None, slug(prompts[0]))
    out = session.out_folder(args.out)
    files = edit_paths(out, name, len(prompts), spec.blend_words is not None, fmt).all()
    Outputs(out, name, tuple(files), args.overwrite).check()
    loaded = session.open_session(args)
    result, sampling = sample(loaded, args, prompts, spec)
    argv = ["generate", *prompts, "--spec", options.spec_json(spec), *sampling]
    argv += ["--seed", str(args.seed), *options.format_argv(args, fmt), *loaded.run_options()]
    written = result.save(
        out,
        name,
        {**session.reproduction(argv), "runtime": loaded.runtime},
        args.overwrite,
        format=fmt,
        quality=args.quality,
    )
    session.report_written(written, args.quiet)
    return 0


def sample(
    loaded: session.Session, args: argparse.Namespace, prompts: list[str], spec: EditSpec | None = None
) -> tuple[Any, list[str]]:
    """Generate the prompts from --seed with --steps, --guidance and --size; the result and those options as the
    run used them (for the reproduction command)."""
    width, height = args.size or (None, None)
    result = loaded.editor.generate(
        prompts,
        spec=spec,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        generator=args.seed,
        height=height,
        width=width,
        progress=loaded.progress,
    )
    argv = ["--steps", str(result.parameters["steps"]), "--guidance", repr(result.parameters["guidance"])]
    return result, argv + (["--size", f"{args.size[0]}x{args.size[1]}"] if args.size else [])
