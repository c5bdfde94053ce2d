"""A settings sweep against the same edits made one by one: Editor.sweep of 6 combinations (cross 0.2/0.5/0.8 x
self 0.2/0.6, local blend on) against 6 separate Editor.edit calls, on one inverted photo.

    python -m benchmarks.sweep                    # the tiny test model on the CPU, 50 steps
    python -m benchmarks.sweep --device cuda --model sd15   # random-weight SD 1.5 at 512x512 on a GPU

The two runs alternate (best of --repeats each, after a warm-up), so drifts of the machine hit both alike. Prints
a table and merges the figures into benchmarks/results/sweep.json (one entry per device and model).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from p2p_real import Editor
from p2p_real.spec import EditSpec

SOURCE, TARGET = "a photo of a cat sitting on the wall", "a photo of a dog sitting on the wall"
LISTS = {"cross_replace_steps": [0.2, 0.5, 0.8], "self_replace_steps": [0.2, 0.6]}
RESULTS = Path(__file__).parent / "results" / "sweep.json"


def pipeline(model: str, device: str):
    """The tiny test model, or a random-weight benchmark model (benchmarks.models)."""
    if model == "tiny":
        from p2p_real.testing import tiny_pipeline

        return tiny_pipeline(seed=0).to(device)
    from benchmarks.models import benchmark_pipeline

    return benchmark_pipeline(model, device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(model: str, device: str, steps: int, repeats: int) -> dict:
    """Best seconds of the sweep and of the separate edits, and the largest latent difference between them."""
    import skimage.data

    editor = Editor(pipeline(model, device), num_inference_steps=steps)
    photo = np.ascontiguousarray(skimage.data.chelsea())
    inv = editor.invert(photo, SOURCE, method="direct", progress=False, square=True)
    base = EditSpec(blend_words=(["cat"], ["dog"]))

    def sweep():
        return [r.latents for r in editor.sweep(inv, TARGET, spec=base, progress=False, **LISTS).results]

    def separate():
        return [
            editor.edit(
                inv, TARGET, spec=base.replace(cross_replace_steps=c, self_replace_steps=s), progress=False
            ).latents
            for c in LISTS["cross_replace_steps"]
            for s in LISTS["self_replace_steps"]
        ]

    runs = {"sweep": sweep, "separate": separate}
    outputs = {name: run() for name, run in runs.items()}  # warm-up, and the results to compare
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            sync(device)
            start = time.perf_counter()
            run()
            sync(device)
            times[name].append(time.perf_counter() - start)
    difference = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(outputs["sweep"], outputs["separate"]))
    best = {name: min(t) for name, t in times.items()}
    return {
        "model": model,
        "device": device,
        "steps": steps,
        "combinations": 6,
        "repeats": repeats,
        "sweep_seconds": round(best["sweep"], 3),
        "separate_seconds": round(best["separate"], 3),
        "speedup": round(best["separate"] / best["sweep"], 2),
        "max_relative_latent_difference": float(f"{difference:.2e}"),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (default), or a benchmarks.models name (sd15, ...)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a quiet baseline)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    row = measure(args.model, args.device, args.steps, args.repeats)
    print(
        f"{'model':<8} {'device':<8} {'steps':>5} {'sweep (6) s':>12} {'6 edits s':>10} {'speedup':>8} "
        f"{'max rel. diff':>14}"
    )
    print(
        f"{row['model']:<8} {row['device']:<8} {row['steps']:>5} {row['sweep_seconds']:>12.3f} "
        f"{row['separate_seconds']:>10.3f} {row['speedup']:>7.2f}x {row['max_relative_latent_difference']:>14.1e}"
    )
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.setdefault("runs", {})[f"{row['device']}/{row['model']}"] = row
    data["speedup"] = row["speedup"] if row["model"] == "tiny" and row["device"] == "cpu" else data.get("speedup")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
