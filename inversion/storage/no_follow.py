"""Opening the files p2p-real writes or locks without following links: a symbolic link, FIFO, device or socket
at such a name is refused (NotRegularFileError), never written through, waited on or read without end.

See docs/reliability.md ("Files from elsewhere"): a shared recipe bundle may hold links where outputs go.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NON_BLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
_CLOSE_ON_EXEC = getattr(os, "O_CLOEXEC", 0)


class NotRegularFileError(OSError):
    """A name where p2p-real writes or locks a file is a link, FIFO, device or socket; it is left alone."""


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def refusal(path: str | os.PathLike, mode: int) -> NotRegularFileError:
    """The error for a name that is not a regular file (it is never followed nor written)."""
    return NotRegularFileError(
        errno.EPERM,
        f"is {_kind(mode)}, not a regular file; p2p-real does not write or "
        "lock through it: remove it or choose another folder or name",
        os.fspath(path),
    )


def check_not_special(path: str | os.PathLike) -> None:
    """NotRegularFileError if `path` exists (also as a dangling link) and is not a regular file or folder."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise refusal(path, mode)


def open_regular(path: str | os.PathLike, flags: int, mode: int = 0o666) -> int:
    """os.open(path, flags) without following a final symbolic link and without waiting on a FIFO; the file
    opened must be a regular file (NotRegularFileError otherwise, nothing written). Returns a blocking fd."""
    try:
        fd = os.open(path, flags | _NO_FOLLOW | _NON_BLOCK | _CLOSE_ON_EXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
            try:
                raise refusal(path, os.lstat(path).st_mode) from exc
            except FileNotFoundError:
                pass
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refusal(path, info.st_mode)
        if _NON_BLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file read without following a link, at most `limit` of them (ValueError if it is
    longer): never blocks on a FIFO nor reads a device without end."""
    fd = open_regular(path, os.O_RDONLY)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{Path(os.fspath(path)).name} is larger than {limit} bytes")
    return data


def read_fd(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes of an open file from its start (the position is left at the end of what was read)."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
