"""Procedural training batches: rendered scenes, tokenized captions and per-token attention targets."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import cv2
import numpy as np
import torch

from p2p_real.toyworld.captions import BACKGROUND, Caption, build_tokenizer, random_caption, token_tags
from p2p_real.toyworld.scenes import Scene, coverage, random_scene, render
from p2p_real.toyworld.world import SHAPE_SCALE, SIZE_RANGES, SIZES

MAX_OBJECTS = 2
BACKGROUND_TARGET = MAX_OBJECTS  # index of the background among the attention targets
FOOTPRINT_TARGET = MAX_OBJECTS + 1  # index of object 0's footprint (object k's is FOOTPRINT_TARGET + k)
NO_TARGET = -1


def batch_rng(seed: int, stage: int, index: int) -> np.random.Generator:
    """The random generator of one batch: batches are reproducible from (seed, stage, index) alone."""
    return np.random.default_rng([seed, stage, index])


def make_batch(
    seed: int,
    stage: int,
    index: int,
    batch_size: int,
    image_size: int,
    map_size: int = 0,
    crop: int | None = None,
    caption_dropout: float = 0.1,
    size_footprint: bool = False,
    size_flip: float = 0.0,
) -> dict[str, np.ndarray]:
    """One batch: "images" uint8 (B, H, W, 3); with map_size > 0 also "input_ids" (B, 77),
    "token_target" (B, 77: which target map each token should attend to, or -1) and
    "targets" float32 (B, 3, map_size**2: object 0, object 1 and background coverage, each summing to 1).

    `crop` cuts a random square of that side from each image (cheaper VAE training); captions are skipped then.
    With `size_footprint` the size words ("small", "big") attend to their object's footprint instead of the
    object itself: a disc at its centre as large as the biggest object of its shape (two more targets).
    With `size_flip` > 0 there is also "flip_ids" (B, 77): for that share of the captions that say a size, the
    caption with every size word swapped ("small" <-> "big"; the others repeat "input_ids"), and "size_tokens"
    (B, 77) bool, the size words' positions in those captions. The trainer takes the size words' embeddings
    from the true caption and every other token's from the flipped one, so the size can only be read from the
    size word itself, which is what a reweight of it acts on (docs/toyworld.md, "Size by reweighting").
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if crop is not None and not 8 <= crop <= image_size:
        raise ValueError(f"crop must be between 8 and the image size {image_size}, got {crop}")
    rng = batch_rng(seed, stage, index)
    images = []
    captions: list[Caption | None] = []
    count = MAX_OBJECTS + 1 + (MAX_OBJECTS if size_footprint else 0)
    targets = np.zeros((batch_size, count, max(map_size, 1) ** 2), dtype=np.float32)
    for b in range(batch_size):
        scene = random_scene(rng)
        rendered = render(scene, image_size)
        image = rendered.image
        if crop is not None:
            y, x = rng.integers(0, image_size - crop + 1, size=2)
            image = image[y : y + crop, x : x + crop]
        images.append(image)
        if map_size <= 0:
            continue
        captions.append(None if rng.uniform() < caption_dropout else random_caption(scene, rng))
        masks = [obj.mask for obj in rendered.objects] + [rendered.background_mask]
        slots = [*range(len(rendered.objects)), BACKGROUND_TARGET]
        for slot, mask in zip(slots, masks):
            small = cv2.resize(mask.astype(np.float32), (map_size, map_size), interpolation=cv2.INTER_AREA).ravel()
            targets[b, slot] = small / max(float(small.sum()), 1e-6)
        if size_footprint:
            for k, disc in enumerate(footprints(scene, map_size)):
                targets[b, FOOTPRINT_TARGET + k] = disc.ravel() / max(float(disc.sum()), 1e-6)
    out = {"images": np.stack(images)}
    if map_size > 0:
        tokenizer = build_tokenizer()
        texts = ["" if c is None else c.text for c in captions]
        ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
        out["input_ids"] = np.asarray(ids.input_ids, dtype=np.int64)
        token_target = np.full((batch_size, tokenizer.model_max_length), NO_TARGET, dtype=np.int64)
        size_words = np.zeros((batch_size, tokenizer.model_max_length), dtype=bool)
        for b, caption in enumerate(captions):
            if caption is None:
                continue
            tags = token_tags(caption, tokenizer.model_max_length)
            groups = np.asarray([group for _, group in tags])
            token_target[b, groups >= 0] = groups[groups >= 0]
            token_target[b, groups == BACKGROUND] = BACKGROUND_TARGET
            size_words[b] = [word in SIZES for word, _ in tags]
            if size_footprint:
                token_target[b, size_words[b]] = FOOTPRINT_TARGET + groups[size_words[b]]
        out["token_target"] = token_target
        out["targets"] = targets
        if size_flip > 0:
            flipped = [c if c is None or rng.uniform() >= size_flip else flip_sizes(c) for c in captions]
            ids = tokenizer(
                ["" if c is None else c.text for c in flipped],
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
            )
            out["flip_ids"] = np.asarray(ids.input_ids, dtype=np.int64)
            changed = np.asarray([flip is not caption for caption, flip in zip(captions, flipped)])
            out["size_tokens"] = size_words & changed[:, None]
    return out


def flip_sizes(caption: Caption) -> Caption:
    """The caption with each object's size word swapped ("small" <-> "big"); the caption itself if it says none."""
    if all(obj.size is None for obj in caption.objects):
        return caption
    swap = {"small": "big", "big": "small", None: None}
    objects = tuple(dataclasses.replace(o, size=swap[o.size]) for o in caption.objects)
    return dataclasses.replace(caption, objects=objects)


def footprints(scene: Scene, side: int) -> list[np.ndarray]:
    """Per object, a disc (side x side, float32 coverage) at its centre with the circumradius of the biggest
    object of its shape: where the object would reach at its largest."""
    return [
        coverage(
            "circle",
            (obj.center[0] * side, obj.center[1] * side),
            SIZE_RANGES["big"][1] * SHAPE_SCALE[obj.shape] * side,
            0.0,
            side,
        )
        for obj in scene.objects
    ]


class ProceduralBatches(torch.utils.data.IterableDataset):
    """Endless batches index start, start + 1, ... (split over DataLoader workers, which keep the order)."""

    def __init__(self, start: int, **batch_args: object) -> None:
        super().__init__()
        self.start = start
        self.batch_args = batch_args

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        index = self.start + worker
        while True:
            batch = make_batch(index=index, **self.batch_args)
            yield {key: torch.from_numpy(value) for key, value in batch.items()}
            index += workers


def batch_loader(
    start: int, workers: int, pin_memory: bool = False, **batch_args: object
) -> torch.utils.data.DataLoader:
    """A DataLoader over ProceduralBatches (each item is a whole batch; workers=0 renders in-process)."""
    return torch.utils.data.DataLoader(
        ProceduralBatches(start, **batch_args),
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
        worker_init_fn=_single_threaded,
    )


def _single_threaded(worker_id: int) -> None:
    """Data workers render with one thread each, so many of them share the cores without fighting."""
    cv2.setNumThreads(1)
