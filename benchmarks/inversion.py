"""Inversion methods on real photos (scikit-image's astronaut, chelsea, coffee): time, latent error,
PSNR/SSIM of the reconstruction and the VAE ceiling; plus a reference-style null-text loop side by side.

    python -m benchmarks.inversion                   # tiny model on CPU (sd15 architecture on CUDA)
    python -m benchmarks.inversion --model sd15      # random-weight SD 1.5 at 512px, fp16 on CUDA

The reference-style loop works like the original notebook: float32, model weights left trainable (so
every backward pass also computes their gradients), the early-stop test after the Adam step, and a
separate guided forward pass to advance. Prints a table and merges results/inversion.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.models import benchmark_pipeline
from inversion.ddim import ddim_step, guided_noise
from inversion.ddim_inversion import ddim_invert
from inversion.image import load_image
from inversion.methods import METHOD_NAMES
from inversion.metrics import latent_error
from inversion.prompts import encode_prompts
from inversion.vae import encode_image
from p2p_real import Editor
from p2p_real.loading import resolve_device

PHOTOS = {
    "astronaut": ("a photo of a woman in a white space suit", skimage.data.astronaut),
    "chelsea": ("a photo of a cat", skimage.data.chelsea),
    "coffee": ("a photo of a cup of coffee on a table", skimage.data.coffee),
}
RESULTS = Path(__file__).parent / "results" / "inversion.json"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reference_null_text(pipe, scheduler, trajectory, cond, uncond, guidance: float, inner: int = 10,
                        epsilon: float = 1e-5) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Null-text inversion the way the original notebook runs it (see the module docstring).

    Returns the per-step embeddings and the latent it reaches at the end (its own reconstruction of z0).
    """
    unet = pipe.unet
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
                latent = ddim_step(scheduler, guided_noise(unet, scheduler, latent, t, cond, phi.detach(), guidance),
                                   t, latent)
    finally:
        for p, flag in zip(unet.parameters(), flags):
            p.requires_grad_(flag)
    return embeddings, latent


def run_reference(editor: Editor, photo: np.ndarray, prompt: str, steps: int, guidance: float, device: str):
    """Seconds and latent error of the reference-style loop on a float32 copy of the model."""
    pipe = editor.pipe
    dtype = pipe.unet.dtype  # read before the cast: editor.dtype follows the UNet
    if dtype != torch.float32:  # the original runs in float32: time it on a float32 UNet
        pipe.unet.to(torch.float32)
        pipe.text_encoder.to(torch.float32)
    try:
        scheduler = editor.scheduler
        scheduler.set_timesteps(steps, device=device)
        factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        side = pipe.unet.config.sample_size * factor
        loaded = load_image(photo, model_pixels=side * side, multiple=max(8, factor))
        sync(device)
        start = time.perf_counter()
        z0 = encode_image(pipe.vae, loaded.pixels.to(device))
        cond, uncond = encode_prompts(pipe, [prompt]), encode_prompts(pipe, [""])
        trajectory = ddim_invert(pipe.unet, scheduler, z0, cond.float(), progress=False)
        _, reached = reference_null_text(pipe, scheduler, trajectory, cond.float(), uncond.float(), guidance)
        sync(device)
        seconds = time.perf_counter() - start
        return seconds, latent_error(reached, z0)
    finally:
        pipe.unet.to(dtype)
        pipe.text_encoder.to(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["auto", "tiny", "sd15"], default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=list(PHOTOS))
    parser.add_argument("--no-reference", action="store_true", help="skip the reference-style null-text loop")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    model = args.model if args.model != "auto" else ("sd15" if device.startswith("cuda") else "tiny")
    torch.manual_seed(0)
    editor = Editor(benchmark_pipeline(model, device), num_inference_steps=args.steps,
                    guidance_scale=args.guidance)
    dtype = editor.dtype
    rows: dict[str, dict[str, dict[str, float]]] = {}
    print(f"{'photo':<10}{'method':<17}{'seconds':>9}{'latent err':>12}{'PSNR':>8}{'SSIM':>8}{'VAE PSNR':>10}")
    for name in args.photos:
        prompt, load = PHOTOS[name]
        photo = load()
        rows[name] = {}
        for method in METHOD_NAMES:
            sync(device)
            start = time.perf_counter()
            inv = editor.invert(photo, prompt, method=method, progress=False)
            sync(device)
            seconds = time.perf_counter() - start
            rec = editor.reconstruct(inv, progress=False)
            if editor.dtype != dtype:
                raise RuntimeError(f"the model's dtype changed during the benchmark: {dtype} -> {editor.dtype}")
            rows[name][method] = {
                "seconds": seconds, "latent_error": rec.latent_error, "psnr": rec.psnr, "ssim": rec.ssim,
                "vae_ceiling_psnr": rec.vae_psnr, "vae_ceiling_ssim": rec.vae_ssim,
            }
            r = rows[name][method]
            print(f"{name:<10}{method:<17}{seconds:>9.2f}{r['latent_error']:>12.3e}{r['psnr']:>8.2f}"
                  f"{r['ssim']:>8.3f}{r['vae_ceiling_psnr']:>10.2f}", flush=True)
        if not args.no_reference:
            seconds, err = run_reference(editor, photo, prompt, args.steps, args.guidance, device)
            rows[name]["null-text-reference"] = {"seconds": seconds, "latent_error": err}
            print(f"{name:<10}{'null-text (ref)':<17}{seconds:>9.2f}{err:>12.3e}", flush=True)
    # time to invert + edit one 512px photo with null-text (the real-photo workflow)
    prompt, load = PHOTOS["chelsea"]
    sync(device)
    start = time.perf_counter()
    inv = editor.invert(load(), prompt, method="null-text", progress=False)
    editor.edit(inv, "a photo of a dog", blend_words=(["cat"], ["dog"]), progress=False)
    sync(device)
    invert_edit_seconds = time.perf_counter() - start

    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)"
    entry = {"device": gpu, "model": model, "steps": args.steps, "guidance": args.guidance,
             "dtype": str(dtype).replace("torch.", ""), "photos": rows,
             "invert_edit_seconds": invert_edit_seconds}
    if not args.no_reference:
        ours = [rows[p]["null-text"]["seconds"] for p in rows]
        ref = [rows[p]["null-text-reference"]["seconds"] for p in rows]
        entry["null_text_speedup"] = statistics.median(r / o for r, o in zip(ref, ours))
        entry["null_text_error_ratio"] = statistics.median(
            rows[p]["null-text"]["latent_error"] / rows[p]["null-text-reference"]["latent_error"] for p in rows
        )
        print(f"null-text speed-up over the reference-style loop: {entry['null_text_speedup']:.2f}x "
              f"(latent error ours/reference {entry['null_text_error_ratio']:.2f})")
    print(f"invert (null-text) + edit of one photo: {invert_edit_seconds:.1f} s on {gpu}")
    data = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if (r["device"], r["model"]) != (gpu, model)] + [entry]
    headline = max(data["runs"], key=lambda r: (r["model"] == "sd15", r["device"] != "cpu"))
    data.update({k: headline[k] for k in ("device", "model", "photos") if k in headline})
    if "null_text_speedup" in headline:
        data["null_text_speedup"] = headline["null_text_speedup"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
