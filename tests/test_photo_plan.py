"""Plan, then run (docs/design.md §9, "The command line"): a request on a photo is checked whole before anything slow,
its plan lists the files it will write and running it writes exactly those, and the path of an edit from the
command to its files never calls back up into command-line code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inversion.cache import InversionCache
from inversion.settings import InversionSettings
from p2p_real import Editor, EditSpec
from p2p_real.batches.photo_plan import Outputs, PhotoRequest, plan_photo
from p2p_real.files.outputs import edit_paths
from tests.helpers import CAT, DOG, draw_photo

STEPS = 2


@pytest.fixture(scope="module")
def plan_editor(tiny_pipe):
    return Editor(tiny_pipe, num_inference_steps=STEPS)


@pytest.fixture
def slow_work(plan_editor, monkeypatch):
    """Every UNet pass and every call of Editor.invert inside the test."""
    calls: list[str] = []
    handle = plan_editor.pipe.unet.register_forward_pre_hook(lambda module, args: calls.append("unet"))
    real = Editor.invert
    monkeypatch.setattr(Editor, "invert", lambda *a, **k: (calls.append("invert"), real(*a, **k))[1])
    yield calls
    handle.remove()


def edit_request(folder: Path, photo: Path, spec: EditSpec | None = None, **changes) -> PhotoRequest:
    """An edit of `photo` (CAT -> DOG) into FOLDER/photo.*, its inversion saved as FOLDER/photo.inv.safetensors."""
    spec = spec or EditSpec(blend_words=(["cat"], ["dog"]))
    files = tuple(edit_paths(folder, "photo", 2, spec.blend_words is not None).all())
    request = PhotoRequest(
        photo,
        InversionSettings(CAT, "ddim", STEPS),
        targets=[DOG],
        spec=spec,
        outputs=Outputs(folder, "photo", files, inputs=(photo,)),
        cache=InversionCache(folder, keyed=False, replace=False),
        name="photo",
    )
    for key, value in changes.items():
        setattr(request, key, value)
    return request


def test_a_plan_lists_the_files_it_will_write_and_run_writes_exactly_those(plan_editor, tmp_path):
    photo = draw_photo(tmp_path / "photo.png")
    out = tmp_path / "out"
    plan = plan_photo(plan_editor, edit_request(out, photo))
    assert plan.source == "fresh" and plan.files[0] == out / "photo.inv.safetensors"
    assert [p.name for p in plan.files[1:]] == [
        "photo.0.png",
        "photo.1.png",
        "photo.1.mask.png",
        "photo.grid.png",
        "photo.json",
    ]
    assert plan.describe()[0].startswith(f"invert {photo} (ddim, {STEPS} steps) and save it as ")
    assert not out.exists()  # planning wrote nothing
    calls_into_commands: list[str] = []

    def watch(frame, event, arg):
        if event == "call" and f"{Path('p2p_real', 'commands')}" in frame.f_code.co_filename:
            calls_into_commands.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(watch)
    try:
        with plan.reserved():
            written = plan.run({"caller": "test"}, seed=0, progress=False)
    finally:
        sys.setprofile(None)
    assert calls_into_commands == []  # the library never calls back up into command-line code
    assert written == plan.files and sorted(out.iterdir()) == sorted(plan.files)
    outputs = Outputs(out, "photo", plan.request.outputs.files, overwrite=True, inputs=(photo,))
    again = plan_photo(plan_editor, edit_request(out, photo, outputs=outputs))
    assert again.source == "reused" and again.files == list(again.request.outputs.files)  # nothing new to invert
    assert again.describe()[0] == f"reuse {out / 'photo.inv.safetensors'} (ddim, {STEPS} steps)"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("an output exists", "photo.1.png exists; pass --overwrite"),
        ("a word is not in the caption", "word 'cow' is not in prompt"),
        ("the photo is not an image", "broken.png"),
        ("the mask is not an image", "is not a readable image"),
        ("an output over the photo", "over an input file"),
        ("a saved inversion of other settings", "exists but does not fit"),
    ],
)
def test_planning_fails_before_any_inversion_and_writes_nothing(plan_editor, tmp_path, slow_work, case, message):
    photo = draw_photo(tmp_path / "photo.png")
    out = tmp_path / "out"
    out.mkdir()
    request = edit_request(out, photo)
    if case == "an output exists":
        (out / "photo.1.png").write_bytes(b"the user's file")
    elif case == "a word is not in the caption":
        request = edit_request(out, photo, EditSpec(blend_words=(["cow"], ["dog"])))
    elif case == "the photo is not an image":
        request = edit_request(out, tmp_path / "broken.png")
        request.photo.write_bytes(b"not a picture")
    elif case == "the mask is not an image":
        request.mask = tmp_path / "mask.png"
        request.mask.write_bytes(b"not a picture")
    elif case == "an output over the photo":
        request.outputs = Outputs(tmp_path, "photo", (photo,), overwrite=True, inputs=(photo,))
    else:
        plan_photo(plan_editor, edit_request(out, photo, outputs=None)).invert(progress=False)  # saved with ddim
        request.settings = InversionSettings(CAT, "negative-prompt", STEPS)
        slow_work.clear()
    before = sorted(out.iterdir())
    with pytest.raises(ValueError, match=message):
        plan_photo(plan_editor, request)
    assert slow_work == []  # no UNet pass, no inversion started
    assert sorted(out.iterdir()) == before
