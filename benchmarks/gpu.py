"""Every GPU figure of the README in one process, each row within a time budget (docs/gpu_benchmark.md).

    python -m benchmarks.gpu                                  # a CUDA GPU: every row, <= 8 minutes on an H100/H200
    python -m benchmarks.gpu --rows edit-overhead,memory      # some rows: names or groups (a name's first words)
    python -m benchmarks.gpu --smoke --json /tmp/gpu.json     # the same code on the tiny models, CPU, seconds
    python -m benchmarks.gpu --table                          # the README table from benchmarks/results/gpu.json

The models are the real architectures with random weights (benchmarks.models: SD 1.5 at 512 px, SDXL at
1024 px, fp16). Each row gets the least of its own budget and what is left of the overall one (--budget); a row
that would not fit is skipped and reported with the reason: it is not started when less is left than it needs
at least, it stops between steps once its projected time exceeds its allowance, and a timer stops it where no
step reports. Writes benchmarks/results/gpu.json (rows not run keep their earlier figures) and prints the
README's table in markdown.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import edit_overhead, inversion, memory
from benchmarks.models import benchmark_pipeline
from inversion.storage.files import atomic_write_bytes
from p2p_real import Editor

RESULTS = Path(__file__).parent / "results" / "gpu.json"
NOT_MEASURED = "not measured (no GPU lent yet)"
MEASURED = ("met", "not met", "measured")  # statuses of a row that has a figure


class OverBudget(BaseException):
    """A row stopped because it would not fit its time budget (the message says why).

    A BaseException, like KeyboardInterrupt: it may arrive from the timer inside library code, whose
    `except Exception` fallbacks must not swallow it."""


class Skip(Exception):
    """A row that cannot run on this machine (the message says why)."""


class UnknownRow(ValueError):
    """A --rows name that is neither a row nor a group of rows."""


@dataclass(frozen=True)
class Goal:
    """A figure's goal: `value <op> target`."""

    op: str  # "<=" or ">="
    target: float

    def met(self, value: float) -> bool:
        """Whether `value` meets the goal."""
        return value <= self.target if self.op == "<=" else value >= self.target


@dataclass(frozen=True)
class Profile:
    """Models, sizes, steps and budgets of one kind of run."""

    name: str
    device: str
    sd: str  # benchmarks.models names
    sdxl: str
    memory_model: str  # benchmarks.memory names
    sizes: tuple[int, int]  # photo sides of the memory rows (the "512" and "1024" rows)
    steps: int
    memory_steps: int  # the memory rows' DDIM steps: a peak is reached within one step
    repeats: int
    budget_s: float  # the whole run
    grace_s: float  # how long the timer lets a row run past its allowance before stopping it
    threads: int | None = None  # torch's CPU threads during the run (the tiny models run fastest on one)
    judges_goals: bool = True  # the goals are the GPU's: a smoke run only shows that the code runs


GPU = Profile(
    "gpu",
    "cuda",
    "sd15",
    "sdxl",
    "sd15",
    (512, 1024),
    steps=50,
    memory_steps=5,
    repeats=3,
    budget_s=420.0,
    grace_s=20.0,
)
# the same rows on the CPU, on the test kit's tiny models with a few steps: that the code runs, not its speed
SMOKE = replace(GPU, name="smoke", device="cpu", sd="tiny", sdxl="tiny-sdxl", memory_model="tiny", sizes=(64, 96))
SMOKE = replace(SMOKE, steps=2, memory_steps=1, repeats=1, budget_s=300.0, grace_s=10.0, threads=1, judges_goals=False)


@dataclass
class Measured:
    """A row's figure (None where this machine has none, e.g. GPU memory on a CPU) and what else it saw."""

    value: float | None
    details: dict[str, Any] = field(default_factory=dict)


class RowClock:
    """A row's time allowance, checked between steps: over it, or projected to go over it, raises OverBudget."""

    def __init__(self, allowance_s: float, now: Callable[[], float] = time.perf_counter) -> None:
        self.allowance = allowance_s
        self._now = now
        self.start = now()
        self._stage: tuple[str, int, float] | None = None  # (stage, first step index, time after it)
        self._units: list[float] = []  # times at which whole runs ended

    def elapsed(self) -> float:
        """Seconds since the row started."""
        return self._now() - self.start

    def check(self) -> None:
        """Stop the row if it has used its allowance."""
        elapsed = self.elapsed()
        if elapsed > self.allowance:
            raise OverBudget(f"still running after {elapsed:.0f} s, over its {self.allowance:.0f} s budget")

    def _project(self, per_unit: float, remaining: int, what: str) -> None:
        """Stop the row if `remaining` more units of `per_unit` seconds would take it past its allowance."""
        projected = self.elapsed() + per_unit * remaining
        if projected > self.allowance:
            raise OverBudget(
                f"would take about {projected:.0f} s (projected {what}), over its {self.allowance:.0f} s budget"
            )
        self.check()

    def step(self, stage: str, index: int, total: int) -> None:
        """Step `index` of `total` of a loop named `stage` has ended. The first step of a stage pays its
        warm-ups (CUDA graph capture, compiling), so the projection starts from the end of that step."""
        now = self._now()
        if self._stage is None or self._stage[0] != stage or index <= self._stage[1]:
            self._stage = (stage, index, now)
            self.check()
            return
        first_index, first_time = self._stage[1], self._stage[2]
        if index - first_index < 2:
            self.check()
            return
        self._project(
            (now - first_time) / (index - first_index),
            total - index - 1,
            f"after step {index + 1} of {total} of {stage}",
        )

    def editor_callback(self, editor: Editor, step: int, timestep: int, kwargs: dict[str, Any]) -> None:
        """An Editor callback_on_step_end (invert, edit, generate) that checks the budget after every step."""
        self.step(kwargs.get("stage", "edit"), step, len(editor.scheduler.timesteps))

    def inversion_callback(self, steps: int) -> Callable[[Any], None]:
        """A callback for the inversion loops (inversion.loops.ddim_inversion.InversionStep) of `steps` steps."""
        return lambda s: self.step(s.stage, s.index, steps)

    def unit_done(self, planned: int) -> None:
        """One of `planned` whole runs has ended; the first pays warm-ups, so it is left out of the projection."""
        self._units.append(self._now())
        done = len(self._units)
        if done < 2:
            self.check()
            return
        per_unit = (self._units[-1] - self._units[0]) / (done - 1)
        self._project(per_unit, planned - done, f"after run {done} of {planned}")

    def counted(self, runs: dict[str, Callable[[], Any]], planned: int) -> dict[str, Callable[[], Any]]:
        """The runs, each checking the budget before it starts and after it ends (`planned` runs in all)."""

        def wrapped(run: Callable[[], Any]) -> Callable[[], Any]:
            def call() -> Any:
                self.check()
                out = run()
                self.unit_done(planned)
                return out

            return call

        return {name: wrapped(run) for name, run in runs.items()}

    @contextmanager
    def watching(self, module: torch.nn.Module) -> Iterator[None]:
        """Check the budget before every forward pass of `module` (for loops without step callbacks)."""
        handle = module.register_forward_pre_hook(lambda *_: self.check())
        try:
            yield
        finally:
            handle.remove()


@contextmanager
def timer(seconds: float) -> Iterator[None]:
    """Raise OverBudget in the main thread after `seconds` (where nothing reports steps); a no-op elsewhere."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise OverBudget(f"stopped by the timer after {seconds:.0f} s, past its budget (no step reported in time)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Context:
    """What the rows share: the profile, the device and the pipelines built so far."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.device = profile.device
        self._pipes: dict[str, Any] = {}

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def pipeline(self, model: str) -> Any:
        """The benchmarks.models pipeline `model` on the device, built once."""
        if model not in self._pipes:
            self._pipes[model] = benchmark_pipeline(model, self.device)
        return self._pipes[model]

    def release(self) -> None:
        """Drop every pipeline (the memory rows measure with nothing else on the GPU)."""
        self._pipes.clear()
        self.tidy()

    def tidy(self) -> None:
        """Free the GPU memory the last row left behind."""
        if self.cuda:
            gc.collect()
            torch.cuda.empty_cache()


RowRun = Callable[[Context, RowClock], Measured]


@dataclass(frozen=True)
class Row:
    """One figure: how to measure it, its goal, and how much time it may take."""

    name: str
    what: str  # the README's words
    unit: str  # "x", "s" or "GiB"
    run: RowRun
    goal: Goal | None = None
    budget_s: tuple[float, float] = (60.0, 60.0)  # the most it may take: on a GPU, in a smoke run
    floor_s: tuple[float, float] = (0.0, 0.0)  # the least it takes: not started with less time left

    def budget(self, profile: Profile) -> float:
        return self.budget_s[profile.name == SMOKE.name]

    def floor(self, profile: Profile) -> float:
        return self.floor_s[profile.name == SMOKE.name]


# --- the rows' measurements: the existing benchmarks' functions, with the budget's checks passed in ---


def _overhead(model_of: Callable[[Profile], str]) -> RowRun:
    """Editor.generate (2 prompts, replace + local blend) against plain diffusers on the same batch: time ratio."""

    def run(ctx: Context, clock: RowClock) -> Measured:
        model, steps, repeats = model_of(ctx.profile), ctx.profile.steps, ctx.profile.repeats
        _, runs = edit_overhead.setup(model, ctx.device, steps, pipe=ctx.pipeline(model))
        planned = (repeats + 1 + ctx.cuda) * len(runs)  # warm-up, repeats, one run each for the memory peak
        runs = clock.counted(runs, planned)
        times = edit_overhead.time_runs(runs, ctx.device, repeats)
        med = {name: statistics.median(t) for name, t in times.items()}
        details: dict[str, Any] = {
            "model": model,
            "steps": steps,
            "repeats": repeats,
            "plain_seconds": med["plain"],
            "p2p_seconds": med["p2p"],
        }
        if ctx.cuda:
            peaks = {name: edit_overhead.cuda_peak(r, ctx.device) for name, r in runs.items()}
            details["memory_ratio"] = peaks["p2p"] / peaks["plain"]
        return Measured(med["p2p"] / med["plain"], details)

    return run


def _invert_edit(model_of: Callable[[Profile], str], method: str) -> RowRun:
    """Seconds to invert a square photo at the model's size with `method` and edit it once (cold: one photo)."""

    def run(ctx: Context, clock: RowClock) -> Measured:
        model = model_of(ctx.profile)
        t = edit_overhead.invert_and_edit(
            ctx.pipeline(model), ctx.device, ctx.profile.steps, method, callback=clock.editor_callback
        )
        return Measured(
            t["invert_seconds"] + t["edit_seconds"], {"model": model, "steps": ctx.profile.steps, "method": method, **t}
        )

    return run


def _pivot(ctx: Context) -> tuple[Editor, inversion.PhotoPivot, float]:
    """SD's editor and chelsea's DDIM pivot (benchmarks.inversion.prepare), for the null-text rows."""
    editor = Editor(ctx.pipeline(ctx.profile.sd), num_inference_steps=ctx.profile.steps)
    prompt, load = inversion.PHOTOS["chelsea"]
    return editor, inversion.prepare(editor, load(), prompt, ctx.profile.steps), editor.guidance_scale


def _null_text_reference(ctx: Context, clock: RowClock) -> Measured:
    """Our null-text loop against the reference-style loop on one photo's pivot: how many times faster."""
    editor, pivot, guidance = _pivot(ctx)
    steps = ctx.profile.steps

    def reference(e: Editor, p: inversion.PhotoPivot, g: float) -> list[torch.Tensor]:
        with clock.watching(e.pipe.unet):
            return inversion.run_reference(e, p, g)

    def ours(e: Editor, p: inversion.PhotoPivot, g: float) -> list[torch.Tensor]:
        return inversion.run_ours(e, p, g, callback=clock.inversion_callback(steps))

    rows = inversion.side_by_side(
        editor, pivot, {inversion.REFERENCE: reference, inversion.OURS: ours}, guidance, 1, ctx.device
    )
    ref, our = rows[inversion.REFERENCE], rows[inversion.OURS]
    return Measured(
        ref["seconds"] / our["seconds"],
        {
            "model": ctx.profile.sd,
            "steps": steps,
            "photo": "chelsea",
            "dtype": str(editor.dtype).removeprefix("torch."),
            "reference_seconds": ref["seconds"],
            "seconds": our["seconds"],
            "reference_psnr": ref["psnr"],
            "psnr": our["psnr"],
            "reference_latent_error": ref["latent_error"],
            "latent_error": our["latent_error"],
        },
    )


def _compile_vs_graphs(ctx: Context, clock: RowClock) -> Measured:
    """Null-text inversion with torch.compile against our CUDA graphs (eager passes on a CPU): time ratio of
    an inversion after compiling (below 1: compiling is faster); the first compiled run pays the compiling."""
    editor, pivot, guidance = _pivot(ctx)
    steps = ctx.profile.steps
    runs = {
        "graphs": lambda: inversion.run_ours(editor, pivot, guidance, callback=clock.inversion_callback(steps)),
        "compiled": lambda: inversion.run_ours(
            editor, pivot, guidance, compile=True, callback=clock.inversion_callback(steps)
        ),
    }
    order = ("compiled", "graphs", "compiled", "graphs")
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for name in order:
        clock.check()
        _, timing = inversion.timed(ctx.device, runs[name])
        seconds[name].append(timing.wall)
        clock.unit_done(len(order))
    graphs = statistics.median(seconds["graphs"])
    return Measured(
        seconds["compiled"][1] / graphs,
        {
            "model": ctx.profile.sd,
            "steps": steps,
            "photo": "chelsea",
            "graphs_seconds": graphs,
            "compiled_seconds": seconds["compiled"][1],
            "compiled_first_seconds": seconds["compiled"][0],
            "cuda_graphs": ctx.cuda,
        },
    )


def _memory(mode: str, size_index: int) -> RowRun:
    """Peak GPU memory (reserved, GiB) of a null-text invert + edit of one photo with offload `mode`, measured
    on a fresh pipeline with nothing else on the GPU (benchmarks.memory.measure)."""

    def run(ctx: Context, clock: RowClock) -> Measured:
        if mode != "none" and not ctx.cuda:
            raise Skip("offload needs a GPU")
        ctx.release()
        before = torch.cuda.memory_allocated() / memory.GIB if ctx.cuda else None
        size, steps = ctx.profile.sizes[size_index], ctx.profile.memory_steps
        row = memory.measure(
            ctx.profile.memory_model,
            torch.device(ctx.device),
            mode,
            size,
            steps,
            "null-text",
            callback=clock.editor_callback,
        )
        if "error" in row:
            raise RuntimeError(row["error"])
        return Measured(
            row["peak_reserved_gib"],
            {"model": ctx.profile.memory_model, "steps": steps, "allocated_before_gib": before, **row},
        )

    return run


def _sd(p: Profile) -> str:
    return p.sd


def _sdxl(p: Profile) -> str:
    return p.sdxl


ROWS: tuple[Row, ...] = (
    Row(
        "edit-overhead",
        "P2P edit (replace + local blend, 2 prompts, 50 steps) / plain diffusers, SD 1.5 512 px fp16",
        "x",
        _overhead(_sd),
        Goal("<=", 1.05),
        (60, 60),
        (5, 0),
    ),
    Row(
        "invert-edit-null-text",
        "invert (null-text) + edit of one 512 px photo, SD 1.5 fp16",
        "s",
        _invert_edit(_sd, "null-text"),
        Goal("<=", 10.0),
        (60, 60),
        (5, 0),
    ),
    Row(
        "invert-edit-direct",
        "invert (direct) + edit of one 512 px photo, SD 1.5 fp16",
        "s",
        _invert_edit(_sd, "direct"),
        Goal("<=", 2.0),
        (30, 60),
        (2, 0),
    ),
    Row(
        "invert-edit-null-text-fast",
        "invert (null-text-fast) + edit of one 512 px photo, SD 1.5 fp16",
        "s",
        _invert_edit(_sd, "null-text-fast"),
        None,
        (45, 60),
        (3, 0),
    ),
    Row(
        "invert-edit-negative-prompt",
        "invert (negative-prompt) + edit of one 512 px photo, SD 1.5 fp16",
        "s",
        _invert_edit(_sd, "negative-prompt"),
        None,
        (30, 60),
        (2, 0),
    ),
    Row(
        "invert-edit-ddim",
        "invert (DDIM) + edit of one 512 px photo, SD 1.5 fp16",
        "s",
        _invert_edit(_sd, "ddim"),
        None,
        (30, 60),
        (2, 0),
    ),
    Row(
        "null-text-reference",
        "null-text inversion, ours fp16 / the reference-style loop fp32 (x faster), one photo",
        "x",
        _null_text_reference,
        Goal(">=", 2.0),
        (150, 60),
        (30, 0),
    ),
    Row(
        "memory-model-512",
        "peak GPU memory, null-text invert + edit, 512 px, model offload",
        "GiB",
        _memory("model", 0),
        Goal("<=", 6.0),
        (45, 60),
        (5, 0),
    ),
    Row(
        "memory-none-512",
        "peak GPU memory, null-text invert + edit, 512 px, no offload",
        "GiB",
        _memory("none", 0),
        None,
        (30, 60),
        (5, 0),
    ),
    Row(
        "memory-sequential-512",
        "peak GPU memory, null-text invert + edit, 512 px, sequential offload",
        "GiB",
        _memory("sequential", 0),
        None,
        (90, 60),
        (10, 0),
    ),
    Row(
        "memory-none-1024",
        "peak GPU memory, null-text invert + edit, 1024 px, no offload",
        "GiB",
        _memory("none", 1),
        None,
        (45, 60),
        (5, 0),
    ),
    Row(
        "memory-model-1024",
        "peak GPU memory, null-text invert + edit, 1024 px, model offload",
        "GiB",
        _memory("model", 1),
        None,
        (45, 60),
        (5, 0),
    ),
    Row(
        "memory-sequential-1024",
        "peak GPU memory, null-text invert + edit, 1024 px, sequential offload",
        "GiB",
        _memory("sequential", 1),
        None,
        (90, 60),
        (10, 0),
    ),
    Row(
        "sdxl-overhead",
        "P2P edit / plain diffusers, SDXL 1024 px fp16 (2 prompts, 50 steps)",
        "x",
        _overhead(_sdxl),
        Goal("<=", 1.10),
        (120, 60),
        (20, 0),
    ),
    Row(
        "sdxl-invert-edit-direct",
        "invert (direct) + edit of one 1024 px photo, SDXL fp16",
        "s",
        _invert_edit(_sdxl, "direct"),
        None,
        (60, 60),
        (10, 0),
    ),
    Row(
        "compile-vs-graphs",
        "null-text inversion with torch.compile / with our CUDA graphs (time, after compiling)",
        "x",
        _compile_vs_graphs,
        None,
        (180, 60),
        (60, 90),
    ),
    Row(
        "sdxl-invert-edit-null-text",
        "invert (null-text) + edit of one 1024 px photo, SDXL fp16",
        "s",
        _invert_edit(_sdxl, "null-text"),
        None,
        (200, 60),
        (60, 0),
    ),
)


def select_rows(spec: str | None, rows: tuple[Row, ...] = ROWS) -> list[Row]:
    """The rows `spec` names ("a,b": row names, or groups such as "memory" for every "memory-..." row), in the
    table's order; all rows for None."""
    if spec is None:
        return list(rows)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UnknownRow("--rows names no row; known rows: " + ", ".join(r.name for r in rows))
    chosen = set()
    for name in names:
        matched = {r.name for r in rows if r.name == name or r.name.startswith(name + "-")}
        if not matched:
            raise UnknownRow(f"--rows: {name!r} is no row or group; known rows: " + ", ".join(r.name for r in rows))
        chosen |= matched
    return [r for r in rows if r.name in chosen]


# --- running and reporting ---


def device_name(device: str) -> str:
    """The GPU's name, or the CPU with its core count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores)"


def _record(
    row: Row, status: str, value: float | None = None, reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": row.name,
        "what": row.what,
        "unit": row.unit,
        "value": value,
        "goal": None if row.goal is None else f"{row.goal.op} {row.goal.target:g}",
        "status": status,
        **({"reason": reason} if reason else {}),
        **extra,
    }


def run_row(row: Row, ctx: Context, left_s: float) -> dict[str, Any]:
    """Run one row within the least of its budget and `left_s`; its record (skipped with the reason when it
    would not fit, failed with the error when it raised)."""
    budget = row.budget(ctx.profile)
    allowance = min(budget, left_s)
    floor = row.floor(ctx.profile)
    if allowance <= 0 or allowance < floor:
        limit = "its budget" if budget <= left_s else "what is left of the overall budget"
        return _record(
            row,
            "skipped",
            reason=f"needs at least {floor:.0f} s; {limit} is {max(allowance, 0):.0f} s",
            budget_s=budget,
        )
    clock = RowClock(allowance)
    failure: tuple[str, str] | None = None
    try:
        with timer(allowance + ctx.profile.grace_s):
            measured = row.run(ctx, clock)
    except (OverBudget, Skip) as exc:
        failure = ("skipped", str(exc))
    except Exception as exc:
        traceback.print_exc()
        failure = ("failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    seconds = clock.elapsed()
    ctx.tidy()
    if failure is not None:
        return _record(row, failure[0], reason=failure[1], budget_s=budget, seconds=seconds)
    value = measured.value
    judged = row.goal is not None and value is not None and ctx.profile.judges_goals
    status = ("met" if row.goal.met(value) else "not met") if judged else "measured"
    return _record(row, status, value, budget_s=budget, seconds=seconds, details=measured.details)


def run_rows(
    rows: list[Row],
    ctx: Context,
    budget_s: float,
    started: float | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the rows in order within `budget_s` seconds from `started` (default: now); their records."""
    deadline = (time.perf_counter() if started is None else started) + budget_s
    records = []
    for row in rows:
        record = run_row(row, ctx, deadline - time.perf_counter())
        records.append(record)
        if report is not None:
            report(record)
    return records


def figure(record: dict[str, Any]) -> str:
    """A row's figure as the README shows it."""
    status = record["status"]
    if status == "unmeasured":
        return NOT_MEASURED
    if status in ("skipped", "failed"):
        return f"{status}: {record.get('reason', '')}"
    value = record["value"]
    if value is None:
        return "- (no GPU memory on a CPU)"
    return {"x": f"{value:.2f}x", "s": f"{value:.1f} s", "GiB": f"{value:.2f} GiB"}.get(record["unit"], f"{value:g}")


def table(results: dict[str, Any]) -> str:
    """The README's table (markdown) of a results document."""
    lines = ["| row | what | figure | goal | status | device, date |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results["rows"]:
        goal = "-" if r["goal"] is None else f"{r['goal']}{'x' if r['unit'] == 'x' else ' ' + r['unit']}"
        where = f"{r['device']}, {r['date']}" if r.get("device") else "-"
        cell = figure(r).replace("|", "/")
        lines.append(f"| `{r['name']}` | {r['what']} | {cell} | {goal} | {r['status']} | {where} |")
    return "\n".join(lines)


def unmeasured(rows: tuple[Row, ...] = ROWS) -> dict[str, Any]:
    """A results document in which no row was ever measured."""
    return {
        "device": None,
        "torch": None,
        "diffusers": None,
        "date": None,
        "profile": None,
        "rows": [_record(row, "unmeasured") for row in rows],
    }


def merge(previous: dict[str, Any] | None, current: dict[str, Any], rows: tuple[Row, ...] = ROWS) -> dict[str, Any]:
    """This run's document with the rows it did not run taken from `previous`; a row this run skipped or that
    failed keeps an earlier figure (noting the attempt)."""
    old = {r["name"]: r for r in (previous or unmeasured(rows))["rows"]}
    new = {r["name"]: r for r in current["rows"]}
    merged = []
    for row in rows:
        earlier = old.get(row.name, _record(row, "unmeasured"))
        record = new.get(row.name)
        if record is None:
            merged.append(earlier)
        elif record["status"] in ("skipped", "failed") and earlier["status"] in MEASURED:
            attempt = {k: record.get(k) for k in ("status", "reason", "device", "date")}
            merged.append({**earlier, "last_attempt": attempt})
        else:
            merged.append(record)
    return {**current, "rows": merged}


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", help="comma-separated row names or groups (default: all); known: " + ", ".join(r.name for r in ROWS)
    )
    parser.add_argument(
        "--budget", type=float, help=f"overall seconds (default {GPU.budget_s:g}; smoke {SMOKE.budget_s:g})"
    )
    parser.add_argument("--smoke", action="store_true", help="the tiny models on the CPU, few steps (a test)")
    parser.add_argument("--json", type=Path, help=f"results file (default {RESULTS}; a smoke run: a temporary file)")
    parser.add_argument("--table", action="store_true", help="print the README table of the results file and stop")
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the selected rows; write the results file and print the table; return the merged results."""
    started = time.perf_counter()
    parser, args = parse_args(argv)
    if args.table:
        path = args.json or RESULTS
        print(table(json.loads(path.read_text())))
        return json.loads(path.read_text())
    try:
        rows = select_rows(args.rows)
    except UnknownRow as exc:
        parser.error(str(exc))
    profile = SMOKE if args.smoke else GPU
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be positive seconds, got {args.budget:g}")
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA GPU here: the GPU rows need one (--smoke runs the same code on the CPU)")
    path = args.json
    if args.smoke:
        if path is not None and path.resolve() == RESULTS.resolve():
            parser.error(f"a smoke run never writes {RESULTS}: give another --json path")
        path = path or Path(tempfile.mkdtemp(prefix="p2p-gpu-smoke-")) / "gpu.json"
    path = path or RESULTS
    budget = profile.budget_s if args.budget is None else args.budget
    torch.manual_seed(0)
    import diffusers

    device = device_name(profile.device)
    date = datetime.now(timezone.utc)
    previous = json.loads(path.read_text()) if path.exists() else None
    current: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "date": date.isoformat(timespec="seconds"),
        "profile": profile.name,
        "budget_s": budget,
        "rows": [],
    }

    def save() -> dict[str, Any]:
        """Write the results so far (after every row: a run killed from outside keeps what it measured)."""
        current["elapsed_s"] = round(time.perf_counter() - started, 1)
        results = merge(previous, current)
        atomic_write_bytes(path, (json.dumps(results, indent=2) + "\n").encode(), make_folder=True)
        return results

    def report(record: dict[str, Any]) -> None:
        record.update(device=device, date=date.strftime("%Y-%m-%d"))
        current["rows"].append(record)
        save()
        extra = f" ({record['reason']})" if "reason" in record else ""
        print(
            f"{record['name']:<28}{record['status']:<10}{figure(record) if record['value'] is not None else ''}{extra}",
            flush=True,
        )

    threads = torch.get_num_threads()
    if profile.threads:
        torch.set_num_threads(profile.threads)
    try:
        run_rows(rows, Context(profile), budget, started, report)
    finally:
        torch.set_num_threads(threads)
    results = save()
    print(
        f"\n{device}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"{current['elapsed_s']:.0f} s of a {budget:.0f} s budget; wrote {path}\n"
    )
    print(table(results))
    return results


if __name__ == "__main__":
    main()
