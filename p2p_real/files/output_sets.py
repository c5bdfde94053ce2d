"""Output sets: the files of one result (NAME.* in a folder), written by one run at a time, all or nothing.

A run reserves NAME in a folder by holding an operating-system lock on FOLDER/.NAME.p2p-lock (released by the
kernel when the process ends, however it ends) and writes into that file a journal: its process, machine and
the files of the set. A run that ends, also with an error, removes the file. So:
- a second run on the same NAME finds the lock held and stops at once with an OutputsBusyError (never waits);
- a lock file that can be taken but holds a journal was left by a run that was killed: the files it lists are
  an unfinished set, which the next run on NAME may replace (completing the set) without `overwrite`.
OutputSet writes the files: none is replaced unless allowed (also not one that appears meanwhile), the old
sidecar goes first when a set is rewritten, and if a write fails the files this run created are removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from inversion.storage.files import atomic_write, host_tag, remove_stale_temporaries
from inversion.storage.no_follow import NotRegularFileError, check_not_special, open_regular, read_fd, read_regular

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]  # the module or None: its uses check which
    import msvcrt

LOCK_SUFFIX = ".p2p-lock"
JOURNAL_LIMIT = 1 << 20  # bytes of a lock file's journal that are read (a journal is a few hundred)


class OutputsBusyError(OSError):
    """Another run that is still going reserved the same outputs."""


class OutputExistsError(FileExistsError):
    """An output exists and may not be replaced; `.path` is the file."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} exists; it is replaced only with overwrite (--overwrite)")
        self.path = path


def lock_path(folder: str | os.PathLike, name: str) -> Path:
    """The lock (and journal) file of the output set NAME in `folder`."""
    return Path(os.fspath(folder)) / f".{name}{LOCK_SUFFIX}"


def read_journal(path: Path) -> dict[str, Any]:
    """A lock file's journal ({} when there is none or it cannot be read; a link or FIFO is not followed)."""
    try:
        data = json.loads(read_regular(path, JOURNAL_LIMIT).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def unfinished_files(folder: str | os.PathLike, name: str) -> set[str]:
    """Names of the files that a run which stopped early (or still runs) listed for the set NAME in `folder`."""
    files = read_journal(lock_path(folder, name)).get("files")
    return {str(f) for f in files} if isinstance(files, list) else set()


def _try_lock(fd: int) -> bool:
    """Take the lock of an open file without waiting; False if another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
            return False
        raise
    return True


class Reservation:
    """The lock on an output set, held by this process (re-entrant within one thread)."""

    def __init__(self, folder: Path, name: str, fd: int, unfinished: dict[str, Any], made: list[Path]) -> None:
        self.folder, self.name, self.path = folder, name, lock_path(folder, name)
        self.unfinished = unfinished  # the journal of a run that was killed while writing this set, else {}
        self.made = made  # the folders reserve() created, deepest first: removed again if left empty
        self.keep = False  # keep the journal when released: files were replaced, the set is unfinished
        self._fd, self._depth, self._thread = fd, 1, threading.get_ident()

    def may_replace(self, path: Path) -> bool:
        """Whether `path` belongs to the unfinished set a killed run left."""
        files = self.unfinished.get("files")
        return isinstance(files, list) and path.name in files

    def release(self) -> None:
        """Give the lock up (the outermost release): remove the lock file unless the set was left unfinished."""
        with _GUARD:
            self._depth -= 1
            if self._depth > 0:
                return
            _HELD.pop(os.path.abspath(self.path), None)
        try:
            if not self.keep and fcntl is not None:
                self.path.unlink(missing_ok=True)  # while locked: another run re-checks the file after locking
        finally:
            os.close(self._fd)
        if not self.keep and fcntl is None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        for folder in [] if self.keep else self.made:
            try:
                folder.rmdir()  # only if empty: a run that wrote nothing leaves nothing
            except OSError:
                break

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_HELD: dict[str, Reservation] = {}
_GUARD = threading.Lock()


def _busy(folder: Path, name: str, path: Path) -> OutputsBusyError:
    journal = read_journal(path)
    who = f"process {journal['pid']}" if "pid" in journal else "another process"
    return OutputsBusyError(
        f"another p2p-real run ({who}) is writing {name}.* in {folder}; wait for it to finish, "
        "or choose another output folder or name"
    )


def reserve(folder: str | os.PathLike, name: str, files: Iterable[str | os.PathLike] = ()) -> Reservation:
    """Reserve the output set NAME in `folder` (created if missing) for this run, recording `files` in its
    journal; OutputsBusyError if another run holds it, an OSError naming the folder if it cannot be written."""
    folder = Path(os.fspath(folder))
    path = lock_path(folder, name)
    with _GUARD:
        held = _HELD.get(os.path.abspath(path))
        if held is not None:
            if held._thread != threading.get_ident():
                raise _busy(folder, name, path)
            held._depth += 1
            return held
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        for attempt in range(100):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = open_regular(path, os.O_RDWR | os.O_CREAT, 0o666)  # never through a link or FIFO
            except FileNotFoundError:
                if attempt == 99:
                    raise
                continue  # another run removed the folder it had made, empty, just now
            if not _try_lock(fd):
                os.close(fd)
                raise _busy(folder, name, path)
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the file was removed by its last holder between our open and lock: take the new one
        else:
            raise OSError(errno.EAGAIN, "could not take the lock", str(path))
        try:
            previous = json.loads(read_fd(fd, JOURNAL_LIMIT).decode("utf-8") or "{}")
        except ValueError:
            previous = {}
        previous = previous if isinstance(previous, dict) else {}
        journal = {
            "pid": os.getpid(),
            "host": host_tag(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "files": sorted(
                {Path(os.fspath(f)).name for f in files}
                | set(previous.get("files", []) if isinstance(previous.get("files"), list) else [])
            ),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(journal).encode())
    except (OutputsBusyError, NotRegularFileError):
        raise
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write outputs into this folder ({exc.strerror or exc})", str(folder)) from exc
    reservation = Reservation(folder, name, fd, previous, made)
    with _GUARD:
        _HELD[os.path.abspath(path)] = reservation
    return reservation


class OutputSet:
    """Writes the files of one output set all or nothing: `with OutputSet(...) as out: out.write(path, fn)`.

    `paths` are the set's files, its sidecar last. An existing file is replaced only with `overwrite`, when it is
    in `replaceable`, or when a killed run left it as part of this unfinished set; otherwise OutputExistsError
    before anything is written. A sidecar to be replaced is removed first, so that it never vouches for a mixed
    set. If the block raises, the files this set created are removed again.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        name: str,
        paths: Sequence[Path],
        overwrite: bool = False,
        replaceable: Iterable[Path] = (),
    ) -> None:
        self.folder, self.name, self.paths = Path(os.fspath(folder)), name, list(paths)
        self.overwrite, self.replaceable = overwrite, {Path(p) for p in replaceable}
        self.created: list[Path] = []

    def may_replace(self, path: Path) -> bool:
        """Whether an existing `path` may be replaced by this set."""
        return self.overwrite or path in self.replaceable or self.reservation.may_replace(path)

    def __enter__(self) -> OutputSet:
        self.reservation = reserve(self.folder, self.name, self.paths)
        try:
            for path in self.paths:
                check_not_special(path)  # a link (also a dangling one) or FIFO: refused before anything is written
                if path.is_dir():
                    raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
                if os.path.lexists(path) and not self.may_replace(path):
                    raise OutputExistsError(path)
            remove_stale_temporaries(self.folder)
            sidecar = self.paths[-1] if self.paths else None
            if sidecar is not None and sidecar.exists():
                self.reservation.keep = True  # the old set is being rewritten: unfinished until the new sidecar
                sidecar.unlink()
        except BaseException:
            self.reservation.release()
            raise
        return self

    def write(self, path: Path, write: Callable[[Path], object]) -> Path:
        """Write one file of the set atomically (see inversion.storage.files.atomic_write), never replacing one that
        may not be replaced."""
        existed = os.path.lexists(path)
        if existed:
            self.reservation.keep = True
        else:
            self.created.append(path)  # before the write: an interrupt just after the rename still removes it
        try:
            atomic_write(path, write, make_folder=True, replace=existed and self.may_replace(path))
        except FileExistsError:
            if not existed:
                self.created.remove(path)  # another writer's file appeared meanwhile: not ours to remove
            raise
        return path

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                self.reservation.keep = False
            else:
                for path in reversed(self.created):
                    path.unlink(missing_ok=True)
        finally:
            self.reservation.release()
