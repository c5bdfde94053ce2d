"""Quick quality checks of a toy model: VAE reconstruction PSNR and prompt following of its samples."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline

from p2p_real.toyworld.captions import Caption, caption_of
from p2p_real.toyworld.scenes import random_scene, render
from p2p_real.toyworld.vision import background_colour, find_object, segment_objects
from p2p_real.toyworld.world import COLOURS, SHAPES


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (or batches) of one shape."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def background_psnr(image: np.ndarray, photo: np.ndarray, object_mask: np.ndarray, margin: int = 2) -> float:
    """PSNR (dB) of an edit against the photo outside the object's mask dilated by `margin` pixels."""
    import cv2

    size = 2 * margin + 1
    ring = cv2.dilate(object_mask.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
    diff = np.asarray(image, dtype=np.float64)[~ring] - np.asarray(photo, dtype=np.float64)[~ring]
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    return 99.0 if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def images_to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, H, W, 3) array or tensor -> float (B, 3, H, W) in [-1, 1] on the device."""
    tensor = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    tensor = tensor.to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def tensor_to_images(tensor: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    pixels = ((tensor.detach().float().clamp(-1, 1) + 1.0) * 127.5).round()
    return pixels.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def vae_reconstruction_psnr(vae: AutoencoderKL, images: np.ndarray, batch: int = 16) -> float:
    """Mean PSNR (dB) of images encoded (posterior mean) and decoded by the VAE."""
    device = next(vae.parameters()).device
    values = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        x = images_to_tensor(chunk, device)
        rec = tensor_to_images(vae.decode(vae.encode(x).latent_dist.mean).sample)
        values += [psnr(chunk[i], rec[i]) for i in range(len(chunk))]
    return float(np.mean(values))


def rendered_images(count: int, size: int, seed: int = 12345) -> np.ndarray:
    """count random toy-world images (uint8, (count, size, size, 3)) from a fixed seed."""
    rng = np.random.default_rng(seed)
    return np.stack([render(random_scene(rng), size).image for _ in range(count)])


def single_object_prompts(count: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(prompt, colour, shape) triples like ("a red circle", "red", "circle"), cycling all shapes."""
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    prompts = []
    for i in range(count):
        colour = colours[rng.integers(len(colours))]
        shape = SHAPES[i % len(SHAPES)]
        prompts.append((f"a {colour} {shape}", colour, shape))
    return prompts


def full_captions(count: int, n_objects: int, seed: int = 0) -> list[Caption]:
    """Captions naming every attribute ("a big red circle on a blue background"), shapes cycled, the rest random."""
    rng = np.random.default_rng([seed, n_objects])
    captions = []
    for i in range(count):
        shapes = [SHAPES[(i + k) % len(SHAPES)] for k in range(n_objects)]
        scene = random_scene(rng, n_objects=n_objects, shapes=shapes)
        captions.append(caption_of(scene))
    return captions


ATTRIBUTES = ("colour", "shape", "size", "background")


def caption_hits(image: np.ndarray, caption: Caption) -> dict[str, bool]:
    """Which parts of a caption an image shows, by the project's vision.

    Per object: "colour" (an object of that colour), "shape" and "size" (of that object, or of the largest
    object when no object has the colour), "object" (colour and shape together); "background" when the
    caption names one; "all" when everything named is there.
    """
    found = segment_objects(image)
    hits: dict[str, bool] = {}
    for k, phrase in enumerate(caption.objects):
        of_colour = find_object(found, phrase.colour)
        target = of_colour or (found[0] if found else None)
        suffix = "" if len(caption.objects) == 1 else str(k)
        hits["colour" + suffix] = of_colour is not None
        hits["shape" + suffix] = target is not None and target.shape == phrase.shape
        if phrase.size:
            hits["size" + suffix] = target is not None and target.size == phrase.size
        hits["object" + suffix] = find_object(found, phrase.colour, phrase.shape) is not None
    if caption.background:
        hits["background"] = background_colour(image) == caption.background
    hits["all"] = all(hits.values())
    return hits


@torch.no_grad()
def sample_captions(
    pipe: StableDiffusionPipeline,
    prompts: list[str],
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    seed: int = 0,
    batch: int = 8,
) -> list[np.ndarray]:
    """One uint8 sample per prompt, from noise drawn in order from one seeded generator."""
    generator = torch.Generator("cpu").manual_seed(seed)
    config = pipe.unet.config
    images: list[np.ndarray] = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        shape = (len(chunk), config.in_channels, config.sample_size, config.sample_size)
        latents = torch.randn(shape, generator=generator).to(pipe.device, pipe.unet.dtype)
        out = pipe(
            chunk,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            latents=latents,
            output_type="np",
        ).images
        images += [(np.clip(image, 0, 1) * 255).round().astype(np.uint8) for image in out]
    return images


def prompt_following(
    pipe: StableDiffusionPipeline,
    count: int = 16,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    seed: int = 0,
    batch: int = 8,
) -> tuple[float, list[np.ndarray], list[str]]:
    """Share of single-object prompts ("a red circle") whose sample shows an object of that colour and shape.

    Returns the share, the images (uint8) and the prompts.
    """
    prompts = single_object_prompts(count, seed)
    images = sample_captions(pipe, [p for p, _, _ in prompts], num_inference_steps, guidance_scale, seed, batch)
    hits = sum(
        find_object(segment_objects(image), colour, shape) is not None
        for (_, colour, shape), image in zip(prompts, images)
    )
    return hits / max(count, 1), images, [p for p, _, _ in prompts]


def attribute_following(
    pipe: StableDiffusionPipeline,
    count: int = 32,
    n_objects: int = 1,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    seed: int = 0,
    batch: int = 8,
) -> tuple[dict[str, float], list[np.ndarray], list[str]]:
    """Share of full captions of n_objects objects whose samples show each named part (see `caption_hits`)."""
    captions = full_captions(count, n_objects, seed)
    texts = [c.text for c in captions]
    images = sample_captions(pipe, texts, num_inference_steps, guidance_scale, seed, batch)
    totals: dict[str, int] = {}
    for caption, image in zip(captions, images):
        for key, hit in caption_hits(image, caption).items():
            totals[key] = totals.get(key, 0) + int(hit)
    return {key: value / max(count, 1) for key, value in totals.items()}, images, texts


def _encode(pipe: StableDiffusionPipeline, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, text embeddings) of the texts, padded to the tokenizer's length."""
    ids = pipe.tokenizer(
        texts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids.to(pipe.device)
    return ids, pipe.text_encoder(ids)[0]


@torch.no_grad()
def size_mixed_embeddings(pipe: StableDiffusionPipeline, captions: list[Caption]) -> dict[str, torch.Tensor]:
    """Text embeddings of one-object captions said "big" and said "small", and two mixes of them: "word", every
    token from the "small" caption but the size word from the "big" one, and "context", the other way round."""
    said = {
        size: [Caption((dataclasses.replace(c.objects[0], size=size),), c.background) for c in captions]
        for size in ("big", "small")
    }
    (ids_big, big), (ids_small, small) = (_encode(pipe, [c.text for c in said[size]]) for size in ("big", "small"))
    size_word = (ids_big != ids_small)[..., None]  # the one token where the two captions differ
    return {
        "big": big,
        "small": small,
        "word": torch.where(size_word, big, small),
        "context": torch.where(size_word, small, big),
    }


@torch.no_grad()
def size_word_effect(
    pipe: StableDiffusionPipeline,
    count: int = 8,
    num_inference_steps: int = 25,
    guidance_scale: float = 7.5,
    seed: int = 0,
) -> dict[str, float]:
    """Where a model reads an object's size: the mean area of the object sampled, from the same noise, from each
    of `size_mixed_embeddings`. A reweight of "big" scales that word's attention only, so it can change a size
    only if "word" comes out about as large as "big" (docs/toyworld.md, "Size by reweighting").

    Returns {"big", "small", "word", "context"}: mean areas in pixels (0 for a missing object).
    """
    captions = full_captions(count, n_objects=1, seed=seed)
    embeddings = size_mixed_embeddings(pipe, captions)
    negative = _encode(pipe, [""] * count)[1]
    config = pipe.unet.config
    shape = (count, config.in_channels, config.sample_size, config.sample_size)
    latents = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)).to(pipe.device, pipe.unet.dtype)
    areas: dict[str, float] = {}
    for name, embeds in embeddings.items():
        out = pipe(
            prompt_embeds=embeds,
            negative_prompt_embeds=negative,
            latents=latents.clone(),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            output_type="np",
        ).images
        found = []
        for caption, image in zip(captions, out):
            obj = find_object(
                segment_objects((np.clip(image, 0, 1) * 255).round().astype(np.uint8)), caption.objects[0].colour
            )
            found.append(0 if obj is None else obj.area)
        areas[name] = float(np.mean(found))
    return areas


def image_grid(images: list[np.ndarray], columns: int = 8) -> np.ndarray:
    """Tile equally sized uint8 images into one (rows filled left to right, blanks black)."""
    if not images:
        raise ValueError("no images to tile")
    h, w, c = images[0].shape
    rows = -(-len(images) // columns)
    grid = np.zeros((rows * h, columns * w, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = image
    return grid
