"""The toy world's attributes: colours (with RGB), shapes and sizes, and a check that names them."""

from __future__ import annotations

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


def check_attributes(colour: str | None = None, shape: str | None = None, size: str | None = None) -> None:
    """Raise a ValueError naming the bad attribute if any given one is not in the world."""
    if colour is not None and colour not in COLOURS:
        raise ValueError(f"colour {colour!r} is not one of {tuple(COLOURS)}")
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"shape {shape!r} is not one of {SHAPES}")
    if size is not None and size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {SIZES}")
