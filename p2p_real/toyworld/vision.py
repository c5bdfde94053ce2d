"""Simple vision for the toy world: find the coloured shapes in an image, name their colour, shape and size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from p2p_real.toyworld.scenes import coverage, shape_polygon
from p2p_real.toyworld.world import COLOURS, SHAPE_SCALE, SIZE_RANGES

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
# Circumradius (fraction of the image side, shape factor removed) between the small and big ranges.
SIZE_THRESHOLD = (SIZE_RANGES["small"][1] + SIZE_RANGES["big"][0]) / 2
# Rotational symmetry of each polygon (degrees) and how far the renderer turns it, for template matching.
_SYMMETRY = {"square": 90.0, "triangle": 120.0, "star": 72.0}
_ANGLE_STEP = 4.0
_PIXEL_CORNERS = ((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5))
# The outline measures that tell the shapes apart, from about 700 rendered objects of each shape and size
# (64 px, as benchmarks/toyworld.py renders them): stars have solidity 0.59-0.79, triangles 0.80-0.93 and
# circles and squares 0.85 and above; triangles fill 0.49-0.64 of their smallest rectangle, circles and
# squares 0.71 and more; the outline's radial spread is 0.024-0.083 for circles and 0.087-0.142 for
# squares. No rendered object is elongated more than 1.22 (long over short side of that rectangle), none
# has a template IoU below 0.80 (circle, square), 0.78 (triangle) or 0.72 (star): the floors below sit
# under those. With these rules the vision names 99.9% of rendered objects right (5 of 6,000 wrong or
# "unknown"); template IoU alone named 1.7% wrong (mostly small circles as squares).
UNKNOWN = "unknown"
STAR_SOLIDITY = (0.78, 0.82)  # below the first a star; up to the second a star or a triangle, by template
TRIANGLE_FILL = 0.68
ROUND_SPREAD = 0.085
MIN_SOLIDITY: dict[str, float] = {"circle": 0.85, "square": 0.85, "triangle": 0.80}
MIN_TEMPLATE_IOU: dict[str, float] = {"circle": 0.76, "square": 0.76, "triangle": 0.74, "star": 0.68}
MAX_ELONGATION = 1.25


@dataclass
class DetectedObject:
    """An object found in an image."""

    colour: str
    shape: str  # one of SHAPES, or UNKNOWN
    size: str
    mask: np.ndarray  # bool (H, W)
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive ends
    shape_score: float  # IoU of the mask with the best-fitting ideal shape, in [0, 1]

    @property
    def area(self) -> int:
        """Number of pixels in the mask."""
        return int(self.mask.sum())


def to_lab(image: np.ndarray) -> np.ndarray:
    """CIELAB (H, W, 3) float32 of an RGB uint8 image (L in 0..100)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


PALETTE_LAB = to_lab(np.asarray([list(COLOURS.values())], dtype=np.uint8))[0]


def nearest_colours(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into COLOUR_NAMES of each pixel's nearest palette colour in CIELAB, and the distance to it."""
    lab = to_lab(image)
    dist = np.linalg.norm(lab[:, :, None, :] - PALETTE_LAB[None, None], axis=-1)
    labels = dist.argmin(-1)
    return labels, np.take_along_axis(dist, labels[..., None], -1)[..., 0]


def background_colour(image: np.ndarray, labels: np.ndarray | None = None) -> str:
    """The palette colour that most of the image's border pixels are nearest to."""
    labels = nearest_colours(image)[0] if labels is None else labels
    border = np.concatenate([labels[:2].ravel(), labels[-2:].ravel(), labels[:, :2].ravel(), labels[:, -2:].ravel()])
    return COLOUR_NAMES[int(np.bincount(border, minlength=len(COLOUR_NAMES)).argmax())]


def _unit_area(shape: str) -> float:
    """Area of the shape at circumradius 1."""
    unit = shape_polygon(shape, (0.0, 0.0), 1.0, 0.0)
    return 0.5 * abs(np.dot(unit[:, 0], np.roll(unit[:, 1], 1)) - np.dot(unit[:, 1], np.roll(unit[:, 0], 1)))


def _template(
    shape: str, mask_area: float, center: tuple[float, float], angle: float, size: tuple[int, int]
) -> np.ndarray:
    """A filled ideal shape of the given area and centre (bool), at whole-pixel precision."""
    radius = math.sqrt(mask_area / _unit_area(shape))
    points = shape_polygon(shape, (0.0, 0.0), 1.0, angle) * radius + np.asarray(center)
    canvas = np.zeros(size, dtype=np.uint8)
    shift = 4
    cv2.fillPoly(canvas, [np.round((points - 0.5) * (1 << shift)).astype(np.int32)], 1, cv2.LINE_8, shift)
    return canvas.astype(bool)


def _template_fit(shape: str, mask: np.ndarray, area: float, center: tuple[float, float]) -> tuple[float, float]:
    """(IoU, angle): the mask against the ideal shape of the same area and centre, at its best rotation."""
    period = _SYMMETRY.get(shape)
    angles = [0.0] if period is None else list(np.arange(-period / 2, period / 2, _ANGLE_STEP))
    best = (0.0, 0.0)
    for angle in angles:
        template = _template(shape, area, center, float(angle), mask.shape)
        best = max(best, (float((template & mask).sum()) / float((template | mask).sum()), float(angle)))
    return best


def _template_iou(shape: str, mask: np.ndarray, area: float, center: tuple[float, float]) -> float:
    """IoU of the mask with the ideal shape of the same area and centre, at its best rotation."""
    return _template_fit(shape, mask, area, center)[0]


def outline_measures(mask: np.ndarray) -> tuple[float, float, float]:
    """(rectangularity, solidity, elongation): the mask's area over that of its smallest rotated bounding
    rectangle and over that of its convex hull, and that rectangle's long side over its short side, all
    taken around the pixels' corners (so a lone pixel is 1, 1, 1)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    centres = np.concatenate(contours).reshape(-1, 2).astype(np.float32)
    offsets = [np.asarray(offset, dtype=np.float32) for offset in _PIXEL_CORNERS]
    corners = np.concatenate([centres + offset for offset in offsets]).reshape(-1, 1, 2)
    (_, _), (width, height), _ = cv2.minAreaRect(corners)
    area = float(mask.sum())
    hull = float(cv2.contourArea(cv2.convexHull(corners)))
    return area / float(width * height), area / hull, max(width, height) / min(width, height)


def radial_spread(mask: np.ndarray) -> float:
    """Spread of the outline's distances from the centroid (standard deviation over mean): 0 for a circle,
    about 0.12 for a square, whose corners stand out 1.4 times as far as the middles of its sides."""
    ys, xs = np.nonzero(mask)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0).astype(bool)
    edge_y, edge_x = np.nonzero(mask & ~inner)
    distances = np.hypot(edge_x - xs.mean(), edge_y - ys.mean())
    return float(distances.std() / max(float(distances.mean()), 1e-6))


def reshaped_mask(mask: np.ndarray, shape: str, new_shape: str) -> np.ndarray:
    """Where the renderer would draw the object of this mask as `new_shape`: same centre, same place in its size
    class (the circumradius rescaled by SHAPE_SCALE), same rotation (the old shape's best-fitting one). A shape
    swap that keeps the layout draws this; the old mask cannot be its measure, since two shapes of one size
    overlap by 0.57-0.77 IoU."""
    mask = np.asarray(mask, dtype=bool)
    area = float(mask.sum())
    if area < 4:
        raise ValueError(f"mask has only {int(area)} pixels: too small to reshape")
    if mask.shape[0] != mask.shape[1]:
        raise ValueError(f"expected a square mask (the renderer's images are square), got {mask.shape}")
    ys, xs = np.nonzero(mask)
    radius = math.sqrt(area / _unit_area(shape)) * SHAPE_SCALE[new_shape] / SHAPE_SCALE[shape]
    center = (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)
    angle = _template_fit(shape, mask, area, center)[1] if shape in _SYMMETRY else 0.0
    return coverage(new_shape, center, radius, angle, mask.shape[0]) >= 0.5


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """(shape, IoU): which of the world's shapes the mask is, and its IoU with that ideal shape (same area and
    centroid, best rotated); UNKNOWN when the outline is none of them.

    The outline decides the shape, the template IoU only confirms it (docs/toyworld.md, "The vision"):
    a star is the one shape with deep notches (solidity below 0.8), a triangle fills little of its bounding
    rectangle, and circles and squares are told apart by the radial spread of their outline (a small
    rasterised circle looks squarish to template IoU alone). A mask whose solidity or template IoU is below
    what every rendered object of that shape reaches, or longer than any of them (four-pointed stars, pinched
    squares, ellipses, smears), is UNKNOWN.
    """
    mask = np.asarray(mask, dtype=bool)
    area = float(mask.sum())
    if area < 4:
        raise ValueError(f"mask has only {int(area)} pixels: too small to classify")
    ys, xs = np.nonzero(mask)
    # Pixel (i, j) has its centre at (j + 0.5, i + 0.5) in the renderer's coordinates.
    center = (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)
    fill, solidity, elongation = outline_measures(mask)
    ious: dict[str, float] = {}
    if solidity < STAR_SOLIDITY[0]:
        shape = "star"
    elif solidity < STAR_SOLIDITY[1] and fill < TRIANGLE_FILL:  # a small star or a small triangle
        ious = {name: _template_iou(name, mask, area, center) for name in ("star", "triangle")}
        shape = max(ious, key=ious.__getitem__)
    elif fill < TRIANGLE_FILL:
        shape = "triangle"
    elif radial_spread(mask) < ROUND_SPREAD:
        shape = "circle"
    else:
        shape = "square"
    iou = ious[shape] if shape in ious else _template_iou(shape, mask, area, center)
    if iou < MIN_TEMPLATE_IOU[shape] or solidity < MIN_SOLIDITY.get(shape, 0.0) or elongation > MAX_ELONGATION:
        return UNKNOWN, iou
    return shape, iou


def size_class(mask: np.ndarray, shape: str) -> str:
    """ "small" or "big" from the mask's area, as the renderer sizes that shape (an UNKNOWN one as a circle)."""
    shape = "circle" if shape == UNKNOWN else shape
    radius = math.sqrt(float(mask.sum()) / _unit_area(shape)) / SHAPE_SCALE[shape] / mask.shape[1]
    return "small" if radius < SIZE_THRESHOLD else "big"


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with enclosed holes filled."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(mask.shape, dtype=np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def segment_objects(image: np.ndarray, min_area_fraction: float = 0.004) -> list[DetectedObject]:
    """Objects in an image: connected regions of one palette colour other than the background's, largest first.

    Anti-aliased edges blend into a third colour; an opening removes those thin rims, and each region then
    grows by one pixel into non-background pixels to take its own rim back.
    """
    if not 0 < min_area_fraction < 1:
        raise ValueError(f"min_area_fraction must be in (0, 1), got {min_area_fraction}")
    labels, _ = nearest_colours(image)
    background = COLOUR_NAMES.index(background_colour(image, labels))
    height, width = labels.shape
    min_area = max(int(min_area_fraction * height * width), 4)
    foreground = (labels != background).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    found = []
    for index in np.unique(labels):
        if index == background or (labels == index).sum() < min_area:
            continue
        region = cv2.morphologyEx((labels == index).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        count, components, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        for c in range(1, count):
            if stats[c, cv2.CC_STAT_AREA] < min_area:
                continue
            mask = cv2.dilate((components == c).astype(np.uint8), kernel) & foreground
            mask = _fill_holes(mask)
            shape, score = classify_shape(mask)
            x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
            found.append(
                DetectedObject(COLOUR_NAMES[index], shape, size_class(mask, shape), mask, (x, y, x + w, y + h), score)
            )
    found.sort(key=lambda obj: -obj.area)
    return found


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def find_object(
    objects: list[DetectedObject], colour: str | None = None, shape: str | None = None
) -> DetectedObject | None:
    """The largest detected object of that colour and/or shape, or None."""
    for obj in objects:
        if (colour is None or obj.colour == colour) and (shape is None or obj.shape == shape):
            return obj
    return None


def match_truth(objects: list[DetectedObject], truth_masks: list[np.ndarray]) -> list[DetectedObject | None]:
    """For each true mask, the detected object overlapping it most (each used once), or None."""
    used: set[int] = set()
    matches: list[DetectedObject | None] = []
    for truth in truth_masks:
        scores = [(mask_iou(obj.mask, truth), i) for i, obj in enumerate(objects) if i not in used]
        best = max(scores, default=(0.0, -1))
        if best[0] > 0:
            used.add(best[1])
            matches.append(objects[best[1]])
        else:
            matches.append(None)
    return matches
