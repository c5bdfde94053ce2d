"""Inversion methods on real photos (scikit-image's astronaut, chelsea, coffee): time, latent error,
PSNR/SSIM of the reconstruction and the VAE ceiling; null-text side by side with a reference-style loop;
the time of invert (null-text, null-text-fast) + edit of one photo.

    python -m benchmarks.inversion                   # tiny model on CPU (sd15 architecture on CUDA)
    python -m benchmarks.inversion --model sd15      # random-weight SD 1.5 at 512px, fp16 on CUDA
    python -m benchmarks.inversion --steps 10 --photos chelsea --no-methods --no-edit   # quick look

The side-by-side part runs every null-text variant on the same DDIM pivot in one process, in turns
(reference, ours, ...; the order rotates between repeats), and replays each variant's embeddings with the
editor's sampler to measure the reconstruction. The reference-style loop works like the original
notebook: float32, model weights left trainable (so every backward pass also computes their gradients),
the early-stop test after the Adam step, and a separate guided forward pass to advance. On a CPU the
speed-up is a ratio of process CPU seconds (other processes on the same cores inflate wall time, not CPU
time); on CUDA one of wall seconds after synchronising. Prints tables and merges results/inversion.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.models import benchmark_pipeline
from inversion.encoding.prompts import encode_prompts
from inversion.encoding.vae import decode_latents, encode_image
from inversion.loops.ddim import ddim_step, guided_noise
from inversion.loops.ddim_inversion import ddim_invert
from inversion.loops.graphed_unet import UNetCalls
from inversion.loops.null_text import FAST_MIN_IMPROVEMENT, null_text_optimize
from inversion.methods import METHOD_NAMES
from inversion.metrics import latent_error, psnr
from inversion.photos.image import load_for_model
from p2p_real import Editor
from p2p_real.core.sampling import sample
from p2p_real.models.loading import resolve_device

PHOTOS = {
    "astronaut": ("a photo of a woman in a white space suit", skimage.data.astronaut),
    "chelsea": ("a photo of a cat", skimage.data.chelsea),
    "coffee": ("a photo of a cup of coffee on a table", skimage.data.coffee),
}
RESULTS = Path(__file__).parent / "results" / "inversion.json"
REFERENCE = "reference"
OURS = "p2p-real"
FAST = "null-text-fast"
EDIT_METHODS = ("null-text", FAST)
PSNR_TOLERANCE = 0.5  # dB: "equal reconstruction" for the speed-up goal


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class Timing:
    """Wall and process CPU seconds of one timed call."""

    wall: float
    cpu: float


def timed(device: str, fn: Callable[..., object], *args: object, **kwargs: object) -> tuple[object, Timing]:
    """fn(*args, **kwargs) and its wall and CPU seconds (the device synchronised before and after)."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    sync(device)
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


@dataclass
class PhotoPivot:
    """One photo prepared once for every null-text variant: its working pixels, z0, embeddings, pivot."""

    pixels: torch.Tensor
    z0: torch.Tensor
    cond: torch.Tensor
    uncond: torch.Tensor
    trajectory: list[torch.Tensor]
    ddim: Timing


def prepare(editor: Editor, photo: np.ndarray, prompt: str, steps: int) -> PhotoPivot:
    """Encode the photo and invert it with DDIM on the editor's model (the pivot every variant follows)."""
    pipe, device = editor.pipe, str(editor.device)
    loaded = load_for_model(pipe, photo)
    z0 = encode_image(pipe.vae, loaded.pixels.to(device))
    cond, uncond = encode_prompts(pipe, [prompt]), encode_prompts(pipe, [""])
    editor.scheduler.set_timesteps(steps, device=device)
    trajectory, seconds = timed(device, ddim_invert, pipe.unet, editor.scheduler, z0, cond, progress=False)
    return PhotoPivot(loaded.pixels, z0, cond, uncond, trajectory, seconds)


def reference_null_text(
    unet, scheduler, trajectory, cond, uncond, guidance: float, inner: int = 10, epsilon: float = 1e-5
) -> list[torch.Tensor]:
    """Null-text inversion the way the original notebook runs it (see the module docstring): the embeddings."""
    flags = [p.requires_grad for p in unet.parameters()]
    unet.requires_grad_(True)  # as in the original: backward also fills the weights' .grad
    phi = uncond.detach().float().clone()
    latent = trajectory[-1].float()
    embeddings = []
    try:
        for i, t in enumerate(scheduler.timesteps):
            phi = phi.detach().requires_grad_(True)
            optimizer = torch.optim.Adam([phi], lr=1e-2 * (1.0 - i / 100.0))
            target = trajectory[len(trajectory) - i - 2].float()
            with torch.no_grad():
                out_cond = unet(latent, t, encoder_hidden_states=cond).sample
            for _ in range(inner):
                out_uncond = unet(latent, t, encoder_hidden_states=phi).sample
                guided = out_uncond + guidance * (out_cond - out_uncond)
                loss = F.mse_loss(ddim_step(scheduler, guided, t, latent), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if loss.item() < epsilon + i * 2e-5:
                    break
            unet.zero_grad(set_to_none=True)
            embeddings.append(phi.detach())
            with torch.no_grad():
                latent = ddim_step(
                    scheduler, guided_noise(unet, scheduler, latent, t, cond, phi.detach(), guidance), t, latent
                )
    finally:
        for p, flag in zip(unet.parameters(), flags):
            p.requires_grad_(flag)
    return embeddings


def run_reference(editor: Editor, pivot: PhotoPivot, guidance: float) -> list[torch.Tensor]:
    """The reference-style loop on a float32 UNet (cast back afterwards), from the shared pivot."""
    unet = editor.pipe.unet
    dtype = unet.dtype
    if dtype != torch.float32:
        unet.to(torch.float32)
    try:
        trajectory = [z.float() for z in pivot.trajectory]
        return reference_null_text(
            unet, editor.scheduler, trajectory, pivot.cond.float(), pivot.uncond.float(), guidance
        )
    finally:
        if dtype != torch.float32:
            unet.to(dtype)


def run_ours(editor: Editor, pivot: PhotoPivot, guidance: float, **options) -> list[torch.Tensor]:
    """p2p-real's null-text loop from the shared pivot, as `invert` runs it (CUDA graphs on a GPU)."""
    pipe = editor.pipe
    calls_options = {k: options.pop(k) for k in ("prefix_cache", "compile") if k in options}
    calls = UNetCalls(pipe.unet, editor.scheduler, pivot.z0, pivot.cond, **calls_options)
    return null_text_optimize(
        pipe.unet,
        editor.scheduler,
        pivot.trajectory,
        pivot.cond,
        pivot.uncond,
        guidance,
        progress=False,
        unet_calls=calls,
        **options,
    )


def variants(names: list[str]) -> dict[str, Callable[[Editor, PhotoPivot, float], list[torch.Tensor]]]:
    """The null-text variants to compare, by name: the reference, our defaults, "min-improvement-X%"."""
    known: dict[str, Callable[[Editor, PhotoPivot, float], list[torch.Tensor]]] = {
        REFERENCE: run_reference,
        OURS: run_ours,
        "no-prefix-cache": lambda e, p, g: run_ours(e, p, g, prefix_cache=False),
        "compiled": lambda e, p, g: run_ours(e, p, g, compile=True),  # its first run includes compiling
        FAST: lambda e, p, g: run_ours(e, p, g, min_improvement=FAST_MIN_IMPROVEMENT),
    }
    for name in names:
        match = re.fullmatch(r"min-improvement-([0-9.]+)%", name)
        if match and name not in known:
            fraction = float(match.group(1)) / 100
            known[name] = lambda e, p, g, f=fraction: run_ours(e, p, g, min_improvement=f)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(known)}")
    return {name: known[name] for name in [REFERENCE, *[n for n in names if n != REFERENCE]]}


@torch.no_grad()
def reconstruction(editor: Editor, pivot: PhotoPivot, phis: list[torch.Tensor], guidance: float) -> dict:
    """Replay per-step embeddings with the editor's sampler from z*_T: latent error and PSNR of the image."""
    dtype = editor.pipe.unet.dtype
    uncond = [phi.to(dtype) for phi in phis]
    latents = sample(
        editor.pipe.unet,
        editor.scheduler,
        pivot.trajectory[-1].to(dtype),
        pivot.cond.to(dtype),
        uncond,
        guidance,
        progress=False,
    )
    decoded = decode_latents(editor.pipe.vae, latents)
    return {"latent_error": latent_error(latents, pivot.z0), "psnr": psnr(decoded[0], pivot.pixels[0])}


def side_by_side(
    editor: Editor, pivot: PhotoPivot, runs: dict, guidance: float, repeats: int, device: str
) -> dict[str, dict]:
    """Every variant `repeats` times in turns (the order rotates); median seconds, the first run's seconds
    (what one photo costs where a variant pays once, e.g. compiling) and the reconstruction."""
    names = list(runs)
    times: dict[str, list[Timing]] = {n: [] for n in names}
    rows: dict[str, dict] = {}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            phis, timing = timed(device, runs[name], editor, pivot, guidance)
            times[name].append(timing)
            rows[name] = reconstruction(editor, pivot, phis, guidance)
    for name in names:
        rows[name]["seconds"] = statistics.median(t.wall for t in times[name])
        rows[name]["cpu_seconds"] = statistics.median(t.cpu for t in times[name])
        rows[name]["first_seconds"], rows[name]["first_cpu_seconds"] = times[name][0].wall, times[name][0].cpu
    return rows


def speedups(rows: dict[str, dict[str, dict]], key: str) -> dict[str, dict[str, float]]:
    """Per variant: the median over photos of reference time / variant time, and the worst PSNR gap."""
    summary = {}
    for name in next(iter(rows.values())):
        if name == REFERENCE:
            continue
        ratios = [rows[p][REFERENCE][key] / rows[p][name][key] for p in rows]
        gaps = [rows[p][name]["psnr"] - rows[p][REFERENCE]["psnr"] for p in rows]
        errors = [rows[p][name]["latent_error"] / rows[p][REFERENCE]["latent_error"] for p in rows]
        summary[name] = {
            "speedup": statistics.median(ratios),
            "speedups": ratios,
            "psnr_gap_db": max(gaps, key=abs),
            "equal_psnr": all(abs(g) <= PSNR_TOLERANCE for g in gaps),
            "latent_error_ratio": statistics.median(errors),
        }
    return summary


def method_table(editor: Editor, photos: list[str], device: str) -> dict[str, dict[str, dict]]:
    """Every inversion method through Editor.invert + reconstruct: seconds, latent error, PSNR/SSIM."""
    rows: dict[str, dict[str, dict]] = {}
    print(f"{'photo':<10}{'method':<17}{'seconds':>9}{'latent err':>12}{'PSNR':>8}{'SSIM':>8}{'VAE PSNR':>10}")
    for name in photos:
        prompt, load = PHOTOS[name]
        photo = load()
        rows[name] = {}
        for method in METHOD_NAMES:
            inv, timing = timed(device, editor.invert, photo, prompt, method=method, progress=False)
            rec = editor.reconstruct(inv, progress=False)
            r = rows[name][method] = {
                "seconds": timing.wall,
                "cpu_seconds": timing.cpu,
                "latent_error": rec.latent_error,
                "psnr": rec.psnr,
                "ssim": rec.ssim,
                "vae_ceiling_psnr": rec.vae_psnr,
                "vae_ceiling_ssim": rec.vae_ssim,
            }
            print(
                f"{name:<10}{method:<17}{timing.wall:>9.2f}{r['latent_error']:>12.3e}{r['psnr']:>8.2f}"
                f"{r['ssim']:>8.3f}{r['vae_ceiling_psnr']:>10.2f}",
                flush=True,
            )
    return rows


def null_text_table(editor: Editor, args: argparse.Namespace, device: str) -> dict[str, dict[str, dict]]:
    """The side-by-side null-text comparison on every photo; prints one line per variant."""
    runs = variants(args.variants)
    rows: dict[str, dict[str, dict]] = {}
    print(f"{'photo':<10}{'null-text':<22}{'seconds':>9}{'cpu s':>9}{'1st cpu s':>10}{'latent err':>12}{'PSNR':>8}")
    for name in args.photos:
        prompt, load = PHOTOS[name]
        pivot = prepare(editor, load(), prompt, args.steps)
        rows[name] = side_by_side(editor, pivot, runs, args.guidance, args.repeats, device)
        for variant, r in rows[name].items():
            print(
                f"{name:<10}{variant:<22}{r['seconds']:>9.2f}{r['cpu_seconds']:>9.2f}{r['first_cpu_seconds']:>10.2f}"
                f"{r['latent_error']:>12.3e}"
                f"{r['psnr']:>8.2f}",
                flush=True,
            )
    return rows


def invert_and_edit(editor: Editor, device: str, method: str) -> Timing:
    """Seconds to invert (the method, defaults) and edit one photo (chelsea, cat -> dog with local blend)."""
    prompt, load = PHOTOS["chelsea"]

    def run() -> None:
        inv = editor.invert(load(), prompt, method=method, progress=False)
        editor.edit(inv, "a photo of a dog", blend_words=(["cat"], ["dog"]), progress=False)

    return timed(device, run)[1]


def device_name(device: str) -> str:
    """The GPU's name, or the CPU with the cores this process may use."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"cpu ({len(os.sched_getaffinity(0))} of {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["auto", "tiny", "sd15"], default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=list(PHOTOS))
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[OURS, "no-prefix-cache", FAST, "min-improvement-1%"],
        help="null-text variants run side by side with the reference",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant per photo (median time)")
    parser.add_argument("--no-methods", action="store_true", help="skip the table of all methods")
    parser.add_argument("--no-reference", action="store_true", help="skip the side-by-side null-text table")
    parser.add_argument("--no-edit", action="store_true", help="skip the invert + edit timing")
    parser.add_argument("--note", default="", help="stored with the run (e.g. what else ran on the machine)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = str(resolve_device(args.device))
    model = args.model if args.model != "auto" else ("sd15" if device.startswith("cuda") else "tiny")
    torch.manual_seed(0)
    editor = Editor(benchmark_pipeline(model, device), num_inference_steps=args.steps, guidance_scale=args.guidance)
    dtype = editor.dtype
    entry: dict = {
        "device": device_name(device),
        "model": model,
        "steps": args.steps,
        "guidance": args.guidance,
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "timer": "process CPU seconds" if device == "cpu" else "wall seconds",
        "note": args.note,
    }
    if not args.no_methods:
        entry["photos"] = method_table(editor, args.photos, device)
    if not args.no_reference:
        rows = null_text_table(editor, args, device)
        entry["null_text"] = rows
        entry["null_text_summary"] = speedups(rows, "cpu_seconds" if device == "cpu" else "seconds")
        for name, s in entry["null_text_summary"].items():
            print(
                f"{name}: {s['speedup']:.2f}x the reference, PSNR gap {s['psnr_gap_db']:+.2f} dB, "
                f"latent error x{s['latent_error_ratio']:.2f}"
            )
    if not args.no_edit:
        entry["invert_edit"] = {}
        for method in EDIT_METHODS:
            timing = invert_and_edit(editor, device, method)
            entry["invert_edit"][method] = {"seconds": timing.wall, "cpu_seconds": timing.cpu}
            print(
                f"invert ({method}) + edit of one photo: {timing.wall:.1f} s ({timing.cpu:.1f} CPU s) "
                f"on {entry['device']}"
            )
        entry["invert_edit_seconds"] = entry["invert_edit"]["null-text"]["seconds"]
    if editor.dtype != dtype:
        raise RuntimeError(f"the model's dtype changed during the benchmark: {dtype} -> {editor.dtype}")
    save(args.json, entry)


def save(path: Path, entry: dict) -> None:
    """Merge one run into the results file: one entry per (device kind, model, steps), nothing else."""
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    key = (entry["device"].split(" (")[0], entry["model"], entry["steps"])
    data = {"runs": [r for r in runs if (r["device"].split(" (")[0], r["model"], r.get("steps")) != key] + [entry]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
