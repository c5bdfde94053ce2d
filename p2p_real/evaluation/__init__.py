"""`p2p_real.evaluate`: reconstruction (and PIE-Bench edit) quality of every inversion method over many photos.

inputs reads a folder or a PIE-Bench set, background holds the pure mask figures, metric_models the optional
model-based ones, runner measures (resumable, one row file per photo x method) and report writes the tables,
plots and HTML page. docs/evaluate.md describes the figures and files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from p2p_real.evaluation.inputs import EvaluationInputError
from p2p_real.evaluation.metric_models import MetricModels, load_metric_models
from p2p_real.evaluation.runner import Evaluation, RowsMismatchError


def evaluate(
    editor: Any,
    folder: str | os.PathLike | None = None,
    out: str | os.PathLike = "p2p-eval",
    methods: Sequence[str] | None = None,
    *,
    pie_bench: str | os.PathLike | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    metric_models: MetricModels | str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    raise_errors: bool = False,
    log: Callable[[str], None] | None = None,
    extra: dict[str, Any] | None = None,
    process: tuple[int, int] = (0, 1),
    report: bool = True,
) -> Evaluation:
    """Evaluate every photo of `folder` (captions.csv / captions.jsonl / PHOTO.txt), or every case of a PIE-Bench
    folder (`pie_bench`), with every inversion method in `methods` (default: all), and write OUT/rows/ (one row
    file per photo x method; finished ones are skipped on a rerun) and the report OUT/evaluation.{csv,txt,png,
    html,json}. Steps and guidance default to the editor's. `metric_models`: a MetricModels, or a folder of
    CLIP/DINO models for PIE-Bench's model figures. Existing files that evaluate did not write are replaced
    only with `overwrite`. `process` (index, count) measures one process's share of the photos (see
    runner.measure); `report=False` writes the rows only (the processes but the last pass under accelerate)."""
    from p2p_real.evaluation.report import check_report, write_report
    from p2p_real.evaluation.runner import measure

    check_report(out, overwrite)
    models = (
        metric_models
        if isinstance(metric_models, MetricModels) or metric_models is None
        else load_metric_models(metric_models)
    )
    result = measure(
        editor,
        folder,
        out,
        methods,
        pie_bench=pie_bench,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        metric_models=models,
        overwrite=overwrite,
        progress=progress,
        raise_errors=raise_errors,
        log=log,
        process=process,
    )
    if report:
        result.written = write_report(result, out, overwrite, extra)
    return result


__all__ = ["Evaluation", "EvaluationInputError", "MetricModels", "RowsMismatchError", "evaluate", "load_metric_models"]
