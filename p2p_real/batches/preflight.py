"""The checks a request passes before any model loads: its images can be read, its outputs may be written (never over
an input, a link or a folder; an existing file only with overwrite) and their folders can be written.

A request's files are one output set (p2p_real.files.output_sets): `Outputs.reserved` holds the set for the run and
checks the files again under its lock. Errors are PlanErrors (ValueError) naming the file; they spell the options as
the command line does (--out, --name, --overwrite), which batches share. Design note: docs/design.md §9.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2p_real.files.output_sets import Reservation


class PlanError(ValueError):
    """A request that cannot run as asked: an unreadable image, an output that may not be written."""


def check_images(photo: Path | None, mask: Path | None = None) -> None:
    """Read the photo (and mask) before the model loads, so that a bad file fails at once."""
    if mask is not None:
        from masks.paste import MaskError, read_mask_file  # PIL's warnings become its errors

        try:
            read_mask_file(mask)
        except MaskError as exc:
            reason = " ".join(str(exc).split(": ", 1)[-1].split())
            raise PlanError(f"mask {str(mask)!r} is not a readable image ({reason})") from exc
    if photo is not None:
        from inversion.photos.image import read_rgb

        read_rgb(photo)


def check_outputs(
    paths: Sequence[Path],
    overwrite: bool,
    inputs: Sequence[Path | None] = (),
    name: str | None = None,
    replaceable: Sequence[Path] = (),
) -> None:
    """Refuse to write over an input, or over an existing output without overwrite (files of the unfinished output
    set `name` that a killed run left, and `replaceable`, may be replaced), through a link, or where a folder is."""
    from p2p_real.files.output_sets import unfinished_files

    protected = {p.resolve() for p in inputs if p is not None}
    for path in paths:
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise PlanError(f"cannot write {path}: {parent} is a file, not a folder")
        if path.resolve() in protected:
            raise PlanError(f"refusing to write {path} over an input file; choose another --out or --name")
        if path.is_dir():
            raise PlanError(f"cannot write {path}: it is a folder")
        if os.path.islink(path) or (path.exists() and not path.is_file()):  # never written through, even dangling
            raise PlanError(
                f"cannot write {path}: it is a symbolic link or a special file, not a regular file; "
                "remove it or choose another --out or --name"
            )
        ours = path in replaceable or (name is not None and path.name in unfinished_files(path.parent, name))
        if os.path.lexists(path) and not overwrite and not ours:
            raise PlanError(f"{path} exists; pass --overwrite to replace it, or choose another --out or --name")


def check_writable(folder: Path) -> None:
    """Refuse an output folder that cannot be written (or made): read-only, no permission, a file."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PlanError(f"cannot write into {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        where = "" if existing == folder else f"{existing} cannot be written ("
        raise PlanError(
            f"cannot write into {folder}: {where}permission denied or a read-only file system"
            f"{')' if where else ''}; choose another --out"
        )


@dataclass(frozen=True)
class Outputs:
    """One output set: the files a request writes as FOLDER/NAME.*, never over one of `inputs`."""

    folder: Path
    name: str  # the set's name (its lock is FOLDER/.NAME.p2p-lock)
    files: tuple[Path, ...]
    overwrite: bool = False  # existing files may be replaced
    inputs: tuple[Path | None, ...] = ()  # the request's input files (None where not given)

    def check(self) -> None:
        """The files may be written (see check_outputs) and the folder can be."""
        check_outputs(self.files, self.overwrite, self.inputs, self.name)
        check_writable(self.folder)

    @contextlib.contextmanager
    def reserved(self, log: Callable[[str], None] | None = None) -> Iterator[Reservation]:
        """Hold the set for this run, checking its files again under the lock; another run writing it, or a folder
        that cannot be written, is a PlanError. `log` hears when a set a killed run left is completed."""
        from inversion.storage.no_follow import NotRegularFileError
        from p2p_real.files.output_sets import OutputsBusyError, reserve

        try:
            reservation = reserve(self.folder, self.name, self.files)
        except OutputsBusyError as exc:
            raise PlanError(str(exc).replace("output folder or name", "--out or --name")) from exc
        except NotRegularFileError as exc:
            raise PlanError(f"{exc.filename} {exc.strerror}") from exc
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise PlanError(f"cannot write into {self.folder}: {reason}; choose another --out") from exc
        with reservation:
            if reservation.unfinished and log is not None:
                pid = reservation.unfinished.get("pid")
                log(f"completing {self.name} in {self.folder}: a run (process {pid}) stopped before it finished")
            mine = [p for p in self.files if reservation.may_replace(p)]
            check_outputs(self.files, self.overwrite, self.inputs, None, mine)
            yield reservation
