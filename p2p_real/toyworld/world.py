"""The toy world's attributes (colours with RGB, shapes, sizes, textures), a check that names them, and the
description of one scene (its objects and background); p2p_real.toyworld.scenes renders scenes, captions names them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

# Colour names as captions spell them, and their RGB. Every colour can be an object or the background.
# The world is kept small on purpose (six colours, four shapes): a model trained on two CPU cores learns it.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "yellow": (245, 215, 45),
    "green": (55, 165, 65),
    "blue": (40, 80, 215),
    "purple": (150, 50, 170),
    "white": (240, 240, 236),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "big")
TEXTURES: tuple[str, ...] = ("plain", "gradient", "mottled")

# Circumradius as a fraction of the image side, per size class (before the shape's own factor).
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.10, 0.13), "big": (0.19, 0.235)}
# Scale per shape so that a triangle and a circle of one size class look about as large.
SHAPE_SCALE: dict[str, float] = {"circle": 1.0, "square": 1.08, "triangle": 1.22, "star": 1.2}


def check_attributes(colour: str | None = None, shape: str | None = None, size: str | None = None) -> None:
    """Raise a ValueError naming the bad attribute if any given one is not in the world."""
    if colour is not None and colour not in COLOURS:
        raise ValueError(f"colour {colour!r} is not one of {tuple(COLOURS)}")
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"shape {shape!r} is not one of {SHAPES}")
    if size is not None and size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {SIZES}")


@dataclass(frozen=True)
class SceneObject:
    """One shape: what it is (colour, shape, size) and the small random details of how it looks."""

    colour: str
    shape: str
    size: str
    center: tuple[float, float]  # (x, y) as fractions of the image side
    radius_u: float = 0.5  # where in its size class's radius range it falls, in [0, 1]
    angle: float = 0.0  # rotation jitter in degrees
    tint: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB offset of the colour
    shade: tuple[float, float] = (0.0, 0.0)  # brightness gradient across the object (x, y)

    def __post_init__(self) -> None:
        check_attributes(colour=self.colour, shape=self.shape, size=self.size)

    @property
    def radius(self) -> float:
        """Circumradius as a fraction of the image side."""
        low, high = SIZE_RANGES[self.size]
        return (low + self.radius_u * (high - low)) * SHAPE_SCALE[self.shape]


@dataclass(frozen=True)
class Scene:
    """All the parameters of one image; `render` turns it into pixels, the same every time."""

    objects: tuple[SceneObject, ...]
    background: str
    texture: str = "plain"
    texture_strength: float = 0.0
    gradient_angle: float = 0.0
    bg_tint: tuple[float, float, float] = (0.0, 0.0, 0.0)
    noise_std: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_attributes(colour=self.background)
        if self.texture not in TEXTURES:
            raise ValueError(f"texture {self.texture!r} is not one of {TEXTURES}")
        if not self.objects:
            raise ValueError("a scene needs at least one object")

    def with_object(self, index: int, **changes: Any) -> Scene:
        """The same scene with object `index` changed (e.g. colour="green", shape="star", size="big")."""
        if not -len(self.objects) <= index < len(self.objects):
            raise ValueError(f"object index {index} out of range for a scene of {len(self.objects)} objects")
        objects = list(self.objects)
        changed = dataclasses.replace(objects[index], **changes)
        objects[index] = dataclasses.replace(changed, center=_fit_center(changed.center, changed.radius))
        return dataclasses.replace(self, objects=tuple(objects))

    def with_background(self, colour: str) -> Scene:
        """The same scene on a background of another colour (same texture and noise)."""
        return dataclasses.replace(self, background=colour)


def _fit_center(center: tuple[float, float], radius: float) -> tuple[float, float]:
    """Move a centre just enough that a shape of this circumradius stays inside the image."""
    margin = min(radius + 0.01, 0.5)
    return (float(np.clip(center[0], margin, 1 - margin)), float(np.clip(center[1], margin, 1 - margin)))
