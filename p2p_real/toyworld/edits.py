"""The five edit kinds of the toy world, as P2P edits of a rendered scene, and their check by vision.

One definition serves the demo, the benchmark and the tests on the shipped model:
- "colour": swap the first object's colour word ("red" -> "blue"), local blend on the two colour words;
- "shape": swap its shape word ("circle" -> "star"), local blend on the two shape words minus the other
  objects' colour words;
- "background": swap the background's colour word, local blend on the two background words minus the
  objects' colour and shape words (the background's map, grown by the blend's max-pool, reaches into them);
- "add": refine, adding "and a small <colour> <shape>" to a one-object caption, blend on the new shape minus
  the first object's words (the new shape word also attends to the object already there);
- "size": reweight the first object's size word (attention on "big" x `SIZE_WEIGHT`), blend on its shape grown by
  one map cell (a grown object reaches past its old outline).
`check_edit` says whether the edited image shows what the edit asked for, where it asked for it, and
that the rest of the photo is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from p2p_real.toyworld.captions import Caption, ObjectPhrase, caption_of
from p2p_real.toyworld.quality import background_psnr
from p2p_real.toyworld.scenes import RenderedScene
from p2p_real.toyworld.vision import DetectedObject, background_colour, find_object, mask_iou, segment_objects
from p2p_real.toyworld.world import COLOURS, SHAPES

KINDS: tuple[str, ...] = ("colour", "shape", "background", "add", "size")
SIZE_WEIGHT = 10.0  # attention on the size word, times this, for the "size" edit
BACKGROUND_DB = 30.0  # PSNR outside the edited object that counts as "background kept"

# The toy model's word maps are sharp (trained with an attention loss) and follow the object's outline; the
# blend's 3x3 max-pool would grow a mask by a whole 16x16 map cell on every side. For an edit of the object
# where it is (a swap, the size reweight) the mask is the words' maps without the pool, down to a tenth of
# their peak, which still leaves a new outline room (docs/toyworld.md, "Masks"). A grown object needs more
# room: the size reweight grows its mask by one cell. A new background keeps the default's; an added object,
# whose place only its own word's map tells, grows that map by two cells.
SHARP_BLEND: dict[str, Any] = {"blend_pool": 0, "blend_threshold": 0.1}

# P2P settings per kind: a colour or shape swap may not keep the source's self-attention as long as a
# background swap, or the old colour and outline come back; an added object needs the layout freer still. A
# grown object needs no self-attention from the source and the source's cross-attention for most of the steps,
# so that the reweighted size word acts on the object's own maps (docs/toyworld.md, "The five edits").
OPTIONS: dict[str, dict[str, Any]] = {
    "colour": {"self_replace_steps": 0.4, **SHARP_BLEND},
    "shape": {"self_replace_steps": 0.2, "cross_replace_steps": 0.4, **SHARP_BLEND},
    "background": {},
    "add": {"self_replace_steps": 0.1, "cross_replace_steps": 0.1, "blend_pool": 2},
    "size": {"self_replace_steps": 0.0, "cross_replace_steps": 0.8, **SHARP_BLEND, "blend_pool": 1},
}


@dataclass(frozen=True)
class ToyEdit:
    """One edit of a rendered scene: the caption change, the Editor.edit options and what to look for."""

    kind: str
    label: str
    source: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)
    colour: str = ""  # the edited (or added) object's colour and shape after the edit
    shape: str = ""
    background: str = ""  # the background colour after the edit


Rng = np.random.Generator | None  # where new words are drawn from (None: the first that fits)


def _pick(options: list[str], rng: Rng, prefer: str | None) -> str:
    if prefer is not None and prefer in options:
        return prefer
    if rng is None:
        return options[0]
    return options[int(rng.integers(len(options)))]


def make_edit(
    kind: str, rendered: RenderedScene, rng: np.random.Generator | None = None, prefer: str | None = None
) -> ToyEdit:
    """The edit of one kind for a scene (its first object), with a new word drawn from `rng` or `prefer`."""
    if kind not in KINDS:
        raise ValueError(f"edit kind {kind!r} is not one of {KINDS}")
    scene = rendered.scene
    caption = caption_of(scene)
    used = {o.colour for o in scene.objects} | {scene.background}
    return _MAKERS[kind](caption, scene.background, used, dict(OPTIONS[kind]), rng, prefer)


def _colour_edit(
    caption: Caption, background: str, used: set[str], options: dict[str, Any], rng: Rng, prefer: str | None
) -> ToyEdit:
    """Swap the first object's colour word; blend on the two colour words."""
    first = caption.objects[0]
    colour = _pick([c for c in COLOURS if c not in used], rng, prefer)
    target = _replace_object(caption, ObjectPhrase(colour, first.shape, first.size))
    options["blend_words"] = ([first.colour], [colour])
    label = f"colour: {first.colour} -> {colour}"
    return ToyEdit("colour", label, caption.text, target.text, options, colour, first.shape, background)


def _shape_edit(
    caption: Caption, background: str, used: set[str], options: dict[str, Any], rng: Rng, prefer: str | None
) -> ToyEdit:
    """Swap the first object's shape word; blend on the two shape words minus the other objects' colour words."""
    first = caption.objects[0]
    shape = _pick([s for s in SHAPES if s != first.shape], rng, prefer)
    target = _replace_object(caption, ObjectPhrase(first.colour, shape, first.size))
    # the shape word may name another object too ("a small red square and a big blue square") and attends to
    # it: subtract the other objects' colour words, which no two objects share
    others = [o.colour for o in caption.objects[1:]]
    if others:
        options["subtract_words"] = (others, others)
    options["blend_words"] = ([first.shape], [shape])
    label = f"shape: {first.shape} -> {shape}"
    return ToyEdit("shape", label, caption.text, target.text, options, first.colour, shape, background)


def _background_edit(
    caption: Caption, background: str, used: set[str], options: dict[str, Any], rng: Rng, prefer: str | None
) -> ToyEdit:
    """Swap the background's colour word; blend on the two background words minus the objects' words."""
    first = caption.objects[0]
    new = _pick([c for c in COLOURS if c not in used], rng, prefer)
    target = Caption(caption.objects, new)
    objects = _object_words(caption.objects)
    options.update(blend_words=([background], [new]), subtract_words=(objects, objects))
    label = f"background: {background} -> {new}"
    return ToyEdit("background", label, caption.text, target.text, options, first.colour, first.shape, new)


def _add_edit(
    caption: Caption, background: str, used: set[str], options: dict[str, Any], rng: Rng, prefer: str | None
) -> ToyEdit:
    """Refine a one-object caption by "and a small <colour> <shape>"; blend on the new shape minus the old words."""
    if len(caption.objects) != 1:
        raise ValueError("the 'add' edit needs a scene of one object")
    first = caption.objects[0]
    colour = _pick([c for c in COLOURS if c not in used], rng, prefer)
    shape = _pick([s for s in SHAPES if s != first.shape], rng, None)
    target = Caption((*caption.objects, ObjectPhrase(colour, shape, "small")), background)
    kept = _object_words(caption.objects)
    options.update(edit="refine", blend_words=([], [shape]), subtract_words=(kept, kept))
    label = f"add a small {colour} {shape}"
    return ToyEdit("add", label, caption.text, target.text, options, colour, shape, background)


def _size_edit(
    caption: Caption, background: str, used: set[str], options: dict[str, Any], rng: Rng, prefer: str | None
) -> ToyEdit:
    """Reweight the first object's word 'big' by SIZE_WEIGHT; blend on its shape word."""
    first = caption.objects[0]
    if first.size != "big":
        raise ValueError("the 'size' edit reweights the word 'big': the first object must be big")
    options.update(equalizer={"big": SIZE_WEIGHT}, blend_words=([first.shape], [first.shape]))
    label = f"size: 'big' x{SIZE_WEIGHT:g}"
    return ToyEdit("size", label, caption.text, caption.text, options, first.colour, first.shape, background)


_MAKERS: dict[str, Callable[..., ToyEdit]] = {  # make_edit's kinds
    "colour": _colour_edit,
    "shape": _shape_edit,
    "background": _background_edit,
    "add": _add_edit,
    "size": _size_edit,
}


def _object_words(objects: tuple[ObjectPhrase, ...]) -> list[str]:
    """The colour and shape words of the objects, each once."""
    return list(dict.fromkeys(word for o in objects for word in (o.colour, o.shape)))


def _replace_object(caption: Caption, phrase: ObjectPhrase) -> Caption:
    return Caption((phrase, *caption.objects[1:]), caption.background)


@dataclass
class EditCheck:
    """What vision found in an edited image."""

    success: bool
    found: bool  # the asked object (or background) is there
    in_place: bool  # ... where the edited object was (or, for "add", away from it)
    background_db: float  # PSNR of the edit against the photo outside the objects involved
    detail: str = ""

    def __post_init__(self) -> None:
        self.success, self.found, self.in_place = bool(self.success), bool(self.found), bool(self.in_place)
        self.background_db = float(self.background_db)


def _centre(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def _near(obj: DetectedObject, truth: np.ndarray) -> bool:
    """The detected object's centre lies within half the true object's equivalent radius of its centre."""
    radius = math.sqrt(truth.sum() / math.pi)
    return math.dist(_centre(obj.mask), _centre(truth)) <= max(0.5 * radius, 2.0)


def check_edit(edit: ToyEdit, rendered: RenderedScene, image: np.ndarray | Any) -> EditCheck:
    """Whether an edited image (uint8 RGB, the photo's size) shows the edit: see the module docstring."""
    image = np.asarray(image, dtype=np.uint8)
    truth = rendered.objects[0].mask
    found = segment_objects(image)
    obj = find_object(found, edit.colour, edit.shape)
    if edit.kind == "background":
        kept = obj is not None and mask_iou(obj.mask, truth) >= 0.5
        right = background_colour(image) == edit.background
        return EditCheck(
            kept and right, right, kept, float("nan"), f"background {background_colour(image)}, object kept {kept}"
        )
    if edit.kind == "add":
        first = rendered.objects[0]
        original = find_object(found, first.colour, first.shape)
        kept = original is not None and mask_iou(original.mask, truth) >= 0.5
        apart = obj is not None and mask_iou(obj.mask, truth) < 0.2
        changed = truth | (obj.mask if obj is not None else False)
        db = background_psnr(image, rendered.image, changed)
        return EditCheck(
            kept and apart and db >= BACKGROUND_DB,
            obj is not None,
            apart and kept,
            db,
            f"new object {'found' if obj is not None else 'missing'}, original kept {kept}",
        )
    if obj is None:
        return EditCheck(
            False,
            False,
            False,
            background_psnr(image, rendered.image, truth),
            f"no {edit.colour} {edit.shape}; found {[(o.colour, o.shape) for o in found]}",
        )
    changed = truth | obj.mask
    db = background_psnr(image, rendered.image, changed)
    if edit.kind == "colour":
        in_place = mask_iou(obj.mask, truth) >= 0.5
    elif edit.kind == "shape":
        in_place = _near(obj, truth)
    else:  # size: larger, same place
        in_place = _near(obj, truth) and obj.area >= 1.15 * truth.sum()
    return EditCheck(
        in_place and db >= BACKGROUND_DB,
        True,
        in_place,
        db,
        f"area {obj.area} vs {int(truth.sum())}, iou {mask_iou(obj.mask, truth):.2f}",
    )
