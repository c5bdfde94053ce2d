"""The two SDXL choices of docs/design.md, measured on the tiny SDXL pipeline (CPU, a few minutes):

1. which UNet level the attention store reads (Editor(attention_res=...)): latent/2 or latent/4, the two levels
   of SDXL's UNet with cross-attention. For each, over several seeds and two image sizes: how much of the
   image the local-blend mask covers, how stable it is from the first blended step to the last (IoU with the
   final mask), how peaked the word's map is (share of its mass in the top quarter of cells), and how well the
   two levels agree;
2. whether null-text inversion also optimises SDXL's pooled unconditional embedding, or only the token
   embeddings of both encoders: the reconstruction's latent error and PSNR on three photos, with DDIM's as
   the baseline.

    python -m benchmarks.sdxl_choices        # prints both tables, writes benchmarks/results/sdxl_choices.json
    python -m benchmarks.sdxl_choices --model stabilityai/stable-diffusion-xl-base-1.0 --sizes 1024 --steps 50
                                             # the same on trained weights (a GPU; what the defaults should rest on)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import numpy as np
import skimage.data
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import inversion.encoding.sdxl as sdxl
from p2p_real import Editor
from p2p_real.models.loading import load_pipeline
from p2p_real.testing import tiny_sdxl_pipeline

RESULTS = Path(__file__).parent / "results" / "sdxl_choices.json"
SOURCE, TARGET = "a photo of a cat on the wall", "a photo of a dog on the wall"
CAPTION = "a photo of a cat sitting on a table"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _recorded_masks(editor: Editor, seed: int, size: int, threshold: float) -> tuple:
    """A 'cat' -> 'dog' generation and every local-blend mask its loop made (the loop's own, not a recomputation),
    from the step callback's "blend_mask", then the one made after the last step if the blend began there."""
    made: list[torch.Tensor] = []

    def record(_editor, _step, _timestep, kw):
        if kw["blend_mask"] is not None:
            made.append(kw["blend_mask"])

    out = editor.generate(
        [SOURCE, TARGET],
        generator=seed,
        height=size,
        width=size,
        blend_words=(["cat"], ["dog"]),
        blend_threshold=threshold,
        output_type="latent",
        progress=False,
        callback_on_step_end=record,
    )
    last = out.info["blend_mask"]
    if last is not None and (not made or made[-1] is not last):
        made.append(last)
    return out, [mask[0, 0].bool().cpu().numpy() for mask in made]


def attention_levels(pipe, seeds: int, steps: int, sizes: tuple[int, ...], thresholds: tuple[float, ...]) -> list:
    """Local-blend masks of 'cat' -> 'dog' at latent/2 and latent/4, per size and threshold."""
    rows = []
    for size in sizes:
        for threshold in thresholds:
            finals: dict[float, list[np.ndarray]] = {}
            for res in (0.5, 0.25):
                editor = Editor(pipe, num_inference_steps=steps, attention_res=res)
                coverage, stability, peak, finals[res] = [], [], [], []
                for seed in range(seeds):
                    out, seen = _recorded_masks(editor, seed, size, threshold)
                    final = seen[-1]
                    finals[res].append(final)
                    coverage.append(float(final.mean()))
                    stability.append(statistics.mean(_iou(m, final) for m in seen))
                    word = out.attention.word("dog", row=1).ravel()
                    top = np.sort(word)[::-1][: max(1, word.size // 4)]
                    peak.append(float(top.sum() / word.sum()))
                h, w = out.attention.maps.shape[1:3]
                rows.append(
                    {
                        "size": size,
                        "threshold": threshold,
                        "attention_res": res,
                        "map": f"{h}x{w}",
                        "coverage": statistics.mean(coverage),
                        "stability_iou": statistics.mean(stability),
                        "top_quarter_mass": statistics.mean(peak),
                    }
                )
            agree = statistics.mean(_iou(a, b) for a, b in zip(finals[0.5], finals[0.25]))
            for row in rows[-2:]:
                row["iou_between_levels"] = agree
    return rows


def null_text_pooled(pipe, steps: int) -> list:
    """Reconstruction after null-text inversion with and without the pooled embedding optimised."""
    photos = {
        "chelsea": skimage.data.chelsea()[::2, ::2],
        "astronaut": skimage.data.astronaut()[::4, ::4],
        "coffee": skimage.data.coffee()[::4, ::4],
    }
    editor = Editor(pipe, num_inference_steps=steps)
    rows = []
    for name, photo in photos.items():
        photo = np.ascontiguousarray(photo)
        ddim = editor.reconstruct(editor.invert(photo, CAPTION, method="ddim", progress=False), progress=False)
        row = {"photo": name, "ddim_latent_error": ddim.latent_error, "ddim_psnr": ddim.psnr, "vae_psnr": ddim.vae_psnr}
        for pooled in (False, True):
            sdxl.OPTIMISE_POOLED = pooled
            try:
                rec = editor.reconstruct(
                    editor.invert(photo, CAPTION, method="null-text", progress=False), progress=False
                )
            finally:
                sdxl.OPTIMISE_POOLED = True
            key = "tokens_and_pooled" if pooled else "tokens_only"
            row[f"{key}_latent_error"], row[f"{key}_psnr"] = rec.latent_error, rec.psnr
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model", default="tiny", help="'tiny' (the test kit's SDXL) or what load_pipeline takes")
    parser.add_argument("--sizes", default="64,128", help="image sides, comma-separated")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.model == "tiny":
        torch.set_num_threads(1)
        pipe = tiny_sdxl_pipeline()
    else:
        pipe = load_pipeline(args.model)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    levels = attention_levels(pipe, args.seeds, args.steps, sizes, (0.3, 0.8))
    print(f"{'size':>5}{'thr':>5}{'level':>7}{'map':>7}{'coverage':>10}{'stability':>11}{'top 1/4':>9}{'agree':>7}")
    for r in levels:
        level = "lat/2" if r["attention_res"] == 0.5 else "lat/4"
        print(
            f"{r['size']:>5}{r['threshold']:>5}{level:>7}{r['map']:>7}{r['coverage']:>10.2f}"
            f"{r['stability_iou']:>11.2f}{r['top_quarter_mass']:>9.2f}{r['iou_between_levels']:>7.2f}"
        )
    nti = null_text_pooled(pipe, args.steps)
    print(
        f"{'photo':<10}{'DDIM err':>10}{'tokens err':>12}{'+pooled err':>13}{'DDIM dB':>9}{'tokens dB':>11}"
        f"{'+pooled dB':>12}"
    )
    for r in nti:
        print(
            f"{r['photo']:<10}{r['ddim_latent_error']:>10.3f}{r['tokens_only_latent_error']:>12.3f}"
            f"{r['tokens_and_pooled_latent_error']:>13.3f}{r['ddim_psnr']:>9.2f}{r['tokens_only_psnr']:>11.2f}"
            f"{r['tokens_and_pooled_psnr']:>12.2f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    model = "tiny-sdxl (random weights)" if args.model == "tiny" else args.model
    args.json.write_text(
        json.dumps(
            {
                "model": model,
                "steps": args.steps,
                "seeds": args.seeds,
                "attention_levels": levels,
                "null_text_pooled": nti,
                "torch": torch.__version__,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
