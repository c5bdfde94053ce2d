"""p2p-real batch: run a recipe of photos x edits; resumable, split across processes under accelerate."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_real.commands import options, session
from p2p_real.commands.options import DEFAULT_OUT, PROG, CliError

if TYPE_CHECKING:
    from p2p_real.batches.batch import Job

NAME = "batch"
HELP = "run a recipe of photos x edits (resumable; splits under accelerate launch)"
EPILOG = f"""\
recipe (JSON, or YAML with pip install 'p2p-real[batch]'); paths are relative to the recipe, 'out' is a folder
inside the recipe's folder (--out DIR writes anywhere), names are plain file names; a photo may be a saved
inversion (NAME.inv.safetensors: its caption and settings come from the file):
  {{"model": "...", "out": "results", "defaults": {{"method": "direct", "steps": 50}},
   "photos": [{{"photo": "cat.jpg", "prompt": "a cat sitting on a wall",
               "edits": [{{"target": "a dog sitting on a wall", "blend": "cat:dog"}},
                         {{"target": "a fluffy cat sitting on a wall", "reweight": {{"fluffy": 2}}}}]}}],
   "edits": [{{"target": "{{prompt}} at night"}}]}}
  photo keys: photo, prompt, name, method, steps, guidance, size, square, edits (and any edit key as a default)
  edit keys: target(s), name, edit, cross_replace, self_replace, self_replace_max_res, blend, subtract,
             blend_threshold, blend_pool, blend_start, mask, mask_mode, reweight, seed ('edits' at the top level
             apply to every photo; {{prompt}} stands for the photo's prompt)
outputs: OUT/PHOTO/EDIT.* as for `{PROG} edit`, inversions cached in OUT/inversions/.
Run it again to resume: finished edits are skipped (an edit whose files went missing is redone); existing
files that are not the batch's own are never replaced without --overwrite. Under `accelerate launch` the
photos are split across the processes (each output is written by one process).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The recipe, --out, --dry-run, model and run options."""
    p.add_argument("recipe", metavar="RECIPE", help="JSON or YAML recipe: photos x edits")
    p.add_argument(
        "--out",
        metavar="DIR",
        help=f"output folder (default: the recipe's 'out', else {DEFAULT_OUT}, next to the recipe)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the jobs and what is finished, load nothing")
    options.add_model_options(p)
    p.set_defaults(device=None, dtype=None)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Plan the recipe's jobs, skip the finished ones, run this process's share and print the summary."""
    from p2p_real.batches import batch
    from p2p_real.batches.preflight import check_images, check_writable

    recipe_path, out, jobs = _planned_jobs(args)
    if args.dry_run:
        print("\n".join(batch.summary(jobs, 0.0)))
        return 0
    state, rank, n_processes = batch.distributed()
    owner = batch.plan(jobs, n_processes)
    pending = [job for job in jobs if job.status == "to do"]
    mine = [job for job in pending if owner[job.photo_name] == rank]
    start = time.perf_counter()
    for photo, mask in dict.fromkeys((None if job.inversion else job.photo, job.mask) for job in pending):
        check_images(photo, mask)  # each photo read once (a job's check_files would read it for every edit)
    if pending:
        check_writable(out)
        loaded = session.open_session(args, str(state.device) if state is not None and args.device == "auto" else None)
        batch.check_jobs(loaded.editor, pending, recipe_path.name)  # every process checks all: all stop together
        batch.run_jobs(
            loaded.editor,
            mine,
            out,
            rank,
            progress=loaded.progress,
            raise_errors=args.debug,
            extra={"runtime": loaded.runtime},
            log=loaded.log,
        )
        for job in mine:
            if job.status.startswith("failed"):
                print(
                    f"{PROG}: error: {job.photo_name}/{job.edit_name}: {job.status.removeprefix('failed: ')}",
                    file=sys.stderr,
                )
    elapsed = time.perf_counter() - start
    if state is not None and n_processes > 1:
        batch.gather(state, jobs, mine)
        batch.finish(state)
        shown = jobs if state.is_main_process else []
    elif n_processes > 1:  # launched without accelerate: each process reports its own work
        ids = {id(job) for job in mine}
        shown = [j for j in jobs if id(j) in ids or (rank == 0 and j.status == "skipped")]
    else:
        shown = jobs
    if shown:
        print("\n".join(batch.summary(shown, elapsed)))
    return 1 if any(j.status.startswith("failed") for j in jobs) else 0


def _planned_jobs(args: argparse.Namespace) -> tuple[Path, Path, list[Job]]:
    """The recipe's file, the output folder and its jobs: each finished one marked skipped, the outputs of the
    others checked (the model options the recipe gives fill those the command line left out)."""
    from p2p_real.batches import batch
    from p2p_real.batches.preflight import PlanError, check_outputs
    from p2p_real.batches.recipe import check_job_folders, load_recipe, output_folder, plan_jobs

    recipe_path = session.existing_file(args.recipe, "recipe")
    recipe = load_recipe(recipe_path)
    out = Path(args.out).expanduser() if args.out else output_folder(recipe, recipe_path, DEFAULT_OUT)
    for option, fallback in (("model", None), ("device", "auto"), ("dtype", "auto")):
        if getattr(args, option) is None:
            setattr(args, option, recipe.get(option, fallback))
    if args.model is not None and "model" in recipe and args.model == recipe["model"]:
        local = recipe_path.parent / str(args.model)  # a local model in the recipe is relative to the recipe
        args.model = str(local) if local.exists() else args.model
    jobs = plan_jobs(recipe, recipe_path, out, session.resolve_model(args.model), args.device, args.dtype)
    if not args.out:
        check_job_folders(jobs, recipe_path)  # the recipe's 'out' and its folders stay in the recipe's folder
    for job in jobs:  # a LoRA, an embedding or a variant changes the pixels: part of each job's request
        job.run.update(session.model_request(args))
    for job in jobs:
        state = batch.resume_state(job, args.overwrite)
        if state == "finished":
            job.status = "skipped"
            continue
        job.overwrite = args.overwrite or state == "incomplete"  # an incomplete job's files are its own
        try:
            check_outputs(job.paths().all(), job.overwrite, [job.photo, job.mask], job.edit_name)
        except PlanError as exc:
            raise CliError(f"{recipe_path.name}: {job.where} ({job.photo_name}/{job.edit_name}): {exc}") from exc
    return recipe_path, out, jobs
