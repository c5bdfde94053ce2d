"""`p2p-real edit --sweep NAME=V1,V2,...`: the option, its checks before anything loads, and the sweep's files.

One edit per combination of the swept values (p2p_real.editing.sweep), each written as an ordinary edit NAME.K with a
sidecar whose command reproduces it alone, and the contact sheet NAME.sweep.png. Design note: docs/sweep.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from p2p_real.commands import options, session
from p2p_real.commands.options import CliError
from p2p_real.spec import EditSpec
from p2p_real.sweep_grid import SHORT_NAMES, Combination, SweepError, sweep_grid, sweep_lists


def add_sweep_option(p: argparse.ArgumentParser) -> None:
    """--sweep (repeatable)."""
    p.add_argument(
        "--sweep",
        action="append",
        metavar="NAME=V1,V2,...",
        help=f"try every combination of these values of a setting (repeatable; NAME: "
        f"{', '.join(SHORT_NAMES)} or an edit setting's name, e.g. --sweep cross=0.2,0.5,0.8 --sweep "
        "self=0.2,0.6): each combination K is written as NAME.K.*, all of them in the contact sheet "
        "NAME.sweep.png (docs/sweep.md)",
    )


def combinations(args: argparse.Namespace, spec: EditSpec, targets: list[str], fmt: str) -> list[Combination] | None:
    """The combinations --sweep asks for (None without it), checked before anything loads."""
    if not getattr(args, "sweep", None):
        return None
    if len(targets) != 1:
        raise CliError(f"--sweep edits one --target, got {len(targets)}")
    if fmt != "png":
        raise CliError("--sweep writes PNG images; leave out --format and the extension of --name")
    if getattr(args, "save_inversions", False):
        raise CliError(
            "--save-inversions does not apply to --sweep: edit the combination you chose again with its "
            "sidecar's command (--spec NAME.K.json) and --save-inversions"
        )
    try:
        return sweep_grid(spec, sweep_lists(args.sweep))
    except SweepError as exc:
        raise CliError(f"--sweep: {exc}") from None


def output_paths(out: Path, name: str, chosen: list[Combination], masked: bool) -> list[Path]:
    """Every file the sweep writes, its sidecar last."""
    from p2p_real.editing.sweep import sheet_paths, sweep_paths

    edits = sweep_paths(out, name, [masked or c.spec.blend_words is not None for c in chosen])
    return [p for edit in edits for p in edit.all()] + list(sheet_paths(out, name))


def edit_and_save(
    loaded: Any,
    inv: Any,
    target: str,
    spec: EditSpec,
    mask: Path | None,
    args: argparse.Namespace,
    inputs: Any,
    out: Path,
    name: str,
    timing: dict[str, float],
) -> list[Path]:
    """Run the sweep and write its files; each combination's sidecar reproduces that edit alone."""
    chosen = sweep_grid(spec, sweep_lists(args.sweep))
    loaded.log(f"sweeping {len(chosen)} combinations of {target!r}")
    start = time.perf_counter()
    result = loaded.editor.sweep(  # the command saves no inversions of a sweep: no trajectories
        inv, target, spec=spec, mask=mask, progress=loaded.progress, keep_trajectory=False, **sweep_lists(args.sweep)
    )
    timing = {**timing, "edit_s": round(time.perf_counter() - start, 3)}
    head = ["edit", *inputs.argv(inv, args), "--target", target]
    tail = [*(["--mask", session.shown_path(mask)] if mask else []), "--seed", str(args.seed), *loaded.run_options()]
    per_edit = [session.reproduction([*head, "--spec", options.spec_json(c.spec), *tail]) for c in chosen]
    swept = [x for entry in args.sweep for x in ("--sweep", entry)]
    argv = [*head, "--spec", options.spec_json(spec), *swept, *tail]
    return result.save(
        out,
        name,
        {**session.reproduction(argv), "runtime": {**loaded.runtime, **timing}},
        overwrite=args.overwrite,
        per_edit=per_edit,
    )
