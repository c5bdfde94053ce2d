"""Pictures of attention and masks: heat-map overlays, mask overlays and captioned grids (numpy + PIL only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchors (position in [0, 1], RGB) of the heat colormap: dark blue -> cyan -> green -> yellow -> red.
HEAT_ANCHORS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.00, (0, 0, 96)),
    (0.15, (0, 64, 255)),
    (0.35, (0, 200, 255)),
    (0.50, (64, 255, 128)),
    (0.65, (255, 255, 0)),
    (0.85, (255, 96, 0)),
    (1.00, (160, 0, 0)),
)
MASK_COLOR = (255, 48, 48)
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)
MAX_CAPTION_LINES = 3

ImageLike = Image.Image | np.ndarray
Cell = tuple[ImageLike, str]


def colormap_table(anchors: Sequence[tuple[float, tuple[int, int, int]]] = HEAT_ANCHORS) -> np.ndarray:
    """A (256, 3) uint8 lookup table interpolating the anchors linearly."""
    positions = np.array([p for p, _ in anchors], dtype=np.float64)
    colors = np.array([c for _, c in anchors], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(x, positions, colors[:, k]) for k in range(3)], axis=1)
    return np.round(table).astype(np.uint8)


HEAT_TABLE = colormap_table()


def normalize(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant (or non-finite) map becomes all zeros."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(v.min()), float(v.max())
    if high - low <= 1e-12:
        return np.zeros_like(v)
    return (v - low) / (high - low)


def colorize(values: np.ndarray, table: np.ndarray = HEAT_TABLE) -> np.ndarray:
    """Values in [0, 1] (h, w) -> (h, w, 3) uint8 colours from the lookup table."""
    index = np.clip(np.round(np.asarray(values, dtype=np.float64) * 255.0), 0, 255).astype(np.intp)
    return table[index]


def to_rgb(image: ImageLike) -> Image.Image:
    """A PIL image or an (h, w[, 1|3|4]) uint8 / float-in-[0, 1] array as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.round(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"image must be (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), got shape {array.shape}")
    return Image.fromarray(array).convert("RGB")


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map to `size` (width, height)."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"a map must be 2-D (h, w), got shape {v.shape}")
    return np.asarray(Image.fromarray(v, mode="F").resize(size, Image.Resampling.BILINEAR), dtype=np.float64)


def heatmap(values: np.ndarray, size: tuple[int, int] | None = None, scale: bool = True) -> Image.Image:
    """A coloured picture of a map, optionally resized to `size` (width, height)."""
    v = np.asarray(values, dtype=np.float64)
    if size is not None:
        v = resize_map(v, size)
    return Image.fromarray(colorize(normalize(v) if scale else np.clip(v, 0.0, 1.0)))


def heatmap_overlay(image: ImageLike, values: np.ndarray, alpha: float = 0.55, scale: bool = True) -> Image.Image:
    """The map upsampled to the image, coloured and blended over it with weight `alpha`."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    base = to_rgb(image)
    return Image.blend(base, heatmap(values, base.size, scale), alpha)


def mask_overlay(
    image: ImageLike, mask: ImageLike, color: tuple[int, int, int] = MASK_COLOR, alpha: float = 0.5
) -> Image.Image:
    """Tint the image with `color` where the mask (white = 1) is set, in proportion to the mask value."""
    base = to_rgb(image)
    m = mask.convert("L") if isinstance(mask, Image.Image) else to_rgb(mask).convert("L")
    if m.size != base.size:
        m = m.resize(base.size, Image.Resampling.BILINEAR)
    weight = np.asarray(m, dtype=np.float64)[..., None] / 255.0 * alpha
    pixels = np.asarray(base, dtype=np.float64)
    out = pixels * (1.0 - weight) + np.array(color, dtype=np.float64) * weight
    return Image.fromarray(np.round(out).astype(np.uint8))


def fit_height(image: ImageLike, height: int) -> Image.Image:
    """Resize to `height` pixels, keeping the aspect ratio (at least one pixel wide)."""
    img = to_rgb(image)
    if img.height == height:
        return img
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.Resampling.LANCZOS)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    left, top, right, bottom = font.getbbox("Ag|")
    return int(bottom - min(top, 0)) + 2


def wrap_caption(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Split a caption into lines no wider than `width` pixels (at most MAX_CAPTION_LINES, then '...')."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and font.getlength(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    if len(lines) > MAX_CAPTION_LINES:
        lines = lines[:MAX_CAPTION_LINES]
        lines[-1] = lines[-1].rstrip(".") + "..."
    last = lines[-1]
    while font.getlength(last) > width and len(last) > 4:  # one very long word
        last = last.removesuffix("...")[:-1] + "..."
    lines[-1] = last
    return lines


def labelled_grid(
    rows: Sequence[Sequence[Cell | None]],
    cell_height: int = 256,
    pad: int = 6,
    background: tuple[int, int, int] = BACKGROUND,
) -> Image.Image:
    """Rows of (image, caption) cells in aligned columns, images scaled to `cell_height`, captions under them.

    Rows may have different lengths, and a None cell leaves its slot empty. Captions use PIL's default font
    and wrap to the column's width; each row is as tall as its longest caption needs.
    """
    if not any(cell is not None for row in rows for cell in row):
        raise ValueError("a grid needs at least one image")
    if cell_height < 1:
        raise ValueError(f"cell_height must be positive, got {cell_height!r}")
    font = _font()
    line_h = _line_height(font)
    scaled = [[None if c is None else (fit_height(c[0], cell_height), c[1]) for c in row] for row in rows]
    n_cols = max(len(row) for row in scaled)
    widths = [
        max((cell[0].width for row in scaled for cell in row[c : c + 1] if cell is not None), default=1)
        for c in range(n_cols)
    ]
    captions = [
        [[] if c is None else wrap_caption(c[1], font, max(widths[k], 8)) for k, c in enumerate(row)] for row in scaled
    ]
    text_heights = [max((len(lines) for lines in row), default=0) * line_h for row in captions]
    canvas = Image.new(
        "RGB",
        (sum(widths) + pad * (n_cols + 1), sum(cell_height + t + 2 * pad for t in text_heights) + pad),
        background,
    )
    draw = ImageDraw.Draw(canvas)
    y = pad
    for row, row_captions, text_h in zip(scaled, captions, text_heights):
        x = pad
        for k, cell in enumerate(row):
            if cell is not None:
                img = cell[0]
                canvas.paste(img, (x + (widths[k] - img.width) // 2, y))
                for n, line in enumerate(row_captions[k]):
                    offset = max(0, (widths[k] - int(font.getlength(line))) // 2)
                    draw.text((x + offset, y + cell_height + pad // 2 + n * line_h), line, fill=TEXT_COLOR, font=font)
            x += widths[k] + pad
        y += cell_height + text_h + 2 * pad
    return canvas


def grid_height(images: Sequence[ImageLike], largest: int, smallest: int = 128) -> int:
    """A cell height for a grid of these images: their tallest, within [smallest, largest]."""
    tallest = max(to_rgb(img).height if isinstance(img, np.ndarray) else img.height for img in images)
    return max(smallest, min(largest, tallest))


def word_heatmaps(
    image: ImageLike, per_word: Sequence[tuple[str, np.ndarray]], alpha: float = 0.55
) -> list[tuple[Image.Image, str]]:
    """One (overlay, word) cell per word: each word's map over the image."""
    base = to_rgb(image)
    return [(heatmap_overlay(base, values, alpha), word) for word, values in per_word]


def edit_grid(
    leading: Sequence[Cell], edited: Sequence[Cell], masks: Sequence[ImageLike], cell_height: int
) -> Image.Image:
    """The picture of an edit: the leading cells (the photo and its reconstruction, or the source image), the
    edited images, and a second row with each edited image's mask over it ("mask k"), when there are masks."""
    rows: list[list[Cell | None]] = [[*leading, *edited]]
    if masks:
        overlays = [
            (mask_overlay(image, mask), f"mask {k}") for k, ((image, _), mask) in enumerate(zip(edited, masks), start=1)
        ]
        rows.append([*[None] * len(leading), *overlays])
    return labelled_grid(rows, cell_height)
