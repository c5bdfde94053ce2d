"""Results as files: images, masks, grids, attention maps and the reproducibility sidecar.

Every output of the library and the command line is written here, each file atomically (see
inversion.files), the sidecar last. PNGs carry the result's parameters in a text chunk (JPEG and WebP
images: see p2p_real.image_files, which also carries the photo's ICC profile and EXIF into its edits); the
sidecar (NAME.json) holds the parameters, the files written, what the caller adds (the command line: its
command and timings) and the library versions.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL.PngImagePlugin import PngInfo

from inversion.files import atomic_write
from masks.visualize import edit_grid, grid_height, labelled_grid, to_rgb, word_heatmaps
from p2p_real.image_files import check_quality, save_image
from p2p_real.image_files import image_format as image_format_of
from p2p_real.versions import package_version, versions

if TYPE_CHECKING:
    from p2p_real.results import AttentionMaps, EditResult, Reconstruction

GRID_HEIGHT = 320  # largest cell height of result grids
ATTENTION_HEIGHT = 192  # largest cell height of attention grids


def slug(text: str, limit: int = 48) -> str:
    """A file-name-safe version of a prompt: 'A cat, on a wall!' -> 'a-cat-on-a-wall'."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "prompt"


def png_text(parameters: dict[str, Any], **extra: str) -> dict[str, str]:
    """PNG text chunks: the parameters as JSON, a few readable fields, and the software that wrote it."""
    return {"parameters": json.dumps(parameters, sort_keys=True, ensure_ascii=False), **extra,
            "Software": f"p2p-real {package_version()}"}


def save_png(path: str | os.PathLike, image: Any, text: dict[str, str], icc_profile: bytes | None = None) -> Path:
    """Save an image (PIL, or an array that masks.visualize.to_rgb reads) as PNG with text chunks (and an ICC
    profile), atomically."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    picture = image if hasattr(image, "save") else to_rgb(image)
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG", pnginfo=info, **extra), make_folder=True)


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), make_folder=True)


def write_sidecar(path: str | os.PathLike, parameters: dict[str, Any], outputs: dict[str, Any],
                  extra: dict[str, Any] | None = None) -> Path:
    """The sidecar: the parameters that determine the outputs, the files written, the caller's extra keys,
    and the library versions."""
    data = {"p2p_real": package_version(), "command": parameters.get("command"), "parameters": parameters,
            "outputs": outputs, **(extra or {}), "versions": versions()}
    return write_json(path, data)


@dataclass
class EditPaths:
    """The files of one edit or generation."""

    images: list[Path]  # row 0 (the reconstruction or the source), then one per target
    masks: list[Path]  # one per target, with local blend or a user mask
    grid: Path
    sidecar: Path

    def all(self) -> list[Path]:
        """Every path, the sidecar last."""
        return [*self.images, *self.masks, self.grid, self.sidecar]


def edit_paths(folder: str | os.PathLike, name: str, n_rows: int, masks: bool, image_format: str = "png"
               ) -> EditPaths:
    """Where EditResult.save puts the files of a result with `n_rows` rows: NAME.K.png (or .jpg/.webp, see
    image_format), NAME.K.mask.png, NAME.grid.png and NAME.json in `folder`."""
    stem = Path(os.fspath(folder)) / name
    suffix, _ = image_format_of(image_format)
    return EditPaths(
        images=[Path(f"{stem}.{k}.{suffix}") for k in range(n_rows)],
        masks=[Path(f"{stem}.{k}.mask.png") for k in range(1, n_rows)] if masks else [],
        grid=Path(f"{stem}.grid.png"),
        sidecar=Path(f"{stem}.json"),
    )


def save_edit(result: EditResult, folder: str | os.PathLike, name: str,
              extra: dict[str, Any] | None = None, image_format: str = "png", quality: int | None = None
              ) -> list[Path]:
    """Write an edit's (or generation's) images (PNG, JPEG or WebP at `quality`, with the photo's ICC profile
    and EXIF), masks (when it blended), grid and sidecar; return the paths."""
    if not isinstance(result.images, (list, np.ndarray)):
        raise ValueError("only results with images can be saved: edit or generate with output_type 'pil' or 'np'")
    fmt, _ = image_format_of(image_format)
    quality = None if fmt == "png" else check_quality(quality)
    blended = result.info.get("blend_mask") is not None
    paths = edit_paths(folder, name, len(result.prompts), blended, fmt)
    parameters = result.parameters
    source = result.prompts[0]
    images = [image if hasattr(image, "save") else to_rgb(image) for image in result.images]
    photo = result.inversion.info if result.inversion is not None else None
    written = [save_image(path, image, png_text(parameters, source_prompt=source, prompt=prompt, row=str(k)),
                          fmt, quality, photo)
               for k, (path, image, prompt) in enumerate(zip(paths.images, images, result.prompts))]
    masks = list(result.masks or [])[: len(paths.masks)]
    written += [save_png(path, mask, png_text(parameters, prompt=prompt, row=str(k)))
                for k, (path, mask, prompt) in enumerate(zip(paths.masks, masks, result.prompts[1:]), start=1)]
    edited = [(image, f"{k}: {prompt}") for k, (image, prompt) in
              enumerate(zip(images[1:], result.prompts[1:]), start=1)]
    if result.inversion is not None:
        leading = [(result.inversion.original, "photo"), (images[0], "reconstruction")]
    else:
        leading = [(images[0], f"0: {source}")]
    grid = edit_grid(leading, edited, masks, grid_height(images, GRID_HEIGHT))
    written.append(save_png(paths.grid, grid, png_text(parameters), photo.icc_profile if photo else None))
    outputs = {"images": [p.name for p in paths.images], "masks": [p.name for p in paths.masks[: len(masks)]],
               "grid": paths.grid.name, **({"quality": quality} if quality is not None else {})}
    written.append(write_sidecar(paths.sidecar, parameters, outputs, extra))
    return written


def reconstruction_paths(folder: str | os.PathLike, name: str) -> list[Path]:
    """NAME.recon.png, NAME.recon.grid.png and NAME.recon.json in `folder`."""
    stem = Path(os.fspath(folder)) / name
    return [Path(f"{stem}.recon.png"), Path(f"{stem}.recon.grid.png"), Path(f"{stem}.recon.json")]


def save_reconstruction(rec: Reconstruction, folder: str | os.PathLike, name: str,
                        extra: dict[str, Any] | None = None) -> list[Path]:
    """Write the reconstruction, a photo | VAE | reconstruction grid, and the sidecar with the metrics."""
    image_path, grid_path, sidecar_path = reconstruction_paths(folder, name)
    rows = [[(rec.photo, "photo (working size)"),
             (rec.vae_image, f"VAE only: {rec.vae_psnr:.2f} dB"),
             (rec.image, f"{rec.method}: {rec.psnr:.2f} dB, SSIM {rec.ssim:.3f}")]]
    prompt = rec.parameters.get("prompt")
    written = [
        save_png(image_path, rec.image, png_text(rec.parameters, **({"prompt": prompt} if prompt else {}))),
        save_png(grid_path, labelled_grid(rows, grid_height([rec.photo], GRID_HEIGHT)), png_text(rec.parameters)),
    ]
    outputs = {"image": image_path.name, "grid": grid_path.name}
    written.append(write_sidecar(sidecar_path, rec.parameters, outputs, {"metrics": rec.metrics(), **(extra or {})}))
    return written


def attention_paths(folder: str | os.PathLike, name: str) -> list[Path]:
    """NAME.attention.png, NAME.attention.npz and NAME.attention.json in `folder`."""
    stem = Path(os.fspath(folder)) / name
    return [Path(f"{stem}.attention.png"), Path(f"{stem}.attention.npz"), Path(f"{stem}.attention.json")]


def save_attention(attention: AttentionMaps, images: Sequence[Any], prompts: Sequence[str], folder: str | os.PathLike,
                   name: str, parameters: dict[str, Any], extra: dict[str, Any] | None = None) -> list[Path]:
    """Write each prompt row's image with its words' heat maps as one grid, the maps per word (.npz: keys
    row{R}_{K}_{word}), and the sidecar (with the words of each row)."""
    grid_path, maps_path, sidecar_path = attention_paths(folder, name)
    rows = [[(image, prompt), *word_heatmaps(image, attention.per_word(row))]
            for row, (image, prompt) in enumerate(zip(images, prompts))]
    arrays = {f"row{row}_{k:02d}_{slug(word, 24)}": np.asarray(values, dtype=np.float32)
              for row in range(len(prompts)) for k, (word, values) in enumerate(attention.per_word(row))}
    written = [save_png(grid_path, labelled_grid(rows, grid_height(images, ATTENTION_HEIGHT)), png_text(parameters))]

    def save_npz(tmp: Path) -> None:
        """Write the maps as a compressed .npz."""
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    written.append(atomic_write(maps_path, save_npz, make_folder=True))
    words = [[word for word, _ in attention.per_word(row)] for row in range(len(prompts))]
    outputs = {"grid": grid_path.name, "maps": maps_path.name}
    written.append(write_sidecar(sidecar_path, parameters, outputs, {"words": words, **(extra or {})}))
    return written
