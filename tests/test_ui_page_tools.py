"""The page's brush, history and "edit this result" through gradio_client, as a browser drives them
(docs/page_tools.md), on the toy model behind the guard that refuses every connection leaving 127.0.0.1
(tests/conftest.py, offline_page): paint a mask, edit with it, edit without it, go back in the history, undo, and
continue from an entry."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import cli
from tests.ui_server import METHOD, STEPS, scene_photo

TIMEOUT = 300  # seconds for any one call to the page
BRUSHED, HISTORY = (168, 152), (168, 144)  # photo sizes no other page test uses: the page's inversion cache is shared
EDIT = [0.3, [], 1.0, "auto", 0.8, 0.6]  # threshold, reweight words, factor, edit kind, cross, self


def call(session: Client, *args, api_name: str):
    """What the page answers to one call, waiting TIMEOUT seconds at most."""
    return session.submit(*args, api_name=api_name).result(timeout=TIMEOUT)


def pixels(path: str) -> np.ndarray:
    """An image file as an array (grayscale stays grayscale)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("L" if img.mode == "L" else "RGB"))


def brush_value(folder: Path, size: tuple[int, int], box: tuple[int, int, int, int] | None) -> dict:
    """The editor's value as the browser sends it: the photo and one RGBA layer with `box` painted (None: none)."""
    background, layer = folder / "background.png", folder / f"layer-{box}.png"
    Image.new("RGB", size, "white").save(background)
    painted = Image.new("RGBA", size, (0, 0, 0, 0))
    if box is not None:
        painted.paste((255, 48, 48, 255), box)
    painted.save(layer)
    return {"background": handle_file(str(background)), "layers": [handle_file(str(layer))], "composite": None}


def test_a_painted_mask_is_the_edits_mask_saved_and_on_the_command_line(offline_page, tmp_path, monkeypatch):
    photo, caption = scene_photo(tmp_path / "brushed.png", size=BRUSHED)
    target = caption.replace("circle", "square")
    session = Client(offline_page.url, verbose=False, download_files=str(tmp_path / "downloads"))
    with pytest.raises(AppError, match="invert a photo first"):
        call(session, brush_value(tmp_path, BRUSHED, (0, 0, 10, 10)), api_name="/brush")
    call(session, handle_file(str(photo)), caption, METHOD, STEPS, api_name="/invert")
    # painted on the editor's picture at half the photo's size: the left half of the photo
    half = (BRUSHED[0] // 2, BRUSHED[1] // 2)
    preview, note = call(session, brush_value(tmp_path, half, (0, 0, half[0] // 2, half[1])), api_name="/brush")
    assert "Painted 50% of the photo" in note
    tinted = pixels(preview).astype(int) - pixels(str(photo)).astype(int)
    assert np.abs(tinted[:, : BRUSHED[0] // 2]).sum(axis=2).min() > 0 and not tinted[:, BRUSHED[0] // 2 :].any()

    (before, after), mask, coverage, heatmaps, files, command = call(
        session, caption, target, [], [], *EDIT, "replace", api_name="/edit"
    )
    by_name = {Path(f).name: f for f in files}
    sidecar = json.loads(Path(next(f for n, f in by_name.items() if n.endswith(".json"))).read_text())
    saved = sidecar["parameters"]["mask"]  # the painted mask: recorded in the sidecar and downloadable
    assert saved in by_name and sidecar["parameters"]["mask_sha256"]
    painted = pixels(by_name[saved])
    assert (
        painted.shape == (BRUSHED[1], BRUSHED[0])
        and painted[:, : BRUSHED[0] // 2].all()
        and not painted[:, BRUSHED[0] // 2 :].any()
    )
    # replace: the edit changed the photo under the paint only (blend words or not)
    edited, original = pixels(after), pixels(str(photo))
    assert not np.array_equal(edited[:, : BRUSHED[0] // 4], original[:, : BRUSHED[0] // 4])
    assert np.array_equal(edited[:, 3 * BRUSHED[0] // 4 :], original[:, 3 * BRUSHED[0] // 4 :])
    # the command line edits with the mask file (by its absolute path: it runs from any folder)
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    assert Path(args.mask).is_absolute() and np.array_equal(pixels(args.mask), painted)
    assert args.mask_mode is None or args.mask_mode == "replace"

    # a sweep edits with the painted mask too
    call(session, caption, target, [], [], *EDIT, "replace", "blend threshold", "0.2,0.6", api_name="/sweep")
    (combination,) = offline_page.studio.edits.glob("brushed-sweep-*.1.json")
    assert json.loads(combination.read_text())["parameters"]["mask"] == saved

    # intersect needs blend words: a message, no edit
    with pytest.raises(AppError, match="needs blend words"):
        call(session, caption, target, [], [], *EDIT, "intersect", api_name="/edit")


def test_the_history_restores_an_edit_undoes_and_continues_from_it(offline_page, tmp_path):
    photo, caption = scene_photo(tmp_path / "history.png", size=HISTORY)
    square, star = caption.replace("circle", "square"), caption.replace("circle", "star")
    session = Client(offline_page.url, verbose=False, download_files=str(tmp_path / "downloads"))
    with pytest.raises(AppError, match="nothing to undo"):
        call(session, api_name="/undo")
    call(session, handle_file(str(photo)), caption, METHOD, STEPS, api_name="/invert")
    size = HISTORY
    call(session, brush_value(tmp_path, size, (0, 0, size[0] // 2, size[1])), api_name="/brush")
    call(session, caption, square, [], api_name="/words")  # the word pickers offer the prompts' words
    first = call(
        session, caption, square, ["circle"], ["square"], 0.3, [], 1.0, "auto", 0.4, 0.6, "replace", api_name="/edit"
    )
    call(session, brush_value(tmp_path, size, None), api_name="/brush")  # the paint wiped: no mask
    call(session, caption, star, [], api_name="/words")
    second = call(
        session, caption, star, ["circle"], ["star"], 0.5, [], 1.0, "auto", 0.8, 0.2, "replace", api_name="/edit"
    )
    assert "--mask" in first[-1] and "--mask" not in second[-1]

    restored = call(session, api_name="/undo")  # back one: the first edit, its settings and its brush mask
    (_, _, _, shown_caption, target, blend_source, blend_target, threshold, _, _, kind, cross, self_) = restored[:13]
    assert (shown_caption, target, kind, cross, self_, threshold) == (caption, square, "auto", 0.4, 0.6, 0.3)
    assert blend_source["value"] == ["circle"] and blend_target["value"] == ["square"]
    (before, after), *_, command = restored[13:19]
    assert command == first[-1] and np.array_equal(pixels(after), pixels(first[0][1]))
    editor, _, note, mode = restored[19:]
    assert "Painted 50%" in note and mode == "replace" and len(editor["layers"]) == 1
    with pytest.raises(AppError, match="nothing to undo"):
        call(session, api_name="/undo")

    restored = call(session, 1, api_name="/restore")  # a click on the second
    assert restored[4] == star and restored[18] == second[-1] and "Nothing painted" in restored[21]
    with pytest.raises(AppError, match="no edit 5"):
        call(session, 5, api_name="/restore")

    # "edit this result" continues from the entry shown: the star edit becomes the photo, its target the caption
    _, _, _, new_caption, new_target = call(session, api_name="/continue")
    assert new_caption == new_target == star
    call(session, star, star.replace("star", "circle"), [], api_name="/words")
    third = call(
        session, star, star.replace("star", "circle"), ["star"], ["circle"], *EDIT, "replace", api_name="/edit"
    )
    assert re.search(r"p2p-real edit \S*history-\d+\.1\.inv\.safetensors ", third[-1])  # edits the star's inversion
