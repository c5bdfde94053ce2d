"""Saved inversions found again by photo and settings, so that editing a photo again skips inverting it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inversion.artifact import ArtifactError, Inversion, MismatchError
from inversion.fingerprint import pipeline_fingerprint
from inversion.photos.image import Source, pixel_sha256, read_rgb
from inversion.settings import InversionSettings
from inversion.storage.files import INVERSION_SUFFIX, file_sha256, remove_stale_temporaries
from inversion.validation import quoted


class CachedMismatchError(MismatchError):
    """A cache with replace=False holds an inversion of this photo's name that does not fit."""


def photo_name(image: Source) -> str:
    """A file-name stem for a photo: the file's stem, or "photo" for an in-memory image."""
    if isinstance(image, (str, os.PathLike)):
        stem = " ".join(Path(os.fspath(image)).stem.replace("\\", "_").split())
        return "".join(c for c in stem if c.isprintable()).lstrip(".") or "photo"
    return "photo"


def cache_name(name: str) -> str:
    """A name for a cached inversion: a plain file name that stays in the cache's folder, else ValueError."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"the inversion cache's name must be a non-empty string, got {quoted(name)}")
    if "/" in name or "\\" in name or name.startswith(".") or not name.isprintable() or name != name.strip():
        raise ValueError(
            f"the inversion cache's name {quoted(name)} must be a plain file name (no folders, not "
            "starting with '.'): it must stay in the cache's folder"
        )
    return name


class InversionCache:
    """Inversions saved in one folder and found again by photo and settings.

    `keyed=True` names each file after the photo and a hash of its content, the settings and the model
    (NAME.<key>.inv.safetensors), so inversions of one photo with other settings sit side by side;
    `keyed=False` keeps one file per photo name (NAME.inv.safetensors, what `p2p-real edit` writes).
    Whatever the file name, a saved inversion is only used after `Inversion.check_matches` accepts it for
    the photo, the settings and the model. One that does not fit is replaced (`replace=True`) or refused
    with a CachedMismatchError (`replace=False`).
    A keyed cache remembers the last inversion it found or saved, so that the next edits of the same photo (a
    batch's jobs) neither load nor check its file again while the file is unchanged: its key already names the
    photo's content, the settings and the model.
    """

    def __init__(self, folder: str | os.PathLike, keyed: bool = True, replace: bool = True) -> None:
        self.folder = Path(os.fspath(folder)).expanduser()
        self.keyed = keyed
        self.replace = replace
        self._last: tuple[Path, tuple[int, int], Inversion] | None = None  # path, (mtime_ns, size), inversion

    def _remember(self, path: Path, inv: Inversion) -> None:
        if self.keyed:
            stat = path.stat()
            self._last = (path, (stat.st_mtime_ns, stat.st_size), inv)

    def _remembered(self, path: Path) -> Inversion | None:
        if self._last is None or self._last[0] != path:
            return None
        stat = path.stat()
        return self._last[2] if self._last[1] == (stat.st_mtime_ns, stat.st_size) else None

    def __repr__(self) -> str:
        return f"InversionCache({str(self.folder)!r}, keyed={self.keyed}, replace={self.replace})"

    def path(self, image: Source, settings: InversionSettings, pipe: Any, name: str | None = None) -> Path:
        """Where the inversion of `image` with `settings` (resolved) on `pipe`'s model is kept."""
        name = cache_name(name or photo_name(image))
        if not self.keyed:
            return self.folder / f"{name}{INVERSION_SUFFIX}"
        if isinstance(image, (str, os.PathLike)):
            content = file_sha256(Path(os.fspath(image)).expanduser())
        else:
            content = pixel_sha256(read_rgb(image)[0])
        model = [pipeline_fingerprint(pipe), str(pipe.unet.dtype)]
        key = json.dumps([content, settings.resolved().to_dict(), model], sort_keys=True)
        return self.folder / f"{name}.{hashlib.sha256(key.encode()).hexdigest()[:12]}{INVERSION_SUFFIX}"

    def find(
        self, image: Source, settings: InversionSettings, pipe: Any, name: str | None = None
    ) -> tuple[Inversion | None, str]:
        """(the saved inversion, "") if one fits the photo, settings and model; else (None, why not), why
        being "" when nothing is saved. With replace=False a saved one that does not fit raises CachedMismatchError."""
        path = self.path(image, settings, pipe, name)
        if not path.exists():
            return None, ""
        remembered = self._remembered(path)
        if remembered is not None:
            return remembered, ""
        try:
            inv = Inversion.load(path)
            inv.check_matches(settings.resolved(), image, pipe)
        except ArtifactError as exc:
            if not self.replace:
                raise CachedMismatchError(f"{path} exists but does not fit ({exc})") from exc
            return None, str(exc)
        self._remember(path, inv)
        return inv, ""

    def save(
        self, inv: Inversion, image: Source, settings: InversionSettings, pipe: Any, name: str | None = None
    ) -> Path:
        """Save `inv` where `find` looks for it (the folder is created; temporary files that a killed run left
        there are removed)."""
        path = self.path(image, settings, pipe, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        saved = inv.save(path)
        self._remember(path, inv)
        return saved

    def get(
        self,
        image: Source,
        settings: InversionSettings,
        pipe: Any,
        invert: Callable[[], Inversion],
        name: str | None = None,
        log: Callable[[str], None] | None = None,
        save: bool = True,
    ) -> tuple[Inversion, str]:
        """(the saved inversion, "reused") if one fits, else (invert(), "fresh") after saving it here.
        `log` hears why a saved one did not fit before it is replaced. `save=False` leaves saving a fresh
        inversion to the caller (`save`), e.g. once the edit it is for has succeeded."""
        found, why = self.find(image, settings, pipe, name)
        if found is not None:
            return found, "reused"
        if why and log is not None:
            log(f"saved inversion unusable ({why}), inverting again")
        inv = invert()
        if save:
            self.save(inv, image, settings, pipe, name)
        return inv, "fresh"
