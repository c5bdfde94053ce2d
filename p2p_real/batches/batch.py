"""Batches of photo edits: which are finished, which process runs which, and running them.

A job is one (photo, edit) pair of a recipe (p2p_real.batches.recipe). Its sidecar records the job's request;
a job whose sidecar holds the same request and whose files are all there is finished and skipped, so a batch
run again after an interruption resumes (a job whose files went missing is redone). Each job's files are one
output set (p2p_real.files.output_sets): reserved before its edit, never replacing a file that is not the job's own
without `overwrite`, all or nothing. Under `accelerate launch` (or torchrun) the photos are split across the
processes; a photo's edits stay together so that it is inverted once, and each output is written by one process.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inversion.settings import InversionSettings
from inversion.storage.files import file_sha256
from p2p_real.batches.photo_plan import Outputs, PhotoRequest
from p2p_real.files.outputs import EditPaths, edit_paths, shareable_path
from p2p_real.spec import EditSpec

if TYPE_CHECKING:
    from inversion.cache import InversionCache

CACHE_FOLDER = "inversions"  # the photos' inversions, in the batch's output folder


@dataclass
class Job:
    """One (photo, edit) pair of a recipe."""

    where: str  # "photos[0].edits[1]", for messages
    photo_name: str
    edit_name: str
    photo: Path
    settings: InversionSettings
    targets: list[str]
    spec: EditSpec
    mask: Path | None
    seed: int
    folder: Path  # OUT/photo_name
    run: dict[str, str]  # the model, device and dtype asked for
    status: str = "to do"  # to do | skipped (finished before) | done | failed: ...
    seconds: float = 0.0
    process: int = 0
    inversion: bool = False  # `photo` is a saved inversion, edited as it is
    overwrite: bool = False  # existing files of the job may be replaced (--overwrite, or the job's own files)

    def paths(self) -> EditPaths:
        """The files the job writes."""
        return edit_paths(
            self.folder,
            self.edit_name,
            len(self.targets) + 1,
            self.spec.blend_words is not None or self.mask is not None,
        )

    def photo_request(self, cache: InversionCache | None = None) -> PhotoRequest:
        """The job as a request to plan (p2p_real.batches.photo_plan): its photo inverted into `cache`, or its saved
        inversion, edited into its files."""
        photo = None if self.inversion else self.photo
        outputs = Outputs(
            self.folder, self.edit_name, tuple(self.paths().all()), self.overwrite, (self.photo, self.mask)
        )
        return PhotoRequest(
            photo,
            self.settings,
            self.photo if self.inversion else None,
            self.targets,
            self.spec,
            self.mask,
            outputs,
            None if self.inversion else cache,
            self.photo_name,
        )

    def request(self) -> dict[str, Any]:
        """What the job asks for, as JSON values (inputs by name and content hash): its sidecar records it."""
        return {
            "photo": self.photo.name,
            "photo_sha256": file_sha256(self.photo),
            "settings": self.settings.to_dict(),
            "targets": self.targets,
            "spec": self.spec.to_dict(),
            "mask": None if self.mask is None else self.mask.name,
            "mask_sha256": None if self.mask is None else file_sha256(self.mask),
            "seed": self.seed,
            **self.run,
            "model": shareable_path(self.run.get("model") or ""),  # a local model by name (the folders stay private)
        }


def resume_state(job: Job, overwrite: bool) -> str:
    """ "finished": the job's sidecar holds this request and every file of the job is there; "incomplete": the
    sidecar holds it but files are missing (the job is redone, replacing its own files); "new": no sidecar. A
    sidecar of another request raises ValueError unless `overwrite` ("new" then)."""
    path = job.paths().sidecar
    if not path.exists():
        return "new"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        stored, outputs = data.get("job"), data.get("outputs") or {}
        listed = [*outputs.get("images", []), *outputs.get("masks", []), outputs.get("grid")]
    except (OSError, ValueError, AttributeError, TypeError):
        stored, listed = None, []
    if stored == json.loads(json.dumps(job.request())):
        files = [*job.paths().all(), *(job.folder / str(name) for name in listed if name)]
        return "finished" if all(p.is_file() for p in files) else "incomplete"
    if not overwrite:
        raise ValueError(
            f"{path} holds another edit (its settings differ); pass --overwrite to redo it, "
            "or give the edit another 'name'"
        )
    return "new"


def finished(job: Job, overwrite: bool) -> bool:
    """Whether the job is finished (see resume_state): its sidecar holds this request and its files are there."""
    return resume_state(job, overwrite) == "finished"


def plan(jobs: list[Job], n_processes: int) -> dict[str, int]:
    """Assign photos to processes (a photo's edits stay together, so its inversion is made once), balanced."""
    pending: dict[str, int] = {}
    for job in jobs:
        if job.status == "to do":
            pending[job.photo_name] = pending.get(job.photo_name, 0) + 1
    load = [0] * n_processes
    owner: dict[str, int] = {}
    for name, count in sorted(pending.items(), key=lambda item: (-item[1], item[0])):
        rank = min(range(n_processes), key=lambda r: (load[r], r))
        owner[name] = rank
        load[rank] += count
    return owner


def distributed() -> tuple[Any, int, int]:
    """(accelerate state or None, process index, number of processes) from `accelerate launch` or torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None, 0, 1
    try:
        from accelerate import PartialState
    except ImportError:  # launched by torchrun without accelerate: split by the environment, no barrier
        return None, int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
    import torch

    state = PartialState(cpu=not torch.cuda.is_available())  # without GPUs: processes talk over gloo
    return state, state.process_index, state.num_processes


def gather(state: Any, jobs: list[Job], mine: list[Job]) -> None:
    """Copy every process's status, seconds and process index into `jobs` (all processes wait here)."""
    from accelerate.utils import gather_object

    state.wait_for_everyone()
    reports = gather_object([(j.where, j.status, j.seconds, j.process) for j in mine])
    by_where = {where: rest for where, *rest in reports}
    for job in jobs:
        if job.where in by_where:
            job.status, job.seconds, job.process = by_where[job.where]


def finish(state: Any) -> None:
    """Wait for every process, then close the process group, so that no process exits while another still
    talks to it (gloo aborts a process whose peer vanished: "terminate called without an active exception")."""
    state.wait_for_everyone()
    state.destroy_process_group()


def check_jobs(editor: Any, jobs: list[Job], label: str) -> None:
    """Check every job's prompts and words (the plans' check) before anything is inverted; the error names the job."""
    for job in jobs:
        try:
            job.photo_request().check_words(editor)
        except ValueError as exc:
            raise ValueError(f"{label}: {job.where} ({job.photo_name}/{job.edit_name}): {exc}") from exc


def run_jobs(
    editor: Any,
    jobs: list[Job],
    out: Path,
    rank: int = 0,
    *,
    progress: bool = True,
    raise_errors: bool = False,
    extra: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Run the jobs one by one, each planned (p2p_real.batches.photo_plan), its files held, then run: each photo
    inverted once (kept in OUT/inversions and reused by later jobs and runs), each edit made and saved with the job's
    request in its sidecar. A failed job is marked and the others go on, unless `raise_errors`."""
    from inversion.cache import InversionCache
    from p2p_real.batches.photo_plan import plan_photo

    cache = InversionCache(out / CACHE_FOLDER, keyed=True, replace=True)
    for n, job in enumerate(jobs, start=1):
        if log is not None:
            log(f"[{n}/{len(jobs)}] {job.photo_name} / {job.edit_name}")
        start = time.perf_counter()
        try:
            plan = plan_photo(editor, job.photo_request(cache))
            with plan.reserved():  # another run on this job: it fails
                plan.run(
                    {**(extra or {}), "job": job.request(), "process": rank}, seed=job.seed, progress=progress, log=log
                )
            job.status = "done"
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if raise_errors:
                raise
            job.status = f"failed: {' '.join(str(exc).split()) or type(exc).__name__}"
            if log is not None:
                log(f"{job.photo_name}/{job.edit_name}: {job.status}")
        job.seconds = round(time.perf_counter() - start, 2)
        job.process = rank


def summary(jobs: list[Job], seconds: float) -> list[str]:
    """A table of every job (photo, edit, status, seconds, process), then the totals."""
    header = ("photo", "edit", "status", "seconds", "process")
    table = [header] + [(j.photo_name, j.edit_name, j.status, f"{j.seconds:.1f}", str(j.process)) for j in jobs]
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    counts = {s: sum(j.status.split(":")[0] == s for j in jobs) for s in ("done", "skipped", "failed", "to do")}
    lines.append(
        f"{counts['done']} done, {counts['skipped']} skipped (finished before), {counts['failed']} failed, "
        f"{counts['to do']} to do, in {seconds:.1f} s"
    )
    return lines
