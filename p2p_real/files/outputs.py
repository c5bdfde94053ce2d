"""Results as files: images, masks, grids, attention maps and the reproducibility sidecar.

Every output of the library and the command line is written here, each file atomically (see
inversion.storage.files), the sidecar last, each result's files as one output set (p2p_real.files.output_sets:
one run at a time, no file replaced without `overwrite`, all or nothing). PNGs carry the result's parameters in a
text chunk (JPEG and WebP images: see p2p_real.files.image_files, which also carries the photo's ICC profile and
EXIF into its edits); the sidecar (NAME.json) holds the parameters, the files written, what the caller adds (the
command line: its command and timings) and the library versions. Neither names the folders of this machine: a
local model is recorded by its name (its content by the fingerprint).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL.PngImagePlugin import PngInfo

from inversion.storage.files import INVERSION_SUFFIX
from inversion.validation import quoted
from masks.visualize import edit_grid, grid_height, labelled_grid, to_rgb, word_heatmaps
from p2p_real.files.image_files import check_quality, image_writer
from p2p_real.files.image_files import image_format as image_format_of
from p2p_real.files.output_sets import OutputSet
from p2p_real.files.versions import package_version, versions


# What the writers below read of p2p_real.files.results' EditResult, Reconstruction and AttentionMaps. Described here,
# not imported: results' save methods call these writers, so importing results would make a cycle (docs/design.md §10).
class EditFiles(Protocol):
    """The parts of an edit or generation (p2p_real.files.results.EditResult) that save_edit writes."""

    images: Any
    prompts: list[str]
    masks: list[Any] | None
    info: dict[str, Any]
    parameters: dict[str, Any]
    inversion: Any

    def as_inversion(self, k: int) -> Any: ...


class ReconstructionFiles(Protocol):
    """The parts of a reconstruction (p2p_real.files.results.Reconstruction) that save_reconstruction writes."""

    image: Any
    photo: Any
    vae_image: Any
    drift_image: Any
    psnr: float
    ssim: float
    vae_psnr: float
    drift_psnr: float | None
    method: str
    parameters: dict[str, Any]

    def metrics(self) -> dict[str, Any]: ...


class WordMaps(Protocol):
    """The part of attention maps (p2p_real.files.results.AttentionMaps) that save_attention writes."""

    def per_word(self, row: int = 0) -> list[tuple[str, np.ndarray]]: ...


MAX_NAME_BYTES = 150  # of an output name: its files and temporaries add up to ~60 bytes, file systems allow 255
GRID_HEIGHT = 320  # largest cell height of result grids
ATTENTION_HEIGHT = 192  # largest cell height of attention grids


def slug(text: str, limit: int = 48) -> str:
    """A file-name-safe version of a prompt: 'A cat, on a wall!' -> 'a-cat-on-a-wall'."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "prompt"


Writer = Callable[[Path], object]  # writes a file's content to the (temporary) path it is given


def shareable_path(text: str) -> str:
    """A path as results record it: its name when absolute (the folders of this machine stay private); a
    relative path or a hub id as it is."""
    return Path(text).name if os.path.isabs(text) else text


def shareable(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as results record them: a local model by its name, not its folders (see shareable_path)."""
    model = parameters.get("model")
    return {**parameters, "model": shareable_path(model)} if isinstance(model, str) else parameters


def png_text(parameters: dict[str, Any], **extra: str) -> dict[str, str]:
    """PNG text chunks: the parameters as JSON, a few readable fields, and the software that wrote it."""
    return {
        "parameters": json.dumps(shareable(parameters), sort_keys=True, ensure_ascii=False),
        **extra,
        "Software": f"p2p-real {package_version()}",
    }


def png_writer(image: Any, text: dict[str, str], icc_profile: bytes | None = None) -> Writer:
    """Writes an image (PIL, or an array that masks.visualize.to_rgb reads) as PNG with text chunks (and an ICC
    profile)."""
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    picture = image if hasattr(image, "save") else to_rgb(image)
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    return lambda tmp: picture.save(tmp, format="PNG", pnginfo=info, **extra)


def bytes_writer(data: bytes) -> Writer:
    """Writes `data` as it is."""
    return lambda tmp: tmp.write_bytes(data)


def json_writer(data: dict[str, Any]) -> Writer:
    """Writes JSON (indented, UTF-8)."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def sidecar_data(
    parameters: dict[str, Any], outputs: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The sidecar: the parameters that determine the outputs, the files written, the caller's extra keys,
    and the library versions."""
    return {
        "p2p_real": package_version(),
        "command": parameters.get("command"),
        "parameters": shareable(parameters),
        "outputs": outputs,
        **(extra or {}),
        "versions": versions(),
    }


@dataclass
class EditPaths:
    """The files of one edit or generation."""

    images: list[Path]  # row 0 (the reconstruction or the source), then one per target
    masks: list[Path]  # one per target, with local blend or a user mask
    grid: Path
    sidecar: Path
    inversions: list[Path] = field(default_factory=list)  # NAME.K.inv.safetensors per target, when asked for

    def all(self) -> list[Path]:
        """Every path, the sidecar last."""
        return [*self.images, *self.masks, *self.inversions, self.grid, self.sidecar]


def edit_paths(
    folder: str | os.PathLike, name: str, n_rows: int, masks: bool, image_format: str = "png", inversions: bool = False
) -> EditPaths:
    """Where EditResult.save puts the files of a result with `n_rows` rows: NAME.K.png (or .jpg/.webp, see
    image_format), NAME.K.mask.png, NAME.grid.png and NAME.json in `folder`, and with `inversions`
    NAME.K.inv.safetensors (each target continued, EditResult.as_inversion)."""
    suffix, _ = image_format_of(image_format)
    stem = Path(os.fspath(folder)) / name
    return EditPaths(
        images=[Path(f"{stem}.{k}.{suffix}") for k in range(n_rows)],
        masks=[Path(f"{stem}.{k}.mask.png") for k in range(1, n_rows)] if masks else [],
        grid=Path(f"{stem}.grid.png"),
        sidecar=Path(f"{stem}.json"),
        inversions=[Path(f"{stem}.{k}{INVERSION_SUFFIX}") for k in range(1, n_rows)] if inversions else [],
    )


def check_name(name: str, what: str = "name") -> str:
    """A name for output files: a plain file name (no folders, not hidden, not '.' or '..'), else ValueError."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must not be empty")
    if "/" in name or "\\" in name or name.startswith(".") or name != name.strip() or not name.isprintable():
        raise ValueError(
            f"{what} {quoted(name)} must be a plain file name (no folders, not starting with '.', no "
            "leading or trailing spaces, no line breaks or control characters); choose the folder with "
            "the output folder instead"
        )
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(
            f"{what} {quoted(name)} is too long: at most {MAX_NAME_BYTES} bytes (its files add "
            "endings, and file systems allow 255)"
        )
    return name


def save_edit(
    result: EditFiles,
    folder: str | os.PathLike,
    name: str,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
    replaceable: Iterable[Path] = (),
    image_format: str = "png",
    quality: int | None = None,
    inversions: bool = False,
) -> list[Path]:
    """Write an edit's (or generation's) images (PNG, JPEG or WebP at `quality`, with the photo's ICC profile
    and EXIF), masks (when it blended), with `inversions` each target as an inversion (EditResult.as_inversion),
    grid and sidecar as one output set; return the paths."""
    if not isinstance(result.images, (list, np.ndarray)):
        raise ValueError("only results with images can be saved: edit or generate with output_type 'pil' or 'np'")
    check_name(name)
    fmt, _ = image_format_of(image_format)
    quality = None if fmt == "png" else check_quality(quality)
    blended = result.info.get("blend_mask") is not None
    paths = edit_paths(folder, name, len(result.prompts), blended, fmt, inversions)
    continued = [result.as_inversion(k) for k in range(1, len(result.prompts))] if inversions else []  # may refuse
    with OutputSet(folder, name, paths.all(), overwrite, replaceable) as files:
        for path, inv in zip(paths.inversions, continued):
            files.write(path, bytes_writer(inv.to_bytes()))
        return [*paths.inversions, *_write_edit(result, files, paths, extra, fmt, quality)]


def _write_edit(
    result: EditFiles, files: OutputSet, paths: EditPaths, extra: dict[str, Any] | None, fmt: str, quality: int | None
) -> list[Path]:
    """The files of save_edit, the sidecar last."""
    parameters = result.parameters
    source = result.prompts[0]
    images = [image if hasattr(image, "save") else to_rgb(image) for image in result.images]
    photo = result.inversion.info if result.inversion is not None else None
    written = [
        files.write(
            path,
            image_writer(
                image, png_text(parameters, source_prompt=source, prompt=prompt, row=str(k)), fmt, quality, photo
            ),
        )
        for k, (path, image, prompt) in enumerate(zip(paths.images, images, result.prompts))
    ]
    masks = list(result.masks or [])[: len(paths.masks)]
    written += [
        files.write(path, png_writer(mask, png_text(parameters, prompt=prompt, row=str(k))))
        for k, (path, mask, prompt) in enumerate(zip(paths.masks, masks, result.prompts[1:]), start=1)
    ]
    edited = [
        (image, f"{k}: {prompt}") for k, (image, prompt) in enumerate(zip(images[1:], result.prompts[1:]), start=1)
    ]
    if result.inversion is not None:
        leading = [(result.inversion.original, "photo"), (images[0], "reconstruction")]
    else:
        leading = [(images[0], f"0: {source}")]
    grid = edit_grid(leading, edited, masks, grid_height(images, GRID_HEIGHT))
    icc = photo.icc_profile if photo is not None else None
    written.append(files.write(paths.grid, png_writer(grid, png_text(parameters), icc)))
    outputs = {
        "images": [p.name for p in paths.images],
        "masks": [p.name for p in paths.masks[: len(masks)]],
        "grid": paths.grid.name,
        **({"quality": quality} if quality is not None else {}),
        **({"inversions": [p.name for p in paths.inversions]} if paths.inversions else {}),
    }
    written.append(files.write(paths.sidecar, json_writer(sidecar_data(parameters, outputs, extra))))
    return written


def reconstruction_paths(folder: str | os.PathLike, name: str) -> list[Path]:
    """NAME.recon.png, NAME.recon.grid.png and NAME.recon.json in `folder`."""
    stem = Path(os.fspath(folder)) / name
    return [Path(f"{stem}.recon.png"), Path(f"{stem}.recon.grid.png"), Path(f"{stem}.recon.json")]


def save_reconstruction(
    rec: ReconstructionFiles,
    folder: str | os.PathLike,
    name: str,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write the reconstruction, a photo | VAE | reconstruction grid, and the sidecar with the metrics, as one
    output set (NAME.recon)."""
    paths = reconstruction_paths(folder, check_name(name))
    image_path, grid_path, sidecar_path = paths
    rows = [
        [
            (rec.photo, "photo (working size)"),
            (rec.vae_image, f"VAE only: {rec.vae_psnr:.2f} dB"),
            (rec.image, f"{rec.method}: {rec.psnr:.2f} dB, SSIM {rec.ssim:.3f}"),
        ]
    ]
    if rec.drift_image is not None:  # direct inversion: what plain DDIM makes of the same start
        rows[0].insert(2, (rec.drift_image, f"plain DDIM (drift): {rec.drift_psnr:.2f} dB"))
    prompt = rec.parameters.get("prompt")
    outputs = {"image": image_path.name, "grid": grid_path.name}
    sidecar = sidecar_data(rec.parameters, outputs, {"metrics": rec.metrics(), **(extra or {})})
    with OutputSet(folder, f"{name}.recon", paths, overwrite) as files:
        return [
            files.write(
                image_path, png_writer(rec.image, png_text(rec.parameters, **({"prompt": prompt} if prompt else {})))
            ),
            files.write(
                grid_path,
                png_writer(labelled_grid(rows, grid_height([rec.photo], GRID_HEIGHT)), png_text(rec.parameters)),
            ),
            files.write(sidecar_path, json_writer(sidecar)),
        ]


def attention_paths(folder: str | os.PathLike, name: str) -> list[Path]:
    """NAME.attention.png, NAME.attention.npz and NAME.attention.json in `folder`."""
    stem = Path(os.fspath(folder)) / name
    return [Path(f"{stem}.attention.png"), Path(f"{stem}.attention.npz"), Path(f"{stem}.attention.json")]


def save_attention(
    attention: WordMaps,
    images: Sequence[Any],
    prompts: Sequence[str],
    folder: str | os.PathLike,
    name: str,
    parameters: dict[str, Any],
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write each prompt row's image with its words' heat maps as one grid, the maps per word (.npz: keys
    row{R}_{K}_{word}), and the sidecar (with the words of each row), as one output set (NAME.attention)."""
    paths = attention_paths(folder, check_name(name))
    grid_path, maps_path, sidecar_path = paths
    rows = [
        [(image, prompt), *word_heatmaps(image, attention.per_word(row))]
        for row, (image, prompt) in enumerate(zip(images, prompts))
    ]
    # Any: numpy's stubs check **arrays against savez_compressed's own keyword allow_pickle (a bool)
    arrays: dict[str, Any] = {
        f"row{row}_{k:02d}_{slug(word, 24)}": np.asarray(values, dtype=np.float32)
        for row in range(len(prompts))
        for k, (word, values) in enumerate(attention.per_word(row))
    }
    grid = labelled_grid(rows, grid_height(images, ATTENTION_HEIGHT))

    def save_npz(tmp: Path) -> None:
        """Write the maps as a compressed .npz."""
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    words = [[word for word, _ in attention.per_word(row)] for row in range(len(prompts))]
    outputs = {"grid": grid_path.name, "maps": maps_path.name}
    sidecar = sidecar_data(parameters, outputs, {"words": words, **(extra or {})})
    with OutputSet(folder, f"{name}.attention", paths, overwrite) as files:
        return [
            files.write(grid_path, png_writer(grid, png_text(parameters))),
            files.write(maps_path, save_npz),
            files.write(sidecar_path, json_writer(sidecar)),
        ]
