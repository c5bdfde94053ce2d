"""Settings sweeps: one edit of an inverted photo per combination of settings, batched, and their contact sheet.

Combinations that differ only in settings each target row can carry itself (edit_plan.ROW_SETTINGS: the
injection windows, the blend threshold, pool and start, the edit kind, reweighting) share one denoising batch
[source, target x N]; the others run as batches of their own. Each combination comes back as the EditResult
`Editor.edit` gives for its spec. Design note: docs/sweep.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from inversion import validation
from inversion.artifact import Inversion
from masks.paste import MaskSource
from masks.visualize import Cell, grid_height, labelled_grid
from p2p_real.core.edit_plan import ROW_SETTINGS, prompt_list
from p2p_real.core.sampling import unconditional_per_step
from p2p_real.editing.editor_like import EditorLike
from p2p_real.editing.photo_edit import edit_rows, photo_result, replay, user_latent_mask
from p2p_real.files.output_sets import OutputSet
from p2p_real.files.outputs import (
    EditPaths,
    _write_edit,
    check_name,
    edit_paths,
    json_writer,
    png_text,
    png_writer,
    sidecar_data,
)
from p2p_real.files.results import AttentionMaps, EditResult
from p2p_real.spec import SETTINGS, EditSpec
from p2p_real.sweep_grid import Combination, SweepError, format_value, sweep_grid

DEFAULT_BATCH = 8  # target rows per denoising batch
SHEET_HEIGHT = 256  # largest cell height of the contact sheet
SHEET_MIN_HEIGHT = 160  # smallest: small images are scaled up so that two-setting labels fit on one line
SHEET_COLUMNS = 4  # columns of a one-setting sweep's contact sheet


@dataclass
class SweepResult:
    """The edits of a sweep, one per combination (in order), and the contact sheet that shows them all."""

    results: list[EditResult]  # each an ordinary edit: [reconstruction, edited image], its spec in its parameters
    combinations: list[Combination]
    sheet: Image.Image
    target: str

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> EditResult:
        return self.results[index]

    @property
    def labels(self) -> list[str]:
        """Each combination's settings as the sheet writes them ('cross=0.2 self=0.6')."""
        return [c.label for c in self.combinations]

    @property
    def specs(self) -> list[EditSpec]:
        """Each combination's full settings."""
        return [c.spec for c in self.combinations]

    def parameters(self) -> dict[str, Any]:
        """What the sweep ran, as JSON values: the photo, the model, the swept values, each combination."""
        common = {k: v for k, v in self.results[0].parameters.items() if k not in ("spec", "targets")}
        swept: dict[str, list[Any]] = {}
        for combination in self.combinations:
            for name, value in combination.spec.to_dict().items():
                if name in combination.settings and value not in swept.setdefault(name, []):
                    swept[name].append(value)
        return {
            **common,
            "command": "sweep",
            "target": self.target,
            "swept": swept,
            "combinations": [{"index": c.index, "label": c.label, "spec": c.spec.to_dict()} for c in self.combinations],
        }

    def save(
        self,
        folder: str | os.PathLike,
        name: str,
        extra: dict[str, Any] | None = None,
        overwrite: bool = False,
        per_edit: Sequence[dict[str, Any]] | None = None,
    ) -> list[Path]:
        """Write each combination K as an ordinary edit named NAME.K (NAME.K.0.png, NAME.K.1.png, NAME.K.1.mask.png,
        NAME.K.grid.png, NAME.K.json: see EditResult.save), the contact sheet NAME.sweep.png and the sweep's
        sidecar NAME.sweep.json, as one output set: atomically, nothing replaced without `overwrite`, all or
        nothing. `extra` adds keys to every sidecar, `per_edit` (one dict per combination) to each edit's.
        Returns the paths written."""
        check_name(name)
        if per_edit is not None and len(per_edit) != len(self):
            raise ValueError(f"per_edit needs one dict per combination ({len(self)}), got {len(per_edit)}")
        paths = sweep_paths(folder, name, self.results)
        sheet, sidecar = sheet_paths(folder, name)
        every = [p for edit in paths for p in edit.all()] + [sheet, sidecar]
        parameters = self.parameters()
        written: list[Path] = []
        with OutputSet(folder, name, every, overwrite) as files:
            for k, (combination, result, edit) in enumerate(zip(self.combinations, self.results, paths)):
                note = {
                    "sweep": {
                        "index": combination.index,
                        "of": len(self),
                        "label": combination.label,
                        "sheet": sheet.name,
                    }
                }
                own = {**(extra or {}), **(per_edit[k] if per_edit is not None else {}), **note}
                written += _write_edit(result, files, edit, own, "png", None)
            written.append(files.write(sheet, png_writer(self.sheet, png_text(parameters))))
            outputs = {"sheet": sheet.name, "edits": [edit.sidecar.name for edit in paths]}
            written.append(files.write(sidecar, json_writer(sidecar_data(parameters, outputs, extra))))
        return written


def sweep_paths(
    folder: str | os.PathLike, name: str, results: Sequence[EditResult] | Sequence[bool]
) -> list[EditPaths]:
    """The files of each combination (outputs.EditPaths, named NAME.K), from the results or, before running,
    from whether each combination writes a mask."""
    masked = [r if isinstance(r, bool) else r.info.get("blend_mask") is not None for r in results]
    return [edit_paths(folder, f"{name}.{k}", 2, m) for k, m in enumerate(masked, start=1)]


def sheet_paths(folder: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """The contact sheet NAME.sweep.png and the sweep's sidecar NAME.sweep.json."""
    stem = Path(os.fspath(folder)) / name
    return Path(f"{stem}.sweep.png"), Path(f"{stem}.sweep.json")


def batch_key(spec: EditSpec) -> tuple[str, ...]:
    """What combinations must share to run in one denoising batch: every setting a row cannot carry itself."""
    return tuple(repr(getattr(spec, name)) for name in SETTINGS if name not in ROW_SETTINGS)


def batches(combinations: Sequence[Combination], batch_size: int) -> list[list[Combination]]:
    """The combinations grouped by batch_key, each group cut into batches of at most `batch_size`."""
    groups: dict[tuple[str, ...], list[Combination]] = {}
    for combination in combinations:
        groups.setdefault(batch_key(combination.spec), []).append(combination)
    out = []
    for group in groups.values():
        for first in range(0, len(group), batch_size):
            out.append(group[first : first + batch_size])
    return out


def run_sweep(
    editor: EditorLike,
    inv: Inversion,
    target: str,
    lists: Mapping[str, Any],
    *,
    spec: EditSpec | None = None,
    mask: MaskSource | None = None,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH,
    keep_trajectory: bool = True,
) -> SweepResult:
    """Editor.sweep: check every combination, run them in batches, and build the results and the sheet.
    `keep_trajectory` records each batch's latents for EditResult.as_inversion (a copy to the CPU each step)."""
    targets = prompt_list(target, "target")
    if len(targets) != 1:
        raise SweepError(f"a sweep edits one target prompt, got {len(targets)}: {targets!r}")
    target = targets[0]
    batch_size = validation.whole_number(batch_size, "batch_size")
    combinations = sweep_grid(spec or EditSpec(), lists)
    replayed = replay(editor, inv)
    per_step = unconditional_per_step(replayed[1], inv.num_inference_steps)
    for combination in combinations:  # words and prompts, before any slow work
        editor.check([inv.prompt, target], combination.spec, inv.num_inference_steps)
    user = user_latent_mask(inv, mask)
    results: dict[int, EditResult] = {}
    for batch in batches(combinations, batch_size):
        specs = [c.spec for c in batch]
        shape = (inv.num_inference_steps, len(batch) + 1, *replayed[0].shape[1:])
        trajectory = torch.empty(shape) if keep_trajectory else None  # for as_inversion
        prompts = [inv.prompt] + [target] * len(batch)
        row_specs = specs[0] if len(batch) == 1 else specs
        final, latent_mask, attention = edit_rows(
            editor, inv, replayed, prompts, row_specs, user, progress, None, trajectory
        )
        for row, combination in enumerate(batch, start=1):
            rows = [0, row]
            maps = (
                None
                if attention is None
                else AttentionMaps(attention.maps[rows], [attention.tokens[0], attention.tokens[row]])
            )
            row_mask = None if latent_mask is None else latent_mask[row - 1 : row]
            result = photo_result(
                editor, inv, [inv.prompt, target], combination.spec, final[rows], row_mask, maps, mask, "pil"
            )
            if trajectory is not None:  # rows 0 and `row` as a view of the batch's trajectory, not a copy
                result.trajectory, result.unconditional = trajectory[:, 0 : row + 1 : row], per_step
            results[combination.index] = result
    ordered = [results[c.index] for c in combinations]
    return SweepResult(ordered, combinations, contact_sheet(inv, ordered, combinations, target), target)


def sheet_columns(combinations: Sequence[Combination]) -> int:
    """Columns of the contact sheet: the values of the last swept setting when several are swept, else up to
    SHEET_COLUMNS."""
    names = list(combinations[0].settings)
    if len(names) > 1:
        last = {format_value(c.settings[names[-1]]) for c in combinations}
        if len(last) > 1:
            return len(last)
    return min(len(combinations), SHEET_COLUMNS)


def contact_sheet(
    inv: Inversion, results: Sequence[EditResult], combinations: Sequence[Combination], target: str
) -> Image.Image:
    """The photo and its reconstruction, then every combination's edited image with its settings under it."""
    leading: list[Cell | None] = [
        (inv.original, f"photo: {inv.prompt}"),
        (results[0].images[0], f"reconstruction\nedits: {target}"),
    ]
    cells: list[Cell] = [(r.images[1], f"{c.index}: {c.label}") for r, c in zip(results, combinations)]
    columns = sheet_columns(combinations)
    rows = [leading] + [cells[i : i + columns] for i in range(0, len(cells), columns)]
    height = grid_height([r.images[1] for r in results], SHEET_HEIGHT, SHEET_MIN_HEIGHT)
    return labelled_grid(rows, height)


__all__ = ["DEFAULT_BATCH", "SweepError", "SweepResult", "run_sweep", "sheet_paths", "sweep_paths"]
