"""The page's history (p2p_real/ui/history.py, docs/page_tools.md "History"): every edit with its settings, going
back to one, undo, "edit this result" from any of them, and a bounded memory."""

import numpy as np
import pytest
import torch
from PIL import Image

from p2p_real.ui.choices import EditChoices
from p2p_real.ui.history import History, record, restore
from p2p_real.ui.studio import Studio
from tests.families import PHOTO_PROMPT

TARGETS = [PHOTO_PROMPT.replace("cat", w) for w in ("dog", "fox", "cow", "owl")]


@pytest.fixture(scope="module")
def studio(sd_editor, tmp_path_factory):
    return Studio(sd_editor, tmp_path_factory.mktemp("page-out"))


@pytest.fixture(scope="module")
def photo_file(photo, tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "cat.png"
    Image.fromarray(photo).save(path)
    return path


@pytest.fixture
def workspace(studio, photo_file):
    return studio.invert(photo_file, PHOTO_PROMPT, "direct", None)


def edit(studio, ws, history, target, **settings):
    """One edit on the page, recorded in the history; its EditResult."""
    choices = EditChoices(target, **settings)
    studio.edit(ws, choices)
    history.add(ws, choices)
    return ws.result


def test_every_edit_is_recorded_with_its_settings_and_shown(studio, workspace):
    history = History()
    edit(studio, workspace, history, TARGETS[0])
    edit(studio, workspace, history, TARGETS[1], blend_source=("cat",), blend_target=("fox",), threshold=0.4)
    assert [e.choices.target for e in history.entries] == TARGETS[:2] and history.current == 1
    assert history.entries[1].choices.threshold == 0.4
    (first, first_label), (second, label) = history.gallery()
    assert first_label.startswith(f"1: {TARGETS[0]}") and label.startswith(f"2: {TARGETS[1]}")
    assert "blend cat:fox @0.4" in label and "blend" not in first_label
    assert max(second.size) <= 256
    assert history.entries[0].workspace.result is not history.entries[1].workspace.result


def test_selecting_an_entry_gives_back_its_settings_and_its_edit(studio, workspace):
    history = History()
    results = [edit(studio, workspace, history, t, cross_replace=c) for t, c in zip(TARGETS[:2], (0.4, 0.9))]
    entry = history.select(0)
    assert history.current == 0 and entry.choices == EditChoices(TARGETS[0], cross_replace=0.4)
    ws, view = restore(studio, entry, workspace)
    assert ws.result is results[0] and ws.command == entry.workspace.command and TARGETS[0] in view.command
    assert np.array_equal(np.asarray(view.after), np.asarray(results[0].images[1]))
    assert ws.folder == workspace.folder and {p.name for p in view.files} == {p.name for p in ws.files}
    assert all(p.parent == workspace.folder for p in view.files)  # published anew for this session


def test_undo_goes_back_one(studio, workspace):
    history = History()
    with pytest.raises(ValueError, match="nothing to undo"):
        history.undo()
    for target in TARGETS[:2]:
        edit(studio, workspace, history, target)
    assert history.undo().choices.target == TARGETS[0] and history.current == 0
    with pytest.raises(ValueError, match="nothing to undo"):
        history.undo()
    with pytest.raises(ValueError, match="no edit 7"):
        history.select(7)


def test_memory_is_bounded_and_old_edits_can_still_be_continued(studio, workspace):
    history = History(limit=2, live=1)
    results = [edit(studio, workspace, history, t) for t in TARGETS[:3]]
    assert [e.number for e in history.entries] == [2, 3]  # the oldest edit dropped
    assert [e.workspace.result is not None for e in history.entries] == [False, True]  # only the newest kept
    assert history.entries[0].continuation.is_file()
    for entry, res in zip(history.entries, results[1:]):  # spilled and live
        ws = studio.continue_edit(restore(studio, entry, workspace)[0])
        assert ws.origin == "continued" and ws.inversion.prompt == entry.choices.target and ws.result is None
        again = studio.editor.edit(ws.inversion, "a photo of a bird", output_type="latent", progress=False)
        assert torch.equal(again.images[0:1], res.latents[1:2])  # continues exactly that edit (design.md §13)


def test_an_entry_without_an_edit_is_refused(studio, workspace):
    with pytest.raises(ValueError, match="edit the photo first"):
        History().add(workspace, EditChoices(TARGETS[0]))
    with pytest.raises(ValueError, match="no edit in the history"):
        History().entry(None)


def test_the_workspace_keeps_its_history_through_edits_restores_and_continues(studio, workspace):
    studio.edit(workspace, EditChoices(TARGETS[0]))
    history = record(workspace)
    studio.edit(workspace, EditChoices(TARGETS[1], cross_replace=0.5))
    assert record(workspace) is history and [e.choices.target for e in history.entries] == TARGETS[:2]
    ws, _ = restore(studio, history.select(0), workspace)
    assert ws.history is history and ws.choices == EditChoices(TARGETS[0])  # the choices the edit was made with
    assert studio.continue_edit(ws).history is history  # edits of the continued photo join the same history
