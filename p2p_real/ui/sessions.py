"""The page's per-session folders: what one page session may download, and nothing else.

The page never serves the user's output folder (`--out`): the files of an edit are written there for the user,
and copies of the ones offered for download go to a folder of the session's own, inside a private temporary root
(mode 0700) that exists while the page runs. A session's folder (and its state) is freed when the session ends:
its tab closes, or it has been idle for SESSION_IDLE_S seconds. See docs/reliability.md ("The page").
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TypeGuard

SESSION_IDLE_S = 3600  # a page session that neither inverts nor edits for this long is freed (state and files)
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the largest photo the page accepts (a 100-megapixel JPEG is about 30 MB)


class SessionFolders:
    """A private root (removed with `close`) holding one folder per page session."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="p2p-ui-"))  # mode 0700: this user's only
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.root), True)  # also when the process exits

    def new(self) -> Path:
        """A new, empty folder for one session (an unguessable name)."""
        return Path(tempfile.mkdtemp(prefix="session-", dir=self.root))

    def publish(self, folder: Path, files: Iterable[Path]) -> list[Path]:
        """Copies of `files` in the session's `folder` (the ones the page may hand to this session)."""
        if not self.owns(folder):
            raise ValueError(f"{folder} is not a session folder of this page")
        folder.mkdir(mode=0o700, exist_ok=True)
        copies = []
        for path in files:
            copy = folder / path.name
            copy.unlink(missing_ok=True)
            try:
                os.link(path, copy)  # same file system: no second copy of an inversion
            except OSError:
                shutil.copyfile(path, copy, follow_symlinks=False)
            copies.append(copy)
        return copies

    def owns(self, folder: Path | None) -> TypeGuard[Path]:
        """Whether `folder` is a session folder of this root."""
        return folder is not None and Path(folder).parent == self.root

    def forget(self, folder: Path | None) -> None:
        """Remove a session's folder and what it holds (nothing else)."""
        if self.owns(folder):
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Remove the root and every session's folder."""
        self._remove()
