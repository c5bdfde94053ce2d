"""A flat procedural world: coloured shapes on a coloured background, rendered with their true masks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from p2p_real.toyworld.captions import scene_caption
from p2p_real.toyworld.world import COLOURS, SHAPES, SIZES, Scene, SceneObject, check_attributes

STAR_INNER = 0.45  # inner/outer radius of the five-pointed star
SUPERSAMPLE = 4  # shapes are rasterised at 4x and averaged down, for anti-aliased edges


@dataclass
class RenderedObject:
    """Ground truth of one object in a rendered image."""

    colour: str
    shape: str
    size: str
    mask: np.ndarray  # bool (H, W): pixels where this object is visible (coverage >= 0.5)
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive


@dataclass
class RenderedScene:
    """A rendered scene: the image, its full caption and the truth of every object."""

    scene: Scene
    image: np.ndarray  # uint8 (H, W, 3) RGB
    caption: str
    objects: list[RenderedObject]

    @property
    def background_mask(self) -> np.ndarray:
        """Pixels that belong to no object."""
        mask = np.ones(self.image.shape[:2], dtype=bool)
        for obj in self.objects:
            mask &= ~obj.mask
        return mask


def shape_polygon(shape: str, center: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape in pixel units; the triangle and the star point up."""
    check_attributes(shape=shape)
    if shape == "circle":
        count, offset, radii = 96, 0.0, [radius]
    elif shape == "square":
        count, offset, radii = 4, 45.0, [radius]
    elif shape == "triangle":
        count, offset, radii = 3, -90.0, [radius]
    else:  # star: ten vertices alternating outer and inner radius
        count, offset, radii = 10, -90.0, [radius, radius * STAR_INNER]
    points = []
    for i in range(count):
        theta = math.radians(offset + angle + 360.0 * i / count)
        r = radii[i % len(radii)]
        points.append((center[0] + r * math.cos(theta), center[1] + r * math.sin(theta)))
    return np.asarray(points, dtype=np.float64)


def coverage_box(
    shape: str, center: tuple[float, float], radius: float, angle: float, size: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Coverage of the pixels around the shape (float32 in [0, 1]) and that box (x0, y0, x1, y1) in the image.

    The shape is rasterised at 4x and averaged down, so edge pixels get their covered fraction.
    """
    polygon = shape_polygon(shape, center, radius, angle)
    x0 = max(math.floor(polygon[:, 0].min()) - 1, 0)
    y0 = max(math.floor(polygon[:, 1].min()) - 1, 0)
    x1 = min(math.ceil(polygon[:, 0].max()) + 2, size)
    y1 = min(math.ceil(polygon[:, 1].max()) + 2, size)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), dtype=np.float32), (0, 0, 0, 0)
    # Pixel (i, j) covers [j, j+1) x [i, i+1); at 4x, subpixel centres sit at (k + 0.5) / 4.
    fine = np.zeros(((y1 - y0) * SUPERSAMPLE, (x1 - x0) * SUPERSAMPLE), dtype=np.uint8)
    shift = 4
    pts = (polygon - [x0, y0]) * SUPERSAMPLE - 0.5
    pts = np.round(pts * (1 << shift)).astype(np.int32)
    cv2.fillPoly(fine, [pts], 255, lineType=cv2.LINE_8, shift=shift)
    small = cv2.resize(fine, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return small, (x0, y0, x1, y1)


def coverage(shape: str, center: tuple[float, float], radius: float, angle: float, size: int) -> np.ndarray:
    """Fraction of each pixel (size, size) covered by the shape (float32 in [0, 1]), anti-aliased at 4x."""
    out = np.zeros((size, size), dtype=np.float32)
    small, (x0, y0, x1, y1) = coverage_box(shape, center, radius, angle, size)
    out[y0:y1, x0:x1] = small
    return out


_NOISE_BANKS: dict[int, np.ndarray] = {}


def _pixel_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit Gaussian noise (size, size, 3): a random window of a fixed bank twice the size, for speed."""
    bank = _NOISE_BANKS.get(size)
    if bank is None:
        bank = np.random.default_rng(0).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)
        _NOISE_BANKS[size] = bank
    y, x = rng.integers(0, size + 1, size=2)
    window = bank[y : y + size, x : x + size]
    return window.transpose(1, 0, 2) if rng.uniform() < 0.5 else window


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a random cells x cells grid upsampled smoothly."""
    grid = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _background(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """The background layer (H, W, 3) float32 in 0..255."""
    base = np.asarray(COLOURS[scene.background], dtype=np.float32) + np.asarray(scene.bg_tint, dtype=np.float32)
    image: np.ndarray = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    if scene.texture == "gradient":
        axis = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        theta = math.radians(scene.gradient_angle)
        ramp = 2.0 * (math.cos(theta) * axis[None, :] + math.sin(theta) * axis[:, None])
        image = (
            image * (1.0 + scene.texture_strength * ramp[..., None]) + 20.0 * scene.texture_strength * ramp[..., None]
        )
    elif scene.texture == "mottled":
        blobs = _smooth_noise(rng, size, 5) + 0.35 * _smooth_noise(rng, size, 13)
        image = image + (60.0 * scene.texture_strength) * blobs[..., None]
    return image


def render(scene: Scene, size: int = 128) -> RenderedScene:
    """Render a scene at size x size pixels: RGB uint8 image, caption and true object masks."""
    if size < 16:
        raise ValueError(f"image size must be at least 16 pixels, got {size}")
    rng = np.random.default_rng(scene.seed)
    image = np.array(_background(scene, size, rng), dtype=np.float32)
    boxes = []
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    for obj in scene.objects:
        center_px = (obj.center[0] * size, obj.center[1] * size)
        alpha, (x0, y0, x1, y1) = coverage_box(obj.shape, center_px, obj.radius * size, obj.angle, size)
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float32) + np.asarray(obj.tint, dtype=np.float32)
        ramp_x = obj.shade[0] * (coords[None, x0:x1] - obj.center[0])
        ramp_y = obj.shade[1] * (coords[y0:y1, None] - obj.center[1])
        layer = colour * (1.0 + (ramp_x + ramp_y) / max(obj.radius, 1e-3))[..., None]
        region = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = region + (layer - region) * alpha[..., None]
        boxes.append((alpha, (x0, y0, x1, y1)))
    if scene.noise_std > 0:
        image += np.float32(scene.noise_std) * _pixel_noise(rng, size)
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    objects = []
    for k, obj in enumerate(scene.objects):
        alpha, (x0, y0, x1, y1) = boxes[k]
        visible = np.zeros((size, size), dtype=np.float32)
        visible[y0:y1, x0:x1] = alpha
        for later, (u0, v0, u1, v1) in boxes[k + 1 :]:
            visible[v0:v1, u0:u1] *= 1.0 - later
        mask = visible >= 0.5
        objects.append(RenderedObject(obj.colour, obj.shape, obj.size, mask, mask_bbox(mask)))
    return RenderedScene(scene, pixels, scene_caption(scene), objects)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a boolean mask, exclusive ends; (0, 0, 0, 0) when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _random_object(rng: np.random.Generator, colour: str, shape: str | None, size: str | None) -> SceneObject:
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    size = size or SIZES[rng.integers(len(SIZES))]
    radius_u, angle = float(rng.uniform()), float(rng.uniform(-10.0, 10.0))
    red, green, blue = (float(v) for v in rng.uniform(-8.0, 8.0, size=3))
    shade_x, shade_y = (float(v) for v in rng.uniform(-0.04, 0.04, size=2))
    return SceneObject(
        colour=colour,
        shape=shape,
        size=size,
        center=(0.5, 0.5),
        radius_u=radius_u,
        angle=angle,
        tint=(red, green, blue),
        shade=(shade_x, shade_y),
    )


def _place(rng: np.random.Generator, objects: list[SceneObject]) -> list[SceneObject] | None:
    """Random centres so the shapes stay inside and at most touch at their corners; None if it fails."""
    placed: list[SceneObject] = []
    for obj in objects:
        r = obj.radius
        for _ in range(60):
            center = (float(rng.uniform(r + 0.01, 1 - r - 0.01)), float(rng.uniform(r + 0.01, 1 - r - 0.01)))
            if all(math.dist(center, other.center) >= 0.85 * (r + other.radius) for other in placed):
                placed.append(dataclasses.replace(obj, center=center))
                break
        else:
            return None
    return placed


def random_scene(
    rng: np.random.Generator,
    n_objects: int | None = None,
    colours: list[str] | None = None,
    shapes: list[str] | None = None,
    sizes: list[str] | None = None,
    background: str | None = None,
) -> Scene:
    """A random scene of 1-2 objects (distinct colours, none the background's); fixed attributes may be given."""
    n = int(n_objects if n_objects is not None else rng.integers(1, 3))
    if not 1 <= n <= 2:
        raise ValueError(f"a scene has 1 or 2 objects, got {n}")
    for name, given in (("colours", colours), ("shapes", shapes), ("sizes", sizes)):
        if given is not None and len(given) != n:
            raise ValueError(f"{name} must list one entry per object ({n}), got {given!r}")
    for i in range(n):
        check_attributes(
            colour=colours[i] if colours else None,
            shape=shapes[i] if shapes else None,
            size=sizes[i] if sizes else None,
        )
    names = list(COLOURS)
    if background is None:
        taken = set(colours or [])
        free = [c for c in names if c not in taken]
        background = free[rng.integers(len(free))]
    check_attributes(colour=background)
    if colours is None:
        pool = [c for c in names if c != background]
        colours = [pool[i] for i in rng.permutation(len(pool))[:n]]
    elif background in colours:
        raise ValueError(f"object colours {colours} must differ from the background {background!r}")
    for _ in range(100):
        objects = [
            _random_object(rng, colours[i], shapes[i] if shapes else None, sizes[i] if sizes else None)
            for i in range(n)
        ]
        placed = _place(rng, objects)
        if placed is not None:
            break
    else:
        raise ValueError(f"could not place objects of sizes {sizes} without overlap")
    red, green, blue = (float(v) for v in rng.uniform(-6.0, 6.0, size=3))
    return Scene(
        objects=tuple(placed),
        background=background,
        texture="plain",
        bg_tint=(red, green, blue),
        noise_std=float(rng.uniform(0.8, 2.0)),
        seed=int(rng.integers(2**31)),
    )
