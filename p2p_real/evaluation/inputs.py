"""What `evaluate` measures: photos with captions from a folder, or PIE-Bench's cases from its mapping_file.json.

A folder's captions come from captions.csv (columns photo, caption), captions.jsonl (one {"photo", "caption"}
object a line) or a sidecar PHOTO.txt beside each photo, in that order. A PIE-Bench folder holds
mapping_file.json and the photos under annotation_images/ (docs/evaluate.md, "Inputs").
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CSV_NAME, JSONL_NAME, SIDECAR_SUFFIX = "captions.csv", "captions.jsonl", ".txt"
MAPPING_NAME, PIE_IMAGES = "mapping_file.json", "annotation_images"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class EvaluationInputError(ValueError):
    """A folder, caption file or mapping file that evaluate cannot use; the message names it."""


@dataclass
class Case:
    """One photo to evaluate: its file and caption, and for a PIE-Bench case the edit and its mask."""

    name: str  # unique in the set, safe as a file name
    photo: Path
    caption: str
    target: str | None = None  # the editing prompt, brackets removed
    blend_words: tuple[list[str], list[str]] | None = None
    emphasised: list[str] = field(default_factory=list)  # the target's [bracketed] words
    mask_runs: list[int] | None = None  # PIE-Bench's run-length code of the edited region
    edit_type: str = ""


def _photos(folder: Path) -> list[Path]:
    """The photo files directly in `folder`, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def _folder(path: str | os.PathLike, what: str) -> Path:
    """An existing folder, else EvaluationInputError naming it."""
    folder = Path(os.fspath(path)).expanduser()
    if not folder.exists():
        raise EvaluationInputError(f"{what} {str(path)!r} not found")
    if not folder.is_dir():
        raise EvaluationInputError(f"{what} {str(path)!r} is not a folder")
    return folder


def _caption_table(folder: Path) -> tuple[dict[str, str], str | None]:
    """{photo file name: caption} from captions.csv or captions.jsonl, and which file it came from."""
    table: dict[str, str] = {}
    csv_path, jsonl_path = folder / CSV_NAME, folder / JSONL_NAME
    if csv_path.is_file():
        with csv_path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"photo", "caption"} <= set(reader.fieldnames):
                raise EvaluationInputError(
                    f"{csv_path}: the first line must name the columns photo and caption "
                    f"(found {', '.join(reader.fieldnames or []) or 'none'})"
                )
            for line, row in enumerate(reader, start=2):
                photo, caption = (row.get("photo") or "").strip(), (row.get("caption") or "").strip()
                if not photo or not caption:
                    raise EvaluationInputError(f"{csv_path}, line {line}: a photo and a caption are needed")
                table[photo] = caption
        return table, CSV_NAME
    if jsonl_path.is_file():
        for line, text in enumerate(jsonl_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise EvaluationInputError(f"{jsonl_path}, line {line}: not valid JSON ({exc.msg})") from exc
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("photo"), str)
                or not isinstance(row.get("caption"), str)
                or not row["caption"].strip()
            ):
                raise EvaluationInputError(
                    f"{jsonl_path}, line {line}: expected an object with the strings 'photo' and 'caption'"
                )
            table[row["photo"].strip()] = row["caption"].strip()
        return table, JSONL_NAME
    return table, None


def folder_cases(path: str | os.PathLike) -> list[Case]:
    """The photos of a folder with their captions; EvaluationInputError for a bad folder, a malformed captions
    file or a photo without a caption."""
    folder = _folder(path, "folder")
    photos = _photos(folder)
    if not photos:
        raise EvaluationInputError(f"folder {str(path)!r} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
    table, source = _caption_table(folder)
    unknown = sorted(set(table) - {p.name for p in photos})
    if unknown:
        raise EvaluationInputError(f"{folder / str(source)}: no photo {unknown[0]!r} in the folder")
    stems = [SAFE_NAME.sub("_", p.stem) for p in photos]
    cases = []
    for photo, stem in zip(photos, stems, strict=True):
        caption = table.get(photo.name)
        sidecar = photo.with_suffix(SIDECAR_SUFFIX)
        if caption is None and sidecar.is_file():
            caption = sidecar.read_text(encoding="utf-8").strip()
        if not caption:
            where = f"in {source} or " if source else f"({CSV_NAME}, {JSONL_NAME}) or in "
            raise EvaluationInputError(f"photo {photo.name!r} has no caption {where}{sidecar.name}")
        name = stem if stems.count(stem) == 1 else SAFE_NAME.sub("_", photo.name)  # cat.jpg and cat.png
        cases.append(Case(name, photo, caption))
    return unique(cases, folder)


def unique(cases: list[Case], where: Path) -> list[Case]:
    """The cases, once their names (the row files' stems) are known to differ."""
    seen: dict[str, Case] = {}
    for case in cases:
        if case.name in seen:
            raise EvaluationInputError(
                f"{where}: {seen[case.name].photo.name!r} and {case.photo.name!r} would share "
                f"the row name {case.name!r}; rename one"
            )
        seen[case.name] = case
    return cases


def split_brackets(prompt: str) -> tuple[str, list[str]]:
    """A PIE-Bench prompt without its brackets, and the words that were in brackets."""
    words = [" ".join(w.split()) for w in re.findall(r"\[([^\[\]]*)\]", prompt) if w.strip()]
    return " ".join(prompt.replace("[", "").replace("]", "").split()), words


def _entry_case(key: str, entry: Any, images: Path, mapping: Path) -> Case:
    """One mapping-file entry as a Case, checked."""
    where = f"{mapping}: entry {key!r}"
    if not isinstance(entry, dict):
        raise EvaluationInputError(f"{where} is not an object")
    for name in ("image_path", "original_prompt", "editing_prompt"):
        if not isinstance(entry.get(name), str) or not entry[name].strip():
            raise EvaluationInputError(f"{where}: '{name}' is missing or not a text")
    if not isinstance(entry.get("mask"), list):
        raise EvaluationInputError(f"{where}: 'mask' is missing or not a list of runs")
    photo = images / entry["image_path"]
    if not photo.is_file():
        raise EvaluationInputError(f"{where}: photo {str(photo)!r} not found")
    caption, _ = split_brackets(entry["original_prompt"])
    target, emphasised = split_brackets(entry["editing_prompt"])
    blended = str(entry.get("blended_word") or "").split()
    if blended and len(blended) != 2:
        raise EvaluationInputError(
            f"{where}: 'blended_word' must be two words (source, target) or empty, got {entry['blended_word']!r}"
        )
    blend = ([blended[0]], [blended[1]]) if blended else None
    return Case(
        SAFE_NAME.sub("_", key),
        photo,
        caption,
        target,
        blend,
        emphasised,
        list(entry["mask"]),
        str(entry.get("editing_type_id", "")),
    )


def pie_cases(path: str | os.PathLike) -> list[Case]:
    """PIE-Bench's cases from DIR/mapping_file.json (photos under DIR/annotation_images/);
    EvaluationInputError for a missing or malformed mapping file."""
    folder = _folder(path, "PIE-Bench folder")
    mapping = folder / MAPPING_NAME
    if not mapping.is_file():
        raise EvaluationInputError(f"PIE-Bench folder {str(path)!r} has no {MAPPING_NAME}")
    try:
        data = json.loads(mapping.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvaluationInputError(f"{mapping}: not valid JSON ({getattr(exc, 'msg', exc)})") from exc
    if not isinstance(data, dict) or not data:
        raise EvaluationInputError(f"{mapping}: expected an object of entries keyed by id")
    images = folder / PIE_IMAGES
    return unique([_entry_case(str(key), entry, images, mapping) for key, entry in sorted(data.items())], mapping)
