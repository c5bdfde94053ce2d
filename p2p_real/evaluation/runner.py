"""Measuring for `evaluate`: every case x inversion method measured once, one row file each, resumable; then the tables.

Each finished case x method is written at once to OUT/rows/NAME.METHOD.json (atomically, as an output set), with
the request that made it (model, steps, guidance, mode); a run that finds a row of the same request skips it
(docs/evaluate.md, "Files and resuming"). The tables, plots and report are rewritten from all rows at the end.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from p2p_real.evaluation.background import background_mse, background_psnr, background_ssim, rle_decode
from p2p_real.evaluation.inputs import Case, EvaluationInputError, folder_cases, pie_cases
from p2p_real.evaluation.metric_models import MetricModels
from p2p_real.files.output_sets import OutputExistsError, OutputSet

ROWS_FOLDER = "rows"
# PIE-Bench's P2P settings (SPEC.md section 5): refine, cross 0.4, self 0.6, blend on the edited word, it x2
PIE_EDIT: dict[str, Any] = {"edit": "refine", "cross_replace_steps": 0.4, "self_replace_steps": 0.6}
PIE_WEIGHT = 2.0
MODEL_FIGURES = ("structure_distance", "lpips", "clip_whole", "clip_edited")


class RowsMismatchError(FileExistsError):
    """A row file measured with another request, which is redone only with overwrite."""


@dataclass
class Evaluation:
    """The rows of an evaluation (finished and skipped), the failures, and what the model figures lacked."""

    rows: list[dict[str, Any]]
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (case, method, reason)
    not_computed: dict[str, str] = field(default_factory=dict)  # figure -> reason
    pie: bool = False
    skipped: int = 0
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)  # the report's files, once written


def row_path(out: Path, name: str, method: str) -> Path:
    """The row file of one case and method."""
    return out / ROWS_FOLDER / f"{name}.{method}.json"


def finished_row(path: Path, request: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The row stored at `path` if it was measured for `request`; None if there is none (or overwrite);
    RowsMismatchError if one of another request (or an unreadable one) is there and overwrite is off."""
    if not path.exists() or overwrite:
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = None
    if isinstance(stored, dict) and stored.get("request") == request and isinstance(stored.get("row"), dict):
        return stored["row"]
    raise RowsMismatchError(
        f"{path} was measured with other settings (model, steps, guidance or mode); "
        "replace it with overwrite (--overwrite) or choose another output folder"
    )


def _finite(value: float) -> float | None:
    """A figure rounded for the tables; None for inf/nan (JSON has neither)."""
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def _photo_array(path: Path) -> np.ndarray:
    """The photo as uint8 (H, W, 3), upright (EXIF)."""
    from inversion.photos.image import read_rgb

    return read_rgb(path)[0]


def check_mask(case: Case) -> None:
    """EvaluationInputError if the case's run-length mask is malformed or does not fit its photo."""
    from PIL import Image

    with Image.open(case.photo) as image:
        width, height = image.size
    try:
        rle_decode(case.mask_runs or [], (height, width))
    except ValueError as exc:
        raise EvaluationInputError(f"case {case.name!r} ({case.photo.name}): {exc}") from exc


def reconstruction_row(
    editor: Any, case: Case, method: str, progress: bool, steps: int | None = None, guidance: float | None = None
) -> tuple[dict[str, Any], Any]:
    """Invert and reconstruct one photo with one method; the row and the inversion."""
    start = time.perf_counter()
    inv = editor.invert(
        case.photo, case.caption, method=method, num_inference_steps=steps, guidance_scale=guidance, progress=progress
    )
    invert_s = time.perf_counter() - start
    start = time.perf_counter()
    rec = editor.reconstruct(inv, progress=progress)
    reconstruct_s = time.perf_counter() - start
    verdict = rec.verdict()
    row: dict[str, Any] = {
        "photo": case.name,
        "method": method,
        "caption": case.caption,
        "psnr": _finite(rec.psnr),
        "ssim": _finite(rec.ssim),
        "latent_error": _finite(rec.latent_error),
        "vae_psnr": _finite(rec.vae_psnr),
        "vae_ssim": _finite(rec.vae_ssim),
        "lost_db": _finite(rec.lost_db),
        "drift_psnr": None if rec.drift_psnr is None else _finite(rec.drift_psnr),
        "verdict": verdict.level,
        "verdict_reason": verdict.reason,
        "invert_s": round(invert_s, 3),
        "reconstruct_s": round(reconstruct_s, 3),
    }
    return row, inv


def edit_row(editor: Any, case: Case, inv: Any, models: MetricModels, progress: bool) -> dict[str, Any]:
    """The PIE-Bench edit of one case from its inversion, and the figures measured on it."""
    photo = _photo_array(case.photo)
    height, width = photo.shape[:2]
    try:
        mask = rle_decode(case.mask_runs or [], (height, width), mark_border=True)
    except ValueError as exc:
        raise EvaluationInputError(f"case {case.name!r}: {exc}") from exc
    options: dict[str, Any] = dict(PIE_EDIT)
    if case.blend_words is not None:
        options["blend_words"] = case.blend_words
        options["equalizer"] = {case.blend_words[1][0]: PIE_WEIGHT}
    start = time.perf_counter()
    res = editor.edit(inv, case.target, progress=progress, **options)
    edit_s = time.perf_counter() - start
    edited = np.asarray(res.images[1].convert("RGB"))
    if edited.shape != photo.shape:
        raise ValueError(
            f"case {case.name!r}: the edited image is {edited.shape[1]}x{edited.shape[0]}, the photo {width}x{height}"
        )
    row: dict[str, Any] = {
        "target": case.target,
        "edit_type": case.edit_type,
        "edit_s": round(edit_s, 3),
        "bg_psnr": _finite(background_psnr(edited, photo, mask)),
        "bg_mse": _finite(background_mse(edited, photo, mask)),
        "bg_ssim": _finite(background_ssim(edited, photo, mask)),
        **{figure: None for figure in MODEL_FIGURES},
    }
    if models.structure is not None:
        row["structure_distance"] = _finite(models.structure(photo, edited))
    if models.clip is not None:
        target = str(case.target)
        row["clip_whole"] = _finite(models.clip(edited, target))
        inside = (edited * mask[..., None]).astype(np.uint8)  # the edited region on black, as the benchmark
        row["clip_edited"] = _finite(models.clip(inside, target))
    return row


def _write_row(
    out: Path, name: str, method: str, request: dict[str, Any], row: dict[str, Any], overwrite: bool, process: int = 0
) -> None:
    """Write one row file atomically (an output set of one file), with the index of the process that measured it."""
    path = row_path(out, name, method)
    text = json.dumps({"request": request, "row": row, "process": process}, indent=1, sort_keys=True)
    with OutputSet(path.parent, path.stem, [path], overwrite=overwrite or path.exists()) as files:
        files.write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def measure(
    editor: Any,
    folder: str | os.PathLike | None = None,
    out: str | os.PathLike = "p2p-eval",
    methods: Sequence[str] | None = None,
    *,
    pie_bench: str | os.PathLike | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    metric_models: MetricModels | None = None,
    overwrite: bool = False,
    progress: bool = True,
    raise_errors: bool = False,
    log: Callable[[str], None] | None = None,
    process: tuple[int, int] = (0, 1),
) -> Evaluation:
    """Measure every photo of `folder` (or every case of the PIE-Bench folder `pie_bench`) with every method:
    reconstruction PSNR/SSIM, latent error, VAE ceiling, verdict, direct's drift and seconds; for PIE-Bench also
    the P2P edit's background figures outside the mask (and the model figures `metric_models` can give).
    Finished rows in OUT/rows/ are skipped. `process` (index, count): measure only this process's share of the
    photos (photo k goes to process k mod count), as under `accelerate launch`; the others' rows are left out.
    Returns the rows (p2p_real.evaluation.report writes the tables)."""
    from tqdm.auto import tqdm

    cases, methods = checked_cases(folder, pie_bench, methods)
    pie = pie_bench is not None
    models = metric_models or MetricModels()
    out = Path(os.fspath(out)).expanduser()
    steps = editor.num_inference_steps if num_inference_steps is None else num_inference_steps
    guidance = editor.guidance_scale if guidance_scale is None else guidance_scale
    request = _request(editor, pie, steps, guidance)
    plan = _plan(cases, methods, out, request, overwrite, process)
    result = Evaluation([], pie=pie, not_computed=dict(models.reasons) if pie else {})
    start = time.perf_counter()
    bar = tqdm(plan, desc="evaluating", unit="row", disable=not progress)
    for case, method, done in bar:
        bar.set_postfix_str(f"{case.name} {method}", refresh=False)
        if done is not None:
            result.rows.append(done)
            result.skipped += 1
            continue
        try:
            row, inv = reconstruction_row(editor, case, method, False, steps, guidance)
            if pie:
                row.update(edit_row(editor, case, inv, models, progress=False))
        except EvaluationInputError:
            raise
        except ValueError as exc:
            if raise_errors:
                raise
            _failed(result, case, method, exc, log)
            continue
        _write_row(out, case.name, method, request, row, overwrite, process[0])
        result.rows.append(row)
    result.seconds = time.perf_counter() - start
    return result


def _request(editor: Any, pie: bool, steps: int, guidance: float) -> dict[str, Any]:
    """What a row is measured for (a row file of another request is not reused): mode, steps, guidance, model."""
    mode = "pie-bench" if pie else "reconstruction"
    return {"mode": mode, "steps": steps, "guidance": guidance, "model": editor.model_parameters().get("model")}


def checked_cases(
    folder: str | os.PathLike | None, pie_bench: str | os.PathLike | None, methods: Sequence[str] | None
) -> tuple[list[Case], list[str]]:
    """The cases of the folder or of PIE-Bench (every PIE-Bench mask checked against its photo) and the methods
    (default: all), before any work."""
    from inversion.methods import METHOD_NAMES

    if (folder is None) == (pie_bench is None):
        raise ValueError("give a folder of photos or a PIE-Bench folder (pie_bench), one of the two")
    methods = list(methods or METHOD_NAMES)
    for method in methods:
        if method not in METHOD_NAMES:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHOD_NAMES)}")
    cases = pie_cases(pie_bench) if pie_bench is not None else folder_cases(folder)  # type: ignore[arg-type]
    if pie_bench is not None:
        for case in cases:  # every mask checked against its photo before any work
            check_mask(case)
    return cases, methods


def _plan(
    cases: Sequence[Case],
    methods: Sequence[str],
    out: Path,
    request: dict[str, Any],
    overwrite: bool,
    process: tuple[int, int],
) -> list[tuple[Case, str, dict[str, Any] | None]]:
    """This process's share of (case, method, its finished row or None); every row file is checked before any work."""
    index, count = process
    plan: list[tuple[Case, str, dict[str, Any] | None]] = []
    for k, case in enumerate(cases):
        for method in methods:
            done = finished_row(row_path(out, case.name, method), request, overwrite)
            if k % count == index:  # this process's share, finished or not: another's rows may be in the making
                plan.append((case, method, done))
    return plan


def _failed(result: Evaluation, case: Case, method: str, exc: ValueError, log: Callable[[str], None] | None) -> None:
    """Record a case and method that could not be measured, with the reason on one line."""
    reason = " ".join(str(exc).split())
    result.failures.append((case.name, method, reason))
    if log is not None:
        log(f"{case.name} / {method}: failed: {reason}")


__all__ = ["Evaluation", "OutputExistsError", "RowsMismatchError", "checked_cases", "measure", "row_path"]
