"""Cost of Prompt-to-Prompt control: Editor.generate (2 prompts, replace + local blend) against plain
diffusers generation of the same 2-prompt batch, side by side in one run.

    python -m benchmarks.edit_overhead                 # tiny model on CPU (sd15 architecture on CUDA)
    python -m benchmarks.edit_overhead --model sd15    # random-weight SD 1.5 at 512x512
    python -m benchmarks.edit_overhead --model sdxl --invert null-text   # random-weight SDXL at 1024 px,
                                                       # and one photo inverted and edited

Prints a table and merges the figures into benchmarks/results/edit_overhead.json (one entry per device
and model; the top-level time_ratio / memory_ratio are those of the largest model measured).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.models import MODELS, benchmark_pipeline
from inversion.loops.ddim import ddim_scheduler
from p2p_real import Editor
from p2p_real.models.loading import resolve_device

SOURCE, TARGET = "a photo of a cat sitting on the wall", "a photo of a dog sitting on the wall"
RESULTS = Path(__file__).parent / "results" / "edit_overhead.json"


def setup(model: str, device: str, steps: int, pipe=None):
    """The pipeline (DDIM like the editor's; `pipe` if given, else a fresh `model`), the editor, a shared z_T
    and the two runs to compare."""
    pipe = benchmark_pipeline(model, device) if pipe is None else pipe
    editor = Editor(pipe, num_inference_steps=steps)
    pipe.scheduler = ddim_scheduler(editor.scheduler.config)
    h, w = pipe.unet.config.sample_size, pipe.unet.config.sample_size
    dtype = pipe.unet.dtype
    z = torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(0)).to(device, dtype)

    def plain():
        return pipe(
            [SOURCE, TARGET],
            latents=z.expand(2, -1, -1, -1),
            num_inference_steps=steps,
            guidance_scale=7.5,
            output_type="latent",
        ).images

    def p2p():
        return editor.generate(
            [SOURCE, TARGET], latents=z, blend_words=(["cat"], ["dog"]), output_type="latent", progress=False
        ).images

    return pipe, {"plain": plain, "p2p": p2p}


def invert_and_edit(pipe, device: str, steps: int, method: str, callback=None) -> dict[str, float]:
    """Seconds to invert one photo at the model's size with `method`, then to edit it (blend on one word);
    `callback` is passed to both calls as their callback_on_step_end."""
    import numpy as np
    import skimage.data

    editor = Editor(pipe, num_inference_steps=steps)
    photo = np.ascontiguousarray(skimage.data.chelsea())
    sync(device)
    start = time.perf_counter()
    inv = editor.invert(photo, SOURCE, method=method, progress=False, square=True, callback_on_step_end=callback)
    sync(device)
    middle = time.perf_counter()
    editor.edit(inv, TARGET, blend_words=(["cat"], ["dog"]), progress=False, callback_on_step_end=callback)
    sync(device)
    return {"invert_seconds": middle - start, "edit_seconds": time.perf_counter() - middle}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_runs(runs: dict, device: str, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each run, interleaved so drifts of the machine hit both alike."""
    for run in runs.values():  # warm-up
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            sync(device)
            start = time.perf_counter()
            out = run()
            sync(device)
            times[name].append(time.perf_counter() - start)
            if not torch.isfinite(out.float()).all():
                print(f"warning: {name} produced non-finite latents", file=sys.stderr)
    return times


def cuda_peak(run, device: str) -> float:
    """Bytes allocated at the peak of one call, above what was allocated before it."""
    sync(device)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run()
    sync(device)
    return float(torch.cuda.max_memory_allocated() - base)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_peak(model: str, device: str, steps: int, name: str) -> float:
    """Peak resident memory of one call above the loaded model, measured in a fresh process."""
    code = (
        "import json, resource, sys; from benchmarks.edit_overhead import setup, rss_bytes\n"
        f"_, runs = setup({model!r}, {device!r}, {steps})\n"
        "base = rss_bytes()\n"
        f"runs[{name!r}]()\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps(peak - base))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["auto", *MODELS], default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--invert", metavar="METHOD", help="also time inverting a photo with METHOD and editing it")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    model = args.model if args.model != "auto" else ("sd15" if device.startswith("cuda") else "tiny")
    torch.manual_seed(0)
    pipe, runs = setup(model, device, args.steps)
    times = time_runs(runs, device, args.repeats)
    photo = invert_and_edit(pipe, device, args.steps, args.invert) if args.invert else {}
    if device.startswith("cuda"):
        peaks = {name: cuda_peak(run, device) for name, run in runs.items()}
        total = {name: peaks[name] + torch.cuda.memory_allocated() for name in peaks}
    else:
        del pipe, runs
        peaks = {name: cpu_peak(model, device, args.steps, name) for name in ("plain", "p2p")}
        total = {name: peaks[name] + resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 for name in peaks}
    med = {name: statistics.median(t) for name, t in times.items()}
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)"
    entry = {
        "device": gpu,
        "model": model,
        "steps": args.steps,
        "repeats": args.repeats,
        "plain_seconds": med["plain"],
        "p2p_seconds": med["p2p"],
        "time_ratio": med["p2p"] / med["plain"],
        "plain_peak_bytes": peaks["plain"],
        "p2p_peak_bytes": peaks["p2p"],
        "memory_ratio": peaks["p2p"] / peaks["plain"],
        "total_memory_ratio": total["p2p"] / total["plain"],
        **({"invert_method": args.invert, **photo} if photo else {}),
        "torch": torch.__version__,
    }
    print(f"{'run':<8}{'seconds (median)':>18}{'peak MiB above model':>24}")
    for name in ("plain", "p2p"):
        print(f"{name:<8}{med[name]:>18.3f}{peaks[name] / 2**20:>24.1f}")
    print(
        f"device {gpu}, model {model}, {args.steps} steps: time ratio {entry['time_ratio']:.3f}, "
        f"memory ratio {entry['memory_ratio']:.3f} (with weights {entry['total_memory_ratio']:.3f})"
    )
    if photo:
        print(f"photo: {args.invert} inversion {photo['invert_seconds']:.2f} s, edit {photo['edit_seconds']:.2f} s")
    data = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if (r["device"], r["model"]) != (gpu, model)] + [entry]
    headline = max(data["runs"], key=lambda r: (r["model"] == "sd15", r["device"] != "cpu"))
    data.update({k: headline[k] for k in ("device", "model", "time_ratio", "memory_ratio")})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
