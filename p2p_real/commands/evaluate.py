"""p2p-real evaluate: every inversion method on a folder of photos (or PIE-Bench): tables, plots, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inversion.methods import METHOD_NAMES
from p2p_real.commands import options, session
from p2p_real.commands.options import PROG, CliError

if TYPE_CHECKING:
    from p2p_real.evaluation.runner import Evaluation

NAME = "evaluate"
HELP = "measure every inversion method on a folder of photos or on PIE-Bench (resumable): tables, plots, report"
DEFAULT_EVAL_OUT = "p2p-eval"
EPILOG = f"""\
FOLDER holds photos and their captions: captions.csv (columns photo,caption), captions.jsonl (one
{{"photo": ..., "caption": ...}} a line) or PHOTO.txt beside each photo. --pie-bench DIR reads PIE-Bench's
DIR/mapping_file.json and DIR/annotation_images/, runs the P2P edit from each method and measures the
background outside each edit's mask.
outputs: OUT/rows/PHOTO.METHOD.json (one per photo x method: run again to resume, finished rows are skipped),
OUT/evaluation.csv, .json, .txt (the tables), .png (plots, needs pip install 'p2p-real[evaluate]') and .html.
Under `accelerate launch` the photos are split across the processes; the first then writes the report (a row
another process could not measure is tried once more by the first).
docs/evaluate.md describes every figure. Example:
  {PROG} evaluate photos/ --methods direct,null-text --steps 50 --out eval
"""


def parse_methods(text: str) -> list[str]:
    """A comma-separated list of inversion methods, each known."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ValueError("give at least one method")
    for method in methods:
        if method not in METHOD_NAMES:
            raise ValueError(f"{method!r} is not one of {', '.join(METHOD_NAMES)}")
    return list(dict.fromkeys(methods))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The folder (or --pie-bench), methods, steps, outputs, metric models, model and run options."""
    p.add_argument("folder", metavar="FOLDER", nargs="?", help="a folder of photos with captions")
    group = p.add_argument_group("evaluation")
    group.add_argument("--pie-bench", metavar="DIR", help="a PIE-Bench folder (mapping_file.json) instead of FOLDER")
    group.add_argument(
        "--methods",
        type=options.arg_type(parse_methods),
        metavar="M1,M2",
        help=f"inversion methods to compare (default: all: {','.join(METHOD_NAMES)})",
    )
    group.add_argument("--steps", type=options.steps_value, default=None, help="DDIM steps (default: 50)")
    group.add_argument(
        "--guidance", type=options.guidance_value, default=None, help="classifier-free guidance scale (default: 7.5)"
    )
    group.add_argument(
        "--metric-models",
        metavar="DIR",
        help="PIE-Bench's model figures from DIR/clip (CLIP similarity) and DIR/dino (structure "
        "distance), transformers models loaded offline; without them those figures are "
        "reported as not computed",
    )
    group.add_argument(
        "--out", default=DEFAULT_EVAL_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_EVAL_OUT})"
    )
    options.add_model_options(p)
    options.add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Check the inputs and outputs, load the model, evaluate and print the tables."""
    out = _checked_output(args)
    from p2p_real.batches import batch

    state, rank, n_processes = batch.distributed()
    loaded = session.open_session(args, str(state.device) if state is not None and args.device == "auto" else None)
    import p2p_real
    from p2p_real.evaluation import load_metric_models

    session.seed_everything(0)
    common: dict[str, Any] = {
        "pie_bench": args.pie_bench,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "metric_models": load_metric_models(args.metric_models),  # loaded once, for the share and the report
        "progress": loaded.progress,
        "raise_errors": args.debug,
        "log": loaded.log,
    }
    extra = {"runtime": loaded.runtime, "model_options": loaded.run_options()}
    if n_processes == 1:
        result = p2p_real.evaluate(
            loaded.editor, args.folder, out, args.methods, overwrite=args.overwrite, extra=extra, **common
        )
    else:
        shared = _evaluate_shares(args, loaded, out, common, extra, state, rank, n_processes)
        if shared is None:  # not the first process: the first reports
            return 0
        result = shared
    return _report(args, result)


def _checked_output(args: argparse.Namespace) -> Path:
    """The photos (or PIE-Bench's cases and masks) and the metric models checked, and the output folder, before
    the model loads."""
    if (args.folder is None) == (args.pie_bench is None):
        raise CliError("give a FOLDER of photos or --pie-bench DIR (one of the two)")
    from p2p_real.batches.preflight import check_writable
    from p2p_real.evaluation.report import check_report
    from p2p_real.evaluation.runner import checked_cases

    checked_cases(args.folder, args.pie_bench, args.methods)  # a bad mapping file or mask fails before the model loads
    if args.metric_models is not None and not Path(args.metric_models).expanduser().is_dir():
        raise CliError(f"--metric-models {args.metric_models!r} is not a folder (give one holding clip/ and dino/)")
    out = session.out_folder(args.out)
    check_report(out, args.overwrite)
    check_writable(out)
    return out


def _evaluate_shares(
    args: argparse.Namespace,
    loaded: session.Session,
    out: Path,
    common: dict[str, Any],
    extra: dict[str, Any],
    state: Any,
    rank: int,
    n_processes: int,
) -> Evaluation | None:
    """Each process measures its share; then the first reads every row back and writes the report (its
    Evaluation; None in the other processes)."""
    import p2p_real
    from p2p_real.batches import batch

    share = p2p_real.evaluate(
        loaded.editor,
        args.folder,
        out,
        args.methods,
        overwrite=args.overwrite,
        process=(rank, n_processes),
        report=False,
        **common,
    )
    skipped = share.skipped  # the rows of this process's share finished before this run
    if state is not None:  # ... of every process's share
        from accelerate.utils import gather_object

        state.wait_for_everyone()
        skipped = sum(gather_object([share.skipped]))
    if rank != 0:
        if state is not None:
            batch.finish(state)
        return None
    from p2p_real.evaluation.report import write_report
    from p2p_real.evaluation.runner import measure

    result = measure(loaded.editor, args.folder, out, args.methods, overwrite=False, **common)
    result.skipped = skipped
    result.seconds += share.seconds

    result.written = write_report(result, out, args.overwrite, extra)
    if state is not None:
        batch.finish(state)
    return result


def _report(args: argparse.Namespace, result: Evaluation) -> int:
    """Print the tables, the counts and each failure; the exit status (1 if a row failed)."""
    from p2p_real.evaluation.report import summary_lines

    print("\n".join(summary_lines(result)))
    print(
        f"{len(result.rows) - result.skipped} rows measured, {result.skipped} skipped (finished), "
        f"{len(result.failures)} failed, {result.seconds:.1f} s"
    )
    for photo, method, reason in result.failures:
        print(f"{PROG}: error: {photo}/{method}: {reason}", file=sys.stderr)
    session.report_written(result.written, args.quiet)
    return 1 if result.failures else 0
