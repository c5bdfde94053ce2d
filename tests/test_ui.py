"""The web page (`p2p-real ui`) on the toy model, driven through gradio_client as a browser drives it: invert
with a progress bar, the words on offer, edit, re-threshold without sampling, downloads, errors as messages,
Stop, and one model job at a time on 127.0.0.1. Offline: every other address is refused and reported."""

import json
import re
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import cli
from inversion.artifact import Inversion
from p2p_real import EditSpec
from p2p_real.commands import options
from tests.ui_server import METHOD, STEPS, scene_photo

TIMEOUT = 300  # seconds for any one call to the page
EDIT = ["auto", 0.8, 0.6]  # edit kind, cross- and self-attention steps


def client(page, tmp_path: Path) -> Client:
    """A new browser session on the page."""
    return Client(page.url, verbose=False, download_files=str(tmp_path / "downloads"))


def call(session: Client, *args, api_name: str):
    """What the page answers to one call, waiting TIMEOUT seconds at most."""
    return session.submit(*args, api_name=api_name).result(timeout=TIMEOUT)


def pixels(path: str) -> np.ndarray:
    """An image file as an RGB (or grayscale) array."""
    with Image.open(path) as img:
        return np.asarray(img.convert("L" if img.mode == "L" else "RGB"))


def covered(text: str) -> int:
    """The percentage in 'the mask covers N% of the working area'."""
    return int(re.search(r"covers (\d+)%", text)[1])


class UnetCalls:
    """Counts the UNet's forward passes (sampling steps) while entered."""

    def __init__(self, unet) -> None:
        self.unet, self.n = unet, 0

    def __enter__(self):
        self.handle = self.unet.register_forward_hook(lambda *_: setattr(self, "n", self.n + 1))
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def progress_stages(job) -> set[str]:
    """The descriptions the progress bar showed while the job ran."""
    stages, deadline = set(), time.monotonic() + TIMEOUT
    while not job.done() and time.monotonic() < deadline:
        for update in job.status().progress_data or []:
            stages.add(update.desc)
        time.sleep(0.02)
    return stages


def notices(job) -> list[tuple[str, str]]:
    """The (message, level) notices (gr.Info, gr.Warning) the page showed while a finished job ran."""
    found = []
    while not job.communicator.updates.empty():
        update = job.communicator.updates.get_nowait()
        if getattr(update, "log", None):
            found.append(update.log)
    return found


def test_a_photo_is_inverted_once_then_edited_rethresholded_and_downloaded(offline_page, tmp_path, monkeypatch):
    photo, caption = scene_photo(tmp_path / "scene.png")
    target = caption.replace("circle", "square")
    session = client(offline_page, tmp_path)
    with UnetCalls(offline_page.studio.editor.pipe.unet) as calls:
        job = session.submit(handle_file(str(photo)), caption, METHOD, STEPS, api_name="/invert")
        stages = progress_stages(job)
        reconstruction, verdict, report = job.result(timeout=TIMEOUT)
        assert "inverting: DDIM pivot" in stages
        # the report in plain words: the verdict first; the figures (behind a disclosure on the page) apart
        assert re.match(r"\*\*The reconstruction is (good|fair|poor)\*\*: ", verdict) and "Inverted now" in verdict
        assert "PSNR" in report and "VAE ceiling" in report and "verdict" in report and "PSNR" not in verdict
        # the reconstruction at the photo's size (its working area: 72x56 pixels), to be seen beside it
        assert Image.open(reconstruction).size == (192, 160)

        # the pickers offer the prompts' words and suggest what the target changes
        source_words, target_words, reweight = call(session, caption, target, [], api_name="/words")
        assert [c[0] for c in source_words["choices"]] == ["a", "big", "red", "circle", "on", "yellow", "background"]
        assert (source_words["value"], target_words["value"], reweight["value"]) == (["circle"], ["square"], [])

        steps_before = calls.n
        job = session.submit(caption, target, ["circle"], ["square"], 0.3, [], 1.0, *EDIT, api_name="/edit")
        assert "editing" in progress_stages(job)
        (before, after), mask, coverage, heatmaps, files, command = job.result(timeout=TIMEOUT)
        assert calls.n - steps_before == STEPS  # one UNet pass per step: the inversion was kept, not redone

        # the threshold slider: the mask again from the stored maps, no sampling; a preview that Edit applies
        steps_before = calls.n
        masks = {t: call(session, t, api_name="/mask") for t in (0.05, 0.3, 0.9)}
        assert calls.n == steps_before
    assert "Press Edit to apply it" in masks[0.9][1] and "made at 0.3" in masks[0.9][1]
    assert "Edit" not in masks[0.3][1]  # at the edit's own threshold the mask shown is the one applied
    photo_pixels = pixels(str(photo))
    assert np.array_equal(pixels(before), photo_pixels)  # before / after at the photo's resolution
    edited = pixels(after)
    assert edited.shape == photo_pixels.shape and not np.array_equal(edited, photo_pixels)
    assert np.array_equal(pixels(masks[0.3][0]), pixels(mask))  # the edit's own threshold: the same mask
    share = {t: covered(text) for t, (_, text) in masks.items()}
    assert share[0.05] >= share[0.3] >= share[0.9] and share[0.05] > share[0.9] and covered(coverage) == share[0.3]
    assert not np.array_equal(pixels(masks[0.9][0]), pixels(mask))
    # heat maps labelled once per word: the caption's words ("a" twice in it), then the target's new one
    words = ["a", "big", "red", "circle", "on", "yellow", "background", "square (target)"]
    assert [h["caption"] for h in heatmaps] == words

    # downloads: the edit, its mask, the sidecar and the inversion
    by_name = {Path(f).name: f for f in files}
    assert sorted(by_name) == [
        "scene-1.1.mask.png",
        "scene-1.1.png",
        "scene-1.json",
        next(n for n in by_name if n.endswith(".inv.safetensors")),
    ]
    assert np.array_equal(pixels(by_name["scene-1.1.png"]), edited)
    untouched = pixels(by_name["scene-1.1.mask.png"]) == 0
    assert untouched.any() and np.array_equal(edited[untouched], photo_pixels[untouched])
    sidecar = json.loads(Path(by_name["scene-1.json"]).read_text())
    assert sidecar["reproduce"] == command and sidecar["parameters"]["targets"] == [target]
    spec = EditSpec.from_dict(sidecar["parameters"]["spec"])
    assert spec.blend_words == (("circle",), ("square",)) and spec.blend_threshold == 0.3
    inv = Inversion.load(next(f for n, f in by_name.items() if n.endswith(".inv.safetensors")))
    assert (inv.prompt, inv.method, inv.num_inference_steps) == (caption, METHOD, STEPS)

    # the command line shown does the same edit, from any folder: it names the photo by an absolute path
    argv = shlex.split(command)[1:]
    args = cli.build_parser().parse_args(argv)
    assert (args.command, args.prompt, args.target) == ("edit", caption, [target])
    assert Path(args.input).is_absolute() and Path(args.input).name == "scene.png"
    assert Path(args.input).is_relative_to(offline_page.studio.out / "photos")  # kept: the upload is Gradio's
    assert np.array_equal(pixels(args.input), photo_pixels)
    assert (args.method, args.steps, args.model) == (METHOD, STEPS, "toy")
    assert options.spec_from_args(args, 1) == spec
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main([*argv, "--out", "again", "--quiet"]) == 0
    (again,) = (elsewhere / "again").glob("*.1.png")
    assert np.abs(pixels(again).astype(int) - edited.astype(int)).max() <= 1  # the same edit

    # the same photo and settings again: the saved inversion is reused
    _, verdict, _ = call(session, handle_file(str(photo)), caption, METHOD, STEPS, api_name="/invert")
    assert "Reused the saved inversion" in verdict


def message(session: Client, *args, api_name: str) -> str:
    """The message the page shows for a call that fails."""
    with pytest.raises(AppError) as failed:
        call(session, *args, api_name=api_name)
    return str(failed.value)


def test_user_errors_are_messages_on_the_page_never_tracebacks(offline_page, tmp_path):
    photo, caption = scene_photo(tmp_path / "scene.png")
    session = client(offline_page, tmp_path)
    messages = {
        "no photo": message(session, None, caption, METHOD, STEPS, api_name="/invert"),
        "no caption": message(session, handle_file(str(photo)), " ", METHOD, STEPS, api_name="/invert"),
        "no inversion": message(session, caption, caption, [], [], 0.3, [], 1.0, *EDIT, api_name="/edit"),
        "long caption": message(session, handle_file(str(photo)), "red " * 90, METHOD, STEPS, api_name="/invert"),
    }
    call(session, handle_file(str(photo)), caption, METHOD, STEPS, api_name="/invert")
    call(session, caption, caption + " and a small blue square", [], api_name="/words")
    longer = caption + " and a small blue square"
    bad = tmp_path / "fake.png"
    bad.write_bytes(b"this is a text file, not a picture")
    messages["fake png"] = message(session, handle_file(str(bad)), caption, METHOD, STEPS, api_name="/invert")
    messages["no target"] = message(session, caption, "", [], [], 0.3, [], 1.0, *EDIT, api_name="/edit")
    messages["replace"] = message(session, caption, longer, [], [], 0.3, [], 1.0, "replace", 0.8, 0.6, api_name="/edit")
    messages["reweight"] = message(
        session, caption, longer, [], [], 0.3, [], 1.0, "reweight", 0.8, 0.6, api_name="/edit"
    )
    messages["word not offered"] = message(
        session, caption, longer, ["zebra"], [], 0.3, [], 1.0, *EDIT, api_name="/edit"
    )
    messages["caption changed"] = message(
        session, "a small blue square", longer, [], [], 0.3, [], 1.0, *EDIT, api_name="/edit"
    )
    assert "upload a photo first" in messages["no photo"]
    assert "invert a photo first" in messages["no inversion"]
    assert "write the photo's caption first" in messages["no caption"]
    assert "write a target prompt first" in messages["no target"]
    assert "text encoder reads at most 77" in messages["long caption"]
    assert "same number of words" in messages["replace"]
    assert "needs reweight words" in messages["reweight"]
    assert "not in the list of choices" in messages["word not offered"]
    assert "invert it again" in messages["caption changed"]
    # named as the person named it (not by the page's copy of the upload), with what to do
    assert messages["fake png"].startswith("fake.png is not a picture the page can read (")
    assert "upload a PNG, JPEG or WebP photo" in messages["fake png"] and "gradio" not in messages["fake png"]
    for what, text in messages.items():
        assert "Traceback" not in text and 'File "' not in text, what


def test_stop_ends_the_running_inversion_after_its_current_step_with_a_notice(offline_page, tmp_path):
    photo, caption = scene_photo(tmp_path / "tall.png", size=(160, 192))  # not in the inversion cache
    session = client(offline_page, tmp_path)
    job = session.submit(handle_file(str(photo)), caption, "null-text", 50, api_name="/invert")
    deadline = time.monotonic() + TIMEOUT
    while not job.status().progress_data and not job.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    call(session, api_name="/stop")
    unchanged = {"__type__": "update"}  # not an error: nothing on the page changes
    assert job.result(timeout=TIMEOUT) == (unchanged, unchanged, unchanged)
    assert any(text.startswith("Stopped: nothing was changed") and level == "info" for text, level in notices(job))
    assert not list((offline_page.studio.out / "inversions").glob("tall.*"))  # nothing half-done was saved
    assert "invert a photo first" in message(session, caption, caption, [], [], 0.3, [], 1.0, *EDIT, api_name="/edit")


# where each endpoint the page uses is called through gradio_client, behind the network guard (offline_page)
ENDPOINT_TESTS = {
    "invert": "tests/test_ui.py",
    "words": "tests/test_ui.py",
    "edit": "tests/test_ui.py",
    "mask": "tests/test_ui.py",
    "stop": "tests/test_ui.py",
    "continue": "tests/test_chain.py",
    "sweep": "tests/test_sweep.py",
    "pick": "tests/test_sweep.py",
    "brush": "tests/test_ui_page_tools.py",
    "restore": "tests/test_ui_page_tools.py",
    "undo": "tests/test_ui_page_tools.py",
}


def test_the_page_listens_on_localhost_and_runs_one_model_job_at_a_time(toy_page):
    assert cli.build_parser().parse_args(["ui"]).host == "127.0.0.1"
    assert toy_page.url.startswith("http://127.0.0.1:") and toy_page.page.server_name == "127.0.0.1"
    fns = {fn.api_name: fn for fn in toy_page.page.fns.values() if fn.api_visibility != "private"}
    model = {"invert", "edit", "continue", "sweep"}
    assert {fns[name].concurrency_id for name in model} == {fns["invert"].concurrency_id}
    assert {fns[name].concurrency_limit for name in model} == {1}
    assert fns["mask"].concurrency_id != fns["edit"].concurrency_id  # the mask answers while an edit runs
    assert fns["stop"].concurrency_id != fns["edit"].concurrency_id and fns["stop"].concurrency_limit is None
    # every endpoint a client can call has a gradio_client test (behind the guard of offline_page)
    root = Path(__file__).parent.parent
    assert set(fns) <= set(ENDPOINT_TESTS), sorted(set(fns) - set(ENDPOINT_TESTS))
    for name, test in ENDPOINT_TESTS.items():
        source = (root / test).read_text()
        assert f'api_name="/{name}"' in source and "offline_page" in source, (name, test)


def test_the_toy_example_is_an_edit_that_works(offline_page, tmp_path):
    from p2p_real.commands.ui import toy_examples
    from p2p_real.toyworld.demo import DEMO_SCENE
    from p2p_real.toyworld.edits import check_edit, make_edit
    from p2p_real.toyworld.scenes import render
    from p2p_real.ui.choices import EditChoices, changed_words, prompt_words

    studio = offline_page.studio
    ((photo, caption, target, method, self_steps),) = toy_examples(tmp_path, 64)
    assert target != caption  # an edit that changes something (issue 30: it once equalled its caption)
    words = [prompt_words(studio.tokenizer, prompt) for prompt in (caption, target)]
    blend = changed_words(*words)  # what the page ticks for the example
    ws = studio.invert(photo, caption, method, STEPS)
    view = studio.edit(ws, EditChoices(target, *map(tuple, blend), 0.3, (), 1.0, "auto", 0.8, self_steps))
    scene = render(DEMO_SCENE, 64)
    swap = make_edit("colour", scene, prefer=target.split()[2])
    small = np.asarray(view.after.convert("RGB").resize((64, 64)))
    assert swap.target == target and check_edit(swap, scene, small).success
    studio.forget(ws)
