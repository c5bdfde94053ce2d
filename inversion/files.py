"""Writing files so that a reader never sees half of one: the one atomic write, and file hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

INVERSION_SUFFIX = ".inv.safetensors"  # the file ending of saved inversions


def _new_file_mode() -> int:
    """The permissions a plain open() would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], make_folder: bool = False) -> Path:
    """Call `write(tmp)` on a temporary file in the target's folder, flush it to disk (fsync), then rename it
    over `path`: readers see the old file or the whole new one, never a part. An existing file keeps its
    permissions. On any failure the temporary file is removed and the old file is left as it was."""
    target = Path(os.fspath(path))
    if make_folder:
        target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.is_file() else _new_file_mode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes, make_folder: bool = False) -> Path:
    """Write `data` to `path` atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), make_folder)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
