"""Writing files so that a reader never sees half of one: the one atomic write, its temporary files, and hashes.

A temporary file is named `.FILE.p2p-HOST-PID-RANDOM.tmp` next to FILE, so that one left behind by a process
that was killed can be recognised and removed by the next run (`remove_stale_temporaries`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from inversion.storage.no_follow import open_regular

INVERSION_SUFFIX = ".inv.safetensors"  # the file ending of saved inversions
_TEMPORARY = re.compile(r"^\..+\.p2p-(?P<host>[a-z0-9]*)-(?P<pid>\d+)-[^.]*\.tmp$")
# hard links unsupported (FAT, some network shares): reserve the name with O_EXCL instead
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _new_file_mode() -> int:
    """The permissions a plain open() would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def host_tag() -> str:
    """This machine's name as it appears in temporary file names (lower-case letters and digits, at most 12)."""
    return re.sub(r"[^a-z0-9]", "", socket.gethostname().lower())[:12]


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (assumed so where that cannot be asked)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def _commit_new(tmp: Path, target: Path) -> None:
    """Move `tmp` to `target` only if `target` does not exist (FileExistsError otherwise), atomically."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # FileExistsError if taken
        try:
            os.replace(tmp, target)
        except BaseException:
            target.unlink(missing_ok=True)  # the empty placeholder made just now
            raise
        return
    tmp.unlink()


def _naming(exc: OSError, target: Path) -> OSError:
    """The error of writing `target`, naming `target` (not the temporary file)."""
    if isinstance(exc, FileExistsError):
        return FileExistsError(
            errno.EEXIST, "exists already (another run may have written it meanwhile); it was not replaced", str(target)
        )
    if exc.errno is not None:
        return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(target))
    return OSError(f"{target}: {exc}")


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], object], make_folder: bool = False, replace: bool = True
) -> Path:
    """Call `write(tmp)` on a temporary file in the target's folder, flush it to disk (fsync), then move it to
    `path`: readers see the old file or the whole new one, never a part. With `replace=False` an existing file
    is never replaced, also one that appeared while `write` ran: FileExistsError. An existing file keeps its
    permissions. On any failure the temporary file is removed, the old file is left as it was, and an OSError
    names `path` (e.g. a full disk)."""
    target = Path(os.fspath(path))
    if make_folder:
        target.parent.mkdir(parents=True, exist_ok=True)
    if not replace and os.path.lexists(target):  # also a dangling link: found before the work, never followed
        raise _naming(FileExistsError(errno.EEXIST, "exists", str(target)), target)
    mode = target.lstat().st_mode & 0o777 if target.is_file() and not target.is_symlink() else _new_file_mode()
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.p2p-{host_tag()}-{os.getpid()}-", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise _naming(exc, target) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        fd = open_regular(tmp, os.O_RDONLY)  # still our regular file, not a link swapped in while it was written
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        if replace:
            os.replace(tmp, target)
        else:
            _commit_new(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _naming(exc, target) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes, make_folder: bool = False, replace: bool = True) -> Path:
    """Write `data` to `path` atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), make_folder, replace)


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of atomic_write in `folder` that were left by processes of this machine that no
    longer run (a kill during a write); return them. Others' files and live writers' are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    host = host_tag()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and match["host"] == host and not process_alive(int(match["pid"])) and entry.is_file():
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except FileNotFoundError:
                pass
    return removed


def safetensors_metadata(path: str | os.PathLike, limit: int = 1 << 20) -> dict[str, str]:
    """The text metadata of a safetensors file, read without torch; ValueError if the file is not one."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else 0
        if not 0 < size <= limit:
            raise ValueError(f"{Path(os.fspath(path)).name} is not a safetensors file")
        try:
            header = json.loads(handle.read(size))
        except ValueError as exc:
            raise ValueError(f"{Path(os.fspath(path)).name} is not a safetensors file") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
