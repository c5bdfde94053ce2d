"""Batch recipes: a JSON or YAML file of photos x edits, read into jobs (settings objects, never argv).

    {"model": "...", "out": "results", "defaults": {"method": "direct", "steps": 50},
     "photos": [{"photo": "cat.jpg", "prompt": "a cat sitting on a wall",
                 "edits": [{"target": "a dog sitting on a wall", "blend": "cat:dog"}]}],
     "edits": [{"target": "{prompt} at night"}]}

Photo keys: photo, prompt, name, method, steps, guidance, size, square, edits (and any edit key as a
default); edit keys: target(s), name, mask, seed and each edit setting's key (p2p_real.spec: edit, cross_replace,
self_replace, self_replace_max_res, blend, subtract, blend_threshold, blend_pool, blend_start, reweight, mask_mode,
feather). Values take the command line's text forms (p2p_real.notation; a list of them for a repeatable option) or
plain JSON: numbers, [start, end] pairs, {word: value} mappings, or the values of a sidecar's spec.
Paths are relative to the recipe. A photo may be a saved inversion (NAME.inv.safetensors): it is edited as
it is, its caption and settings read from the file (settings the recipe gives must match it). 'out' is a
folder inside the recipe's folder and names are plain file names, so that a recipe from elsewhere cannot write
elsewhere (`--out` chooses any folder). No torch here: a finished batch is recognised without loading anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from inversion import validation
from inversion.settings import InversionSettings
from inversion.storage.files import INVERSION_SUFFIX, safetensors_metadata
from inversion.validation import quoted
from p2p_real import notation
from p2p_real.batches.batch import CACHE_FOLDER, Job
from p2p_real.batches.recipe_yaml import AliasBombError, safe_load_bounded
from p2p_real.files.outputs import check_name, slug
from p2p_real.schema import Setting
from p2p_real.spec import KEYS, SCHEMA, EditSpec

MAX_RECIPE_BYTES = 10 << 20  # a recipe of 10,000 photos with their edits is about 2 MB
RECIPE_KEYS = {"model", "device", "dtype", "out", "seed", "defaults", "photos", "edits"}
PHOTO_KEYS = {"photo", "prompt", "name", "method", "steps", "guidance", "size", "square", "edits"}
EDIT_KEYS = {"target", "targets", "name", "mask", "seed", *KEYS.values()}
INVERSION_KEYS = {"method", "steps", "guidance", "size", "square"}
SPEC_NAMES = KEYS  # how a recipe spells the edit settings, for messages (p2p_real.spec)
SETTINGS_NAMES = {"num_inference_steps": "steps", "guidance_scale": "guidance"}


class RecipeError(ValueError):
    """A recipe that cannot be run; the message names the file and the place in it."""


def load_recipe(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML recipe (YAML needs pyyaml: pip install 'p2p-real[batch]') and check its top level."""
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path.name}: a recipe may be at most {MAX_RECIPE_BYTES:,} bytes")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise RecipeError(
                f"{path.name}: YAML recipes need pyyaml (pip install 'p2p-real[batch]'), or write the recipe as JSON"
            ) from None
        try:
            data = safe_load_bounded(text)
        except AliasBombError as exc:
            raise RecipeError(f"{path.name}: refused: {exc} (write the values out, or use 'defaults')") from exc
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path.name}: not valid YAML ({quoted(' '.join(str(exc).split()))})") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(
                f"{path.name}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path.name}: a recipe must be a mapping with a 'photos' list")
    _check_keys(data, RECIPE_KEYS, path.name)
    photos = data.get("photos")
    if not isinstance(photos, list) or not photos or not all(isinstance(p, dict) for p in photos):
        raise RecipeError(f"{path.name}: 'photos' must be a non-empty list of mappings (photo, prompt, edits)")
    return data


def _check_keys(mapping: Mapping[str, Any], allowed: set[str], where: str = "") -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise RecipeError(f"{prefix}unknown key {quoted(unknown[0])} (expected one of {', '.join(sorted(allowed))})")


def output_folder(recipe: Mapping[str, Any], path: Path, default: str) -> Path:
    """The recipe's 'out' (else `default`), relative to the recipe: a folder inside the recipe's folder."""
    value = recipe.get("out", default)
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(f"{path.name}: 'out' must be a folder name, got {quoted(value)}")
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.anchor or value.startswith("~") or ".." in posix.parts or ".." in windows.parts:
        raise RecipeError(
            f"{path.name}: 'out' must be a folder inside the recipe's folder, not {quoted(value)} "
            "(a recipe must not write elsewhere); pass --out DIR to write anywhere"
        )
    folder = path.parent / posix
    for inside in (folder, folder / CACHE_FOLDER):
        check_inside(inside, path, "'out'")
    return folder


def check_inside(folder: Path, recipe_path: Path, what: str) -> None:
    """RecipeError if `folder`, as far as it exists, leads out of the recipe's folder through a symbolic link."""
    base = recipe_path.parent.resolve()
    real = folder.resolve()
    if real != base and base not in real.parents:
        raise RecipeError(
            f"{recipe_path.name}: {what} {str(folder.relative_to(recipe_path.parent))!r} leads out of "
            "the recipe's folder through a symbolic link (a recipe must not write elsewhere); pass "
            "--out DIR to write anywhere"
        )


def check_job_folders(jobs: list[Job], recipe_path: Path) -> None:
    """RecipeError if a job's folder inside the recipe's 'out' is a link leading out of the recipe's folder."""
    for job in jobs:
        check_inside(job.folder, recipe_path, f"{job.where}'s folder")


def file_name(value: Any, fallback: str) -> str:
    """A recipe's name for a photo or edit (else the fallback, made one): a plain file name."""
    if value is None:
        return check_name(fallback.lstrip(".") or "photo")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = json.dumps(value)
    if not isinstance(value, str):
        raise ValueError(f"name must be a file name, got {quoted(value)}")
    return check_name(value, "name")


def is_inversion(path: Path) -> bool:
    """Whether a recipe's photo is a saved inversion rather than a photo."""
    return path.name.lower().endswith(".safetensors")


def stored_settings(path: Path) -> dict[str, Any]:
    """The caption and settings stored in a saved inversion (read without torch)."""
    try:
        meta = safetensors_metadata(path)
        if meta.get("format") != "p2p-real-inversion":
            raise ValueError(f"{path.name} is not an inversion saved by p2p-real")
        return {
            "prompt": meta["prompt"],
            "method": meta["method"],
            "steps": int(meta["num_inference_steps"]),
            "guidance": float(meta["guidance_scale"]),
        }
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"photo {quoted(str(path))} is not a readable inversion ({exc})") from exc


def _parsed(value: Any, parse: Callable[[str], Any], key: str) -> Any:
    """Text parsed with a notation parser (an error names the key); any other value as it is (the settings
    object checks it)."""
    if not isinstance(value, str):
        return value
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from exc


def _setting_value(setting: Setting, value: Any, n_targets: int) -> Any:
    """A recipe's value of one edit setting: its text form parsed as on the command line (for a repeatable setting,
    one text or a list of them), a {word: ...} mapping read by the setting, any other value as it is (EditSpec
    checks it)."""
    if setting.combine is None:
        return _parsed(value, setting.parse, setting.key)
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        entries = [_parsed(text, setting.parse, setting.key) for text in value]
        return setting.combine(entries, n_targets, setting.key)
    if isinstance(value, Mapping) and setting.mapping is not None:
        return setting.mapping(value, n_targets, setting.key)
    return value


def edit_spec(settings: Mapping[str, Any], n_targets: int) -> EditSpec:
    """The EditSpec of an edit entry (merged with its photo's and the recipe's defaults)."""
    values = {
        name: _setting_value(setting, settings[setting.key], n_targets)
        for name, setting in SCHEMA.items()
        if setting.key in settings
    }
    return EditSpec(**values, names=SPEC_NAMES)


def inversion_settings(photo: Mapping[str, Any], stored: Mapping[str, Any] | None = None) -> InversionSettings:
    """The inversion settings of a photo entry (merged with the recipe's defaults): resolved for a photo; for a
    saved inversion (`stored`: its own settings) those the entry leaves out are the inversion's."""
    size = photo.get("size")
    given = {
        "prompt": photo.get("prompt"),
        "method": photo.get("method"),
        "steps": _parsed(photo.get("steps"), notation.parse_whole, "steps"),
        "guidance": _parsed(photo.get("guidance"), notation.parse_number, "guidance"),
    }
    if stored is not None:
        given = {key: stored[key] if value is None else value for key, value in given.items()}
    settings = InversionSettings(
        prompt=given["prompt"],
        method=given["method"],
        num_inference_steps=given["steps"],
        guidance_scale=given["guidance"],
        size=tuple(size) if isinstance(size, list) else _parsed(size, notation.parse_size, "size"),
        square=photo.get("square", None if stored is not None else False),
        names=SETTINGS_NAMES,
    )
    return settings if stored is not None else settings.resolved()


def plan_jobs(
    recipe: Mapping[str, Any], recipe_path: Path, out: Path, model: str, device: str, dtype: str
) -> list[Job]:
    """Expand photos x edits into jobs, every setting checked; errors name the recipe and the entry."""
    defaults = recipe.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise RecipeError(f"{recipe_path.name}: 'defaults' must be a mapping")
    _check_keys(
        defaults,
        (PHOTO_KEYS | EDIT_KEYS) - {"photo", "prompt", "name", "edits", "target", "targets"},
        f"{recipe_path.name}: defaults",
    )
    shared_edits = list(recipe.get("edits") or [])
    run = {"model": model, "device": device, "dtype": dtype}
    jobs: list[Job] = []
    photo_names: set[str] = set()
    for i, photo in enumerate(recipe["photos"]):
        try:
            entry = {"seed": recipe.get("seed", 0), **defaults, **photo}
            jobs += _photo_jobs(entry, i, shared_edits, recipe_path.parent, out, run, photo_names)
        except ValueError as exc:
            raise RecipeError(f"{recipe_path.name}: photos[{i}]: {exc}") from exc
    return jobs


def _photo_jobs(
    photo: dict[str, Any],
    index: int,
    shared_edits: list[Any],
    base: Path,
    out: Path,
    run: dict[str, str],
    photo_names: set[str],
) -> list[Job]:
    """The jobs of one photo entry: its own edits, then the recipe's shared ones."""
    _check_keys(photo, PHOTO_KEYS | (EDIT_KEYS - {"target", "targets"}))
    if not isinstance(photo.get("photo"), str) or not photo["photo"].strip():
        raise ValueError("'photo' is required (a string)")
    path = (base / photo["photo"]).expanduser()
    try:
        found = path.is_file()
    except OSError as exc:  # a name too long for the file system
        raise ValueError(f"photo {quoted(str(path))} not found ({exc.strerror or exc})") from None
    if not found:
        raise ValueError(f"photo {quoted(str(path))} {'is not a file' if path.exists() else 'not found'}")
    stored = stored_settings(path) if is_inversion(path) else None
    if stored is not None and photo.get("prompt") is None:
        photo = {**photo, "prompt": stored["prompt"]}
    if not isinstance(photo.get("prompt"), str) or not photo["prompt"].strip():
        raise ValueError("'prompt' is required (a string)")
    stem = path.name[: -len(INVERSION_SUFFIX)] if path.name.lower().endswith(INVERSION_SUFFIX) else path.stem
    photo_name = file_name(photo.get("name"), stem)
    if photo_name in photo_names:
        raise ValueError(f"two photos are named {photo_name!r}; give one of them a 'name'")
    photo_names.add(photo_name)
    settings = inversion_settings(photo, stored)
    edits = list(photo.get("edits") or []) + shared_edits
    if not edits or not all(isinstance(e, dict) for e in edits):
        raise ValueError("needs a non-empty list of 'edits' (mappings with a 'target')")
    jobs: list[Job] = []
    edit_names: set[str] = set()
    for k, entry in enumerate(edits):
        try:
            jobs.append(_edit_job(photo, entry, k, index, path, photo_name, settings, base, out, run, edit_names))
        except ValueError as exc:
            raise ValueError(f"edits[{k}]: {exc}") from exc
    return jobs


def _edit_job(
    photo: dict[str, Any],
    entry: dict[str, Any],
    k: int,
    index: int,
    path: Path,
    photo_name: str,
    settings: InversionSettings,
    base: Path,
    out: Path,
    run: dict[str, str],
    edit_names: set[str],
) -> Job:
    _check_keys(entry, EDIT_KEYS)
    merged = {key: value for key, value in photo.items() if key not in PHOTO_KEYS}
    merged.update({key: value for key, value in entry.items() if key != "name"})
    targets = merged.pop("targets", None) or merged.pop("target", None)
    merged.pop("target", None)
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t.strip() for t in targets):
        raise ValueError("'target' (or 'targets') must be a prompt or a list of prompts")
    targets = [t.replace("{prompt}", photo["prompt"]) for t in targets]
    edit_name = file_name(entry.get("name"), f"{k + 1:02d}-{slug(targets[0], 40)}")
    if edit_name in edit_names:
        raise ValueError(f"two edits are named {edit_name!r}; give one of them a 'name'")
    edit_names.add(edit_name)
    mask = None if merged.get("mask") is None else (base / str(merged["mask"])).expanduser()
    if mask is not None and not mask.is_file():
        raise ValueError(f"mask {quoted(str(mask))} not found")
    seed = validation.seed(_parsed(merged.get("seed", 0), notation.parse_whole, "seed"), "seed")
    spec = edit_spec(merged, len(targets))
    return Job(
        f"photos[{index}].edits[{k}]",
        photo_name,
        edit_name,
        path,
        settings,
        targets,
        spec,
        mask,
        seed,
        out / photo_name,
        run,
        inversion=is_inversion(path),
    )
