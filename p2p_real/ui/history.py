"""The page's history: every edit of a page session (of its current photo) with its settings, to go back to,
to continue from ("edit this result": an edit of an edit, docs/design.md §13) and to undo.

Memory is bounded: the last HISTORY_LIMIT edits are kept, and only the newest LIVE_RESULTS keep their EditResult
(its images, maps and trajectory); an older edit is first saved as an inversion beside its files, from which
"edit this result" continues. No Gradio here. Design note: docs/page_tools.md ("History").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from p2p_real.ui.choices import EditChoices
from p2p_real.ui.studio import EditView, Studio, Workspace, continuation_path

HISTORY_LIMIT = 20  # edits kept per page session
LIVE_RESULTS = 4  # the newest edits that keep their EditResult in memory
THUMB_SIDE = 256  # longest side of a gallery picture


@dataclass
class HistoryEntry:
    """One edit: the workspace it was made in (its inversion, result and files), its settings and a thumbnail."""

    number: int  # 1, 2, ... in the order of the session's edits
    workspace: Workspace  # result None once the edit is no longer live (see `continuation`)
    choices: EditChoices
    thumbnail: Image.Image
    continuation: Path | None = None  # the edit saved as an inversion, once made

    @property
    def caption(self) -> str:
        """The caption of the inversion the edit was made from."""
        return self.workspace.inversion.prompt

    @property
    def label(self) -> str:
        """The gallery's caption: number, target and the settings that differ from the page's defaults."""
        c = self.choices
        parts = [f"{c.edit}", f"cross {c.cross_replace:g}", f"self {c.self_replace:g}"]
        if c.blend_source or c.blend_target:
            parts.append(f"blend {' '.join(c.blend_source)}:{' '.join(c.blend_target)} @{c.threshold:g}")
        if c.reweight_words and c.reweight != 1:
            parts.append(f"{' '.join(c.reweight_words)} x{c.reweight:g}")
        if c.mask is not None:
            parts.append(f"brush, {c.mask_mode}")
        return f"{self.number}: {c.target} ({', '.join(parts)})"


@dataclass
class History:
    """A page session's edits, oldest first, and the one shown (`current`)."""

    limit: int = HISTORY_LIMIT
    live: int = LIVE_RESULTS
    entries: list[HistoryEntry] = field(default_factory=list)
    current: int | None = None  # index into entries
    made: int = 0  # edits made in the session (numbers the entries)

    def add(self, ws: Workspace, choices: EditChoices | None = None) -> HistoryEntry:
        """Record the workspace's last edit (made with `choices`, default the workspace's) as the newest entry."""
        choices = choices or ws.choices
        if ws.result is None or choices is None:
            raise ValueError("there is no edit to record: edit the photo first")
        self.made += 1
        thumbnail = ws.result.images[1].copy()
        thumbnail.thumbnail((THUMB_SIDE, THUMB_SIDE))
        entry = HistoryEntry(self.made, replace(ws, files=list(ws.files)), choices, thumbnail)
        self.entries.append(entry)
        del self.entries[: max(0, len(self.entries) - self.limit)]
        for old in self.entries[: max(0, len(self.entries) - self.live)]:
            spill(old)
        self.current = len(self.entries) - 1
        return entry

    def entry(self, index: int | None) -> HistoryEntry:
        """The entry at `index` of the gallery (None: the one shown); ValueError if there is none."""
        if not self.entries:
            raise ValueError("there is no edit in the history yet: edit the photo first")
        index = self.current if index is None else index
        if index is None or not 0 <= index < len(self.entries):
            raise ValueError(f"there is no edit {index} in the history: it holds {len(self.entries)}")
        return self.entries[index]

    def select(self, index: int) -> HistoryEntry:
        """Show the entry at `index`."""
        entry = self.entry(index)
        self.current = index
        return entry

    def undo(self) -> HistoryEntry:
        """Go back one: show the entry before the one shown."""
        if self.current is None or self.current == 0:
            raise ValueError("nothing to undo: this is the first edit in the history")
        return self.select(self.current - 1)

    def gallery(self) -> list[tuple[Image.Image, str]]:
        """The entries as gallery items (thumbnail, label), oldest first."""
        return [(e.thumbnail, e.label) for e in self.entries]


def record(ws: Workspace) -> History:
    """Record the workspace's last edit in its history (started with its first edit); the history."""
    if ws.history is None:
        ws.history = History()
    ws.history.add(ws)
    return ws.history


def spill(entry: HistoryEntry) -> None:
    """Free an entry's EditResult, first saving the edit as an inversion (kept if saved already)."""
    result = entry.workspace.result
    if result is None:
        return
    path = continuation_path(entry.workspace)
    with contextlib.suppress(FileExistsError):  # continued already: the same edit
        result.as_inversion(1).save(path, replace=False)
    entry.continuation = path
    entry.workspace = replace(entry.workspace, result=None)


def restore(studio: Studio, entry: HistoryEntry, current: Workspace | None) -> tuple[Workspace, EditView]:
    """The entry as the page's workspace (with its history: the entry's snapshot holds it), in the session's folder
    of `current`, and what the page shows of it (its downloads published anew into that folder)."""
    ws = replace(entry.workspace, files=list(entry.workspace.files))
    ws.folder = current.folder if current is not None and studio.sessions.owns(current.folder) else None
    if ws.folder is None:
        ws.folder = studio.sessions.new()
    if ws.result is not None:
        after = ws.result.images[1]
    else:
        edited = next(p for p in ws.files if p.name.endswith(".1.png"))
        with Image.open(edited) as opened:
            after = opened.convert("RGB")
    mask, coverage = studio.mask(ws)
    heatmaps = studio.heatmaps(ws) if ws.result is not None else []
    downloads = studio.sessions.publish(ws.folder, ws.files)
    return ws, EditView(ws.original, after, mask, coverage, heatmaps, downloads, ws.command)
