"""Peak GPU memory and time of invert + edit of one photo, per placement mode and photo size.

    python -m benchmarks.memory                                  # SD 1.5 architecture on CUDA: 512 and 1024 px
    python -m benchmarks.memory --limit-gib 6                    # also: does it fit in 6 GiB? (OOM is recorded)
    python -m benchmarks.memory --model tiny --steps 2           # anywhere: the tiny test model on the CPU

Modes: "none" (the whole pipeline on the GPU), "model" (diffusers' model CPU offload) and "sequential"
(sequential CPU offload); the offload modes need a GPU and are skipped on the CPU. The SD 1.5 architecture
has random weights (benchmarks.models): memory and time are those of the real model. It is placed as
load_pipeline places SD 1.5 (half precision, VAE in half precision: SD 1.5's VAE config does not ask for
float32; tiling only above 1024x1024 pixels; slicing with offload). Each (mode, size) gets a fresh pipeline;
the peak is torch's allocated and reserved memory from before the inversion to the end of the edit,
the resident weights included. Prints a table and merges results/memory.json (one entry per device and model).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import skimage.data
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.models import sd15_pipeline
from p2p_real import Editor
from p2p_real.models.loading import resolve_device
from p2p_real.models.placement import OFFLOAD_MODES, place_pipeline
from p2p_real.testing import tiny_pipeline

MODES = ("none", *OFFLOAD_MODES)
SIZES = {"sd15": (512, 1024), "tiny": (64, 128)}
PROMPT, TARGET, BLEND = "a photo of a cat sitting on a wall", "a photo of a dog sitting on a wall", (["cat"], ["dog"])
RESULTS = Path(__file__).parent / "results" / "memory.json"
GIB = 2**30


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU with its core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({os.cpu_count()} cores)"


def build(model: str, device: torch.device, mode: str) -> Any:
    """A fresh pipeline placed for `mode` as load_pipeline would place it."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe = tiny_pipeline() if model == "tiny" else sd15_pipeline(str(device), dtype)
    pipe.to(dtype=dtype)
    return place_pipeline(pipe, device, dtype, offload=None if mode == "none" else mode)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    model: str, device: torch.device, mode: str, size: int, steps: int, method: str, callback: Any = None
) -> dict[str, Any]:
    """Invert a size x size photo and edit it once; seconds of each and the peak memory (CUDA). `callback` is
    passed to both calls as their callback_on_step_end."""
    photo = np.asarray(skimage.data.astronaut())
    row: dict[str, Any] = {"mode": mode, "size": size}
    pipe = build(model, device, mode)
    editor = Editor(pipe, num_inference_steps=steps)
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        sync(device)
        start = time.perf_counter()
        inv = editor.invert(
            photo, PROMPT, method=method, size=(size, size), progress=False, callback_on_step_end=callback
        )
        sync(device)
        row["invert_s"] = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
        editor.edit(inv, TARGET, blend_words=BLEND, progress=False, callback_on_step_end=callback)
        sync(device)
        row["edit_s"] = round(time.perf_counter() - start, 3)
    except torch.cuda.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0][:160]}"
    if device.type == "cuda":
        row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 3)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / GIB, 3)
    else:
        row["peak_allocated_gib"] = row["peak_reserved_gib"] = None  # CPU memory is not this benchmark's
    row["vae_dtype"] = str(pipe.vae.dtype).removeprefix("torch.")
    del editor, pipe
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """The runs as a plain-text table."""

    def cell(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lines = [f"{'mode':<12}{'size':>6}{'peak alloc GiB':>16}{'peak reserved GiB':>19}{'invert s':>10}{'edit s':>9}"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['mode']:<12}{r['size']:>6}  skipped: {r['skipped']}")
            continue
        lines.append(
            f"{r['mode']:<12}{r['size']:>6}{cell(r.get('peak_allocated_gib'), '.2f'):>16}"
            f"{cell(r.get('peak_reserved_gib'), '.2f'):>19}{cell(r.get('invert_s'), '.1f'):>10}"
            f"{cell(r.get('edit_s'), '.1f'):>9}" + (f"  {r['error']}" if "error" in r else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table and merge the entry into the JSON file; return the entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", choices=["auto", "tiny", "sd15"], default="auto", help="auto: sd15 on CUDA, tiny elsewhere"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--sizes", nargs="+", type=int, help="photo sides in pixels (sd15: 512 1024, tiny: 64 128)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--method", default="null-text")
    parser.add_argument("--limit-gib", type=float, help="cap this process's CUDA memory (e.g. 6: a 6 GiB card)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    model = args.model if args.model != "auto" else ("sd15" if device.type == "cuda" else "tiny")
    if args.limit_gib and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.limit_gib * GIB / total), device)
    torch.manual_seed(0)
    rows = []
    for size in args.sizes or SIZES[model]:
        for mode in args.modes:
            if mode != "none" and device.type == "cpu":
                rows.append({"mode": mode, "size": size, "skipped": "offload needs a GPU"})
            else:
                rows.append(measure(model, device, mode, size, args.steps, args.method))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    entry = {
        "device": device_name(device),
        "model": model,
        "steps": args.steps,
        "method": args.method,
        "dtype": "float16" if device.type == "cuda" else "float32",
        "limit_gib": args.limit_gib,
        "torch": torch.__version__,
        "runs": rows,
    }
    print(table(rows))
    data = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    key = (entry["device"], entry["model"], entry["limit_gib"])
    data["runs"] = [r for r in data["runs"] if (r["device"], r["model"], r.get("limit_gib")) != key] + [entry]
    headline = max(data["runs"], key=lambda r: (r["model"] == "sd15", not r["device"].startswith("cpu")))
    data["device"] = headline["device"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    return entry


if __name__ == "__main__":
    main()
