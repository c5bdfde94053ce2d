"""Edit quality on the toy world, measured against the renderer's truth with simple vision.

    python -m benchmarks.toyworld                 # the shipped model (p2p_real/toyworld/model)
    python -m benchmarks.toyworld --model DIR --scenes 4 --steps 25   # quicker, another model

Figures (written to results/toyworld.json):
- prompt_following: share of "a <colour> <shape>" samples showing that object;
  prompt_following_attributes: per attribute (colour, shape, size, background) of full one-object captions
  ("a big red circle on a blue background"); prompt_following_two_objects: two-object captions with every
  part found (two_object_parts has each part);
- layout_iou_p2p / layout_iou_baseline: colour and shape swaps of generated scenes, P2P against the
  target prompt alone from the same seed: IoU of the edited object's mask with where a layout-keeping edit
  draws it, the source object's mask for a colour swap and the new shape at the source object's centre, size
  and rotation for a shape swap (vision.reshaped_mask; two shapes of one size overlap by only 0.57-0.77, so the
  source mask would mark a perfect shape swap down); layout_iou_p2p_raw / layout_iou_baseline_raw compare with
  the source mask for both kinds;
- blend_mask_iou: the local-blend mask (latent, upsampled) against the region the edit changes, the true
  object of rendered, inverted scenes united with the edited object that vision finds (the region check_edit
  leaves out of the background: a grown or reshaped object reaches past the old outline, and a mask that
  stops there clips the edit), with the toy model's latent/2 maps and the toy edits' blend settings (per kind
  in blend_mask_iou_per_kind; blend_mask_iou_source: against the true object alone;
  blend_mask_iou_latent4: the colour swaps with the default latent/4 maps);
  attention_mask_iou_unpooled: the source word's map thresholded at 0.3 of its peak, not pooled;
  background_psnr: PSNR of the edits outside the objects involved;
- size_word_effect: mean object area from "big" and "small" captions and from text embeddings mixed between
  them (quality.size_word_effect); size_word_share is how much of the big-small difference the size word
  alone carries, (word - small) / (big - small): a reweight of "big" can only grow an object if it is high;
- recon_gap_db: VAE-ceiling PSNR minus reconstruction PSNR of held-out rendered scenes, per method;
- edit_success (and edit_success_per_kind): the five kinds of p2p_real.toyworld.edits on inversions of
  held-out scenes made with the demo's method (direct inversion), checked by vision as `check_edit` says
  (object found with the asked colour/shape where the source object was, background kept >= 30 dB, and so
  on); failed_edits lists why. edit_success_by_method has the same edits from each of EDIT_METHODS (the
  blend-mask and background figures come from the demo's method).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inversion.methods import METHOD_NAMES
from p2p_real import Editor, load_pipeline
from p2p_real.toyworld.captions import scene_caption
from p2p_real.toyworld.demo import DEMO_METHOD
from p2p_real.toyworld.edits import KINDS, check_edit, make_edit
from p2p_real.toyworld.model import ATTENTION_RES, default_model_dir
from p2p_real.toyworld.quality import attribute_following, prompt_following, size_word_effect
from p2p_real.toyworld.scenes import random_scene, render
from p2p_real.toyworld.vision import find_object, mask_iou, reshaped_mask, segment_objects
from p2p_real.toyworld.world import COLOURS, SHAPES

RESULTS = Path(__file__).parent / "results" / "toyworld.json"
HELD_OUT_SEED = 31_337  # scenes drawn from a generator the training streams never use
METHODS = METHOD_NAMES  # every way to invert a photo: reconstruction and the five edits from each
EDIT_METHODS = (DEMO_METHOD, *(m for m in METHOD_NAMES if m != DEMO_METHOD))  # the first gives edit_success


def swap_of(colour: str, shape: str, rng: np.random.Generator, kind: str, avoid: set[str]) -> tuple[str, str]:
    """A new colour (kind "colour") or shape (kind "shape") for an object."""
    if kind == "colour":
        return str(rng.choice([c for c in COLOURS if c != colour and c not in avoid])), shape
    return colour, str(rng.choice([s for s in SHAPES if s != shape]))


def to_uint8(image) -> np.ndarray:
    return np.asarray(image, dtype=np.uint8) if not isinstance(image, np.ndarray) else image


def object_mask(image: np.ndarray, colour: str, shape: str | None = None) -> np.ndarray | None:
    obj = find_object(segment_objects(image), colour, shape)
    return None if obj is None else obj.mask


def layout_preservation(editor: Editor, n: int, steps: int, rng: np.random.Generator) -> dict[str, float]:
    """Generated one-object scenes, edited by a colour or shape swap with P2P and without."""
    p2p, baseline, p2p_raw, baseline_raw = [], [], [], []
    latent_side = editor.pipe.unet.config.sample_size
    for i in range(n):
        scene = random_scene(rng, n_objects=1, sizes=["big"])
        obj = scene.objects[0]
        kind = "colour" if i % 2 == 0 else "shape"
        colour, shape = swap_of(obj.colour, obj.shape, rng, kind, {scene.background})
        source = scene_caption(scene)
        target = source.replace(f"{obj.colour} {obj.shape}", f"{colour} {shape}")
        z = torch.randn(1, 4, latent_side, latent_side, generator=torch.Generator().manual_seed(1000 + i))
        res = editor.generate([source, target], latents=z, num_inference_steps=steps, output_type="np", progress=False)
        alone = editor.generate([target], latents=z, num_inference_steps=steps, output_type="np", progress=False)
        images = [(np.clip(x, 0, 1) * 255).round().astype(np.uint8) for x in (*res.images, alone.images[0])]
        src_mask = object_mask(images[0], obj.colour, obj.shape)
        if src_mask is None:  # the model did not draw the source object: nothing to preserve
            continue
        kept = src_mask if kind == "colour" else reshaped_mask(src_mask, obj.shape, shape)
        for image, bucket, raw in ((images[1], p2p, p2p_raw), (images[2], baseline, baseline_raw)):
            edit_mask = object_mask(image, colour, shape if kind == "shape" else None)
            bucket.append(0.0 if edit_mask is None else mask_iou(kept, edit_mask))
            raw.append(0.0 if edit_mask is None else mask_iou(src_mask, edit_mask))
    figures = {
        "layout_iou_p2p": p2p,
        "layout_iou_baseline": baseline,
        "layout_iou_p2p_raw": p2p_raw,
        "layout_iou_baseline_raw": baseline_raw,
    }
    return {**{k: statistics.mean(v) if v else float("nan") for k, v in figures.items()}, "layout_pairs": len(p2p)}


def real_image_path(editor: Editor, n: int, steps: int, methods: tuple[str, ...]) -> dict[str, object]:
    """Held-out rendered scenes: reconstruction per method, then the five edit kinds from each EDIT_METHODS.

    n scenes of one big object get every kind; n // 3 scenes of two objects (the first one small) get the
    three swaps. The blend mask is compared with the true object on the colour, shape and size edits.
    """
    rng = np.random.default_rng(HELD_OUT_SEED)
    side = editor.default_size[0]
    gaps: dict[str, list[float]] = {m: [] for m in methods}
    seconds: dict[str, float] = dict.fromkeys(methods, 0.0)
    inversions: dict[str, int] = dict.fromkeys(methods, 0)
    mask_ious: dict[str, list[float]] = {"colour": [], "shape": [], "size": []}
    source_ious: dict[str, list[float]] = {"colour": [], "shape": [], "size": []}
    mask_ious_coarse, attention_ious, background = [], [], []
    success: dict[str, dict[str, list[bool]]] = {m: {kind: [] for kind in KINDS} for m in EDIT_METHODS}
    failures: dict[str, list[str]] = {m: [] for m in EDIT_METHODS}
    scenes = [random_scene(rng, n_objects=1, sizes=["big"]) for _ in range(n)]
    scenes += [random_scene(rng, n_objects=2, sizes=["small", "big"]) for _ in range(max(n // 3, 1))]
    for i, scene in enumerate(scenes):
        rendered = render(scene, side)
        invs = {}
        for method in methods if i < 4 else EDIT_METHODS:
            start = time.perf_counter()
            current = editor.invert(
                rendered.image, rendered.caption, method=method, num_inference_steps=steps, progress=False
            )
            seconds[method] += time.perf_counter() - start
            inversions[method] += 1
            if i < 4:
                rec = editor.reconstruct(current, progress=False)
                gaps[method].append(rec.vae_psnr - rec.psnr)
            if method in EDIT_METHODS:
                invs[method] = current
        kinds = KINDS if len(scene.objects) == 1 else ("colour", "shape", "background")
        truth = rendered.objects[0].mask
        for kind in kinds:
            edit = make_edit(kind, rendered, rng)
            made = {}
            for method in EDIT_METHODS:
                res = editor.edit(invs[method], edit.target, progress=False, **edit.options)
                edited = to_uint8(res.images[1])
                check = check_edit(edit, rendered, edited)
                success[method][kind].append(check.success)
                if not check.success:
                    failures[method].append(f"{rendered.caption} -> {edit.label}: {check.detail}")
                made[method] = res, edited, check
            # the masks and the background are measured on the demo's edits
            inv, (res, edited, check) = invs[DEMO_METHOD], made[DEMO_METHOD]
            if kind == "background":
                continue
            background.append(check.background_db)
            if kind == "add":
                continue
            mask = latent_mask(res, edited.shape[:2])
            found = find_object(segment_objects(edited), edit.colour, edit.shape)
            mask_ious[kind].append(mask_iou(mask, truth if found is None else truth | found.mask))
            source_ious[kind].append(mask_iou(mask, truth))
            word = torch.from_numpy(res.attention.word(rendered.objects[0].shape, row=0))[None, None]
            word = F.interpolate(word, size=edited.shape[:2], mode="nearest")[0, 0].numpy()
            attention_ious.append(mask_iou(word > 0.3 * word.max(), truth))
            if kind == "colour":  # the same edit with the default latent/4 maps, for comparison
                coarse = Editor(editor.pipe, num_inference_steps=steps, attention_res=0.25)
                res = coarse.edit(inv, edit.target, progress=False, **edit.options)
                mask_ious_coarse.append(mask_iou(latent_mask(res, edited.shape[:2]), truth))
    every = {m: [hit for hits in per_kind.values() for hit in hits] for m, per_kind in success.items()}
    return {
        "recon_gap_db": {m: statistics.mean(v) for m, v in gaps.items()},
        "invert_seconds": {m: s / inversions[m] for m, s in seconds.items()},
        "blend_mask_iou": statistics.mean(iou for ious in mask_ious.values() for iou in ious),
        "blend_mask_iou_per_kind": {kind: statistics.mean(ious) for kind, ious in mask_ious.items()},
        "blend_mask_iou_source": statistics.mean(iou for ious in source_ious.values() for iou in ious),
        "blend_mask_iou_source_per_kind": {kind: statistics.mean(ious) for kind, ious in source_ious.items()},
        "blend_mask_iou_latent4": statistics.mean(mask_ious_coarse),
        "attention_mask_iou_unpooled": statistics.mean(attention_ious),
        "background_psnr": statistics.mean(background),
        "edit_method": DEMO_METHOD,
        "edit_success": float(np.mean(every[DEMO_METHOD])),
        "edit_success_per_kind": {kind: float(np.mean(hits)) for kind, hits in success[DEMO_METHOD].items()},
        "edits": len(every[DEMO_METHOD]),
        "failed_edits": failures[DEMO_METHOD],
        "edit_success_by_method": {
            m: {"all": float(np.mean(every[m])), **{kind: float(np.mean(hits)) for kind, hits in success[m].items()}}
            for m in EDIT_METHODS
        },
        "failed_edits_by_method": failures,
    }


def print_edit_table(real: dict) -> None:
    """Edit success per inversion method and kind, with the reconstruction gap, as a markdown table."""
    print(f"\n| method | all | {' | '.join(KINDS)} | recon gap (dB) | invert (s) |")
    print("|" + " --- |" * (len(KINDS) + 4))
    for method, figures in real["edit_success_by_method"].items():
        cells = " | ".join(f"{figures[kind]:.2f}" for kind in ("all", *KINDS))
        print(f"| {method} | {cells} | {real['recon_gap_db'][method]:.2f} | {real['invert_seconds'][method]:.1f} |")


def latent_mask(res, size: tuple[int, int]) -> np.ndarray:
    """The edit's final local-blend mask (latent resolution) upsampled to the image, as a boolean array."""
    latent = res.info["blend_mask"][0:1].float()
    return F.interpolate(latent, size=size, mode="nearest")[0, 0].numpy() > 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="diffusers folder (default: the shipped toy model)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=40, help="single-object prompts for prompt following")
    parser.add_argument("--layouts", type=int, default=16, help="generated scenes for layout preservation")
    parser.add_argument("--scenes", type=int, default=6, help="one-object held-out scenes (x5 edits; +1/3 with two)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument(
        "--only-edits",
        action="store_true",
        help="measure only the held-out scenes' reconstruction and edits per method, and update "
        "those figures in the JSON (the others are kept)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    model = args.model or str(default_model_dir())
    editor = Editor(load_pipeline(model, device="cpu"), num_inference_steps=args.steps, attention_res=ATTENTION_RES)
    start = time.perf_counter()
    if args.only_edits:
        real = real_image_path(editor, args.scenes, args.steps, METHODS)
        results = {
            **json.loads(args.json.read_text()),
            **real,
            "recon_gap_db_null_text": real["recon_gap_db"].get("null-text"),
            "edits_seconds": round(time.perf_counter() - start, 1),
        }
        print_edit_table(real)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        return
    following, _, _ = prompt_following(editor.pipe, count=args.prompts, num_inference_steps=args.steps)
    attributes, _, _ = attribute_following(editor.pipe, count=args.prompts, n_objects=1, num_inference_steps=args.steps)
    two, _, _ = attribute_following(editor.pipe, count=args.prompts, n_objects=2, num_inference_steps=args.steps)
    layout = layout_preservation(editor, args.layouts, args.steps, np.random.default_rng(7))
    size = size_word_effect(editor.pipe)
    size_share = (size["word"] - size["small"]) / max(size["big"] - size["small"], 1e-6)
    real = real_image_path(editor, args.scenes, args.steps, METHODS)
    results = {
        "model": "shipped toy model" if args.model is None else args.model,
        "steps": args.steps,
        "prompt_following": following,
        "prompt_following_attributes": {k: attributes[k] for k in ("colour", "shape", "size", "background", "all")},
        "prompt_following_two_objects": two["all"],
        "two_object_parts": two,
        **layout,
        "size_word_effect": size,
        "size_word_share": size_share,
        **real,
        "recon_gap_db_null_text": real["recon_gap_db"].get("null-text"),
        "seconds": round(time.perf_counter() - start, 1),
        "device": f"cpu ({os.cpu_count()} cores)",
    }
    rows = [
        ("prompt following", following, ">= 0.90"),
        *((f"  {k}, full captions", attributes[k], ">= 0.90") for k in ("colour", "shape", "size", "background")),
        ("  every attribute at once", attributes["all"], ""),
        ("two-object captions, all parts", two["all"], ">= 0.70"),
        ("layout IoU, P2P", layout["layout_iou_p2p"], ">= 0.80"),
        ("layout IoU, target prompt alone", layout["layout_iou_baseline"], "lower"),
        ("  against the source mask, P2P", layout["layout_iou_p2p_raw"], ""),
        ("  against the source mask, alone", layout["layout_iou_baseline_raw"], ""),
        ("size carried by the size word alone", size_share, ""),
        (f"local-blend mask IoU (latent*{ATTENTION_RES:g} maps)", real["blend_mask_iou"], ">= 0.60"),
        *((f"  {kind}", iou, "") for kind, iou in real["blend_mask_iou_per_kind"].items()),
        ("  against the source object alone", real["blend_mask_iou_source"], ""),
        ("  with latent/4 maps (colour swaps)", real["blend_mask_iou_latent4"], ""),
        ("  word map, no 3x3 max-pool", real["attention_mask_iou_unpooled"], ""),
        ("background PSNR (dB)", real["background_psnr"], ">= 30"),
        *((f"recon gap {m} (dB)", g, "< 1 (null-text)") for m, g in real["recon_gap_db"].items()),
        *(
            (
                f"edit success, {m} inversion" + (" (demo)" if m == DEMO_METHOD else ""),
                v["all"],
                ">= 0.80" if m == DEMO_METHOD else "",
            )
            for m, v in real["edit_success_by_method"].items()
        ),
        *((f"  {kind} ({DEMO_METHOD})", v, ">= 0.80") for kind, v in real["edit_success_per_kind"].items()),
    ]
    print(f"{'figure':<36}{'value':>10}  goal")
    for name, value, goal in rows:
        print(f"{name:<36}{value:>10.3f}  {goal}")
    print_edit_table(real)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
