"""The web page in a real browser (headless Chromium from Debian's packages, driven through its DevTools pipe), as a
new user walks it: the example -> Invert -> a target typed while Invert runs (kept) -> Edit -> a painted mask -> Edit
with it -> back in the history -> a new photo (all of the last one's state cleared) -> a fake PNG (a message) ->
Stop (a notice, not an error). Every step is checked in the page and photographed.

The screenshots go to $P2P_SCREENSHOTS (else the test's folder; the test prints it); the one after the first edit
also to $P2P_UI_SCREENSHOT when set: docs/ui.png is made so (issue 30).
"""

import json
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from tests.cdp import CHROMIUM, Chromium
from tests.ci import unavailable
from tests.ui_server import scene_photo

TIMEOUT = 120  # seconds for the page to show what one step waits for
TYPED = "a big yellow square on a blue background"  # the target typed while Invert runs (the example's is red)


@pytest.fixture(scope="session", autouse=True)  # session: set up before the page (a session fixture) starts
def chromium_installed():
    """Before the page is served: a skip without Chromium, a failure in CI (tests/ci.py)."""
    if CHROMIUM is None:
        unavailable("chromium is not installed (apt-get install chromium; .ci/run installs it)")


class HeldJob:
    """Holds the page's next inversion at its first step until released: the time a person has, on a real model,
    to type or press Stop while Invert runs (the toy model inverts in a fraction of a second)."""

    def __init__(self, studio, monkeypatch) -> None:
        self.running, self.release = threading.Event(), threading.Event()
        invert = studio.invert

        def held(photo, caption, method=None, steps=None, report=None):
            """Studio.invert, waiting at its first step report."""

            def wait_then_report(stage: str, step: int, n: int) -> None:
                if not self.running.is_set():
                    self.running.set()
                    assert self.release.wait(TIMEOUT), "the test never released the held inversion"
                if report is not None:
                    report(stage, step, n)

            return invert(photo, caption, method, steps, wait_then_report)

        monkeypatch.setattr(studio, "invert", held)


def value(selector: str) -> str:
    """JavaScript: the value of a text field."""
    return f"document.querySelector({json.dumps(selector + ' textarea')}).value"


def enabled(button: str) -> str:
    """JavaScript: whether a button can be pressed."""
    return f"!document.querySelector('#{button}').disabled"


def checked(group: str) -> str:
    """JavaScript: the labels of the checked boxes of a checkbox group."""
    return (
        f"[...document.querySelectorAll('#{group} input[type=checkbox]')].filter(i => i.checked)"
        ".map(i => i.closest('label').textContent.trim())"
    )


def images(selector: str) -> str:
    """JavaScript: [natural width, height, shown width, height] of the loaded images under `selector`."""
    return (
        f"[...document.querySelectorAll({json.dumps(selector + ' img')})].filter(i => i.naturalWidth > 0)"
        ".map(i => [i.naturalWidth, i.naturalHeight, Math.round(i.getBoundingClientRect().width),"
        " Math.round(i.getBoundingClientRect().height)])"
    )


TOASTS = "[...document.querySelectorAll('.toast-body')].map(t => [t.className, t.innerText.replace(/\\s+/g, ' ')])"
RED = f"{TOASTS}.filter(t => t[0].includes('error')).map(t => t[1])"  # the texts of error toasts shown now
ERROR_BADGES = "[...document.querySelectorAll('.error')].filter(e => e.innerText.trim() === 'Error').length"


class Walk:
    """The browser on the page, and the screenshots of the walk."""

    def __init__(self, browser: Chromium, folder: Path) -> None:
        self.browser, self.folder, self.shots = browser, folder, 0

    def shot(self, what: str) -> Path:
        """A screenshot of the whole page, numbered in the walk's order; no step of the walk shows an error."""
        self.shots += 1
        path = self.browser.screenshot(self.folder / f"{self.shots:02d}-{what}.png")
        assert self.browser.evaluate(RED) == [], f"an error on the page at {path.name}"
        return path

    def wait(self, expression: str, what: str):
        """Wait for a JavaScript expression to be truthy."""
        return self.browser.wait_for(expression, TIMEOUT, what)

    def toast(self, pattern: str, what: str) -> str:
        """The class of the first toast whose text matches `pattern`."""
        try:
            return self.wait(
                f"(t => t && t[0])({TOASTS}.find(t => new RegExp({json.dumps(pattern)}).test(t[1])))", what
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; the toasts: {self.browser.evaluate(TOASTS)}") from None


def test_a_new_user_walks_the_page_from_the_example_to_stop(offline_page, tmp_path, monkeypatch, capsys):
    folder = Path(os.environ.get("P2P_SCREENSHOTS") or tmp_path / "walk")
    folder.mkdir(parents=True, exist_ok=True)
    with capsys.disabled():
        print(f"\nscreenshots of the browser walk: {folder}")
    studio = offline_page.studio
    with Chromium(tmp_path / "profile", tmp_path / "chromium.log", height=1400) as browser:
        walk = Walk(browser, folder)
        browser.navigate(offline_page.url)
        walk.wait("document.querySelector('#invert') !== null", "the Invert button")
        example_and_invert(walk, HeldJob(studio, monkeypatch))
        first_command = edit_and_check(walk, studio)
        mask_and_history(walk, first_command)
        new_photo_and_fake_png(walk, tmp_path)
        stop_is_a_notice(walk, tmp_path, HeldJob(studio, monkeypatch))
        urls = browser.requested_urls()
    hosts = {urlparse(u).hostname for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, json.dumps(sorted(u for u in urls if "127.0.0.1" not in u)[:10])


def example_and_invert(walk: Walk, held: HeldJob) -> None:
    """Steps: nothing but step 1 ready; the example fills a target that differs from its caption; Invert runs
    while a target is typed, which it keeps; the reconstruction beside the photo at its size; the verdict."""
    b = walk.browser
    walk.wait("[...document.querySelectorAll('h3')].map(h => h.innerText).join('|').includes('3 · Edit')", "steps")
    assert b.evaluate("[...document.querySelectorAll('h3')].map(h => h.innerText)")[:3] == [
        "1 · Photo and caption",
        "2 · Invert",
        "3 · Edit",
    ]
    for button in ("invert", "stop-invert", "edit", "stop", "continue"):
        assert not b.evaluate(enabled(button)), f"{button} is ready before its step"
    b.click("[data-testid='dataset-cell-0-0']")  # the example
    walk.wait("document.querySelector('#photo img') !== null", "the example's photo")
    caption = walk.wait(f"{value('#caption')} || false", "the example's caption")
    target = walk.wait(f"{value('#target')} || false", "the example's target")
    assert target != caption and target == caption.replace("green", "red")  # an edit that changes something
    walk.wait(enabled("invert"), "Invert ready once there is a photo and a caption")
    walk.wait(f"JSON.stringify({checked('blend-target')}) === '[\"red\"]'", "the example's blend words")
    walk.shot("example")

    b.click("#invert")
    assert held.running.wait(TIMEOUT), "Invert did not start"
    walk.wait(enabled("stop-invert"), "Stop ready while Invert runs")
    assert not b.evaluate(enabled("edit")) and not b.evaluate(enabled("invert"))
    b.type_text("#target textarea", TYPED)  # typed while Invert runs
    walk.wait(f"JSON.stringify({checked('blend-target')}) === '[\"yellow\"]'", "the typed target's blend word")
    walk.shot("typing-while-inverting")
    held.release.set()
    verdict = walk.wait(
        "(e => e && e.innerText.includes('The reconstruction is') && e.innerText)(document.querySelector('#verdict'))",
        "the verdict",
    )
    walk.wait(enabled("edit"), "Edit ready after Invert")
    assert b.evaluate(value("#target")) == TYPED  # kept, not put back to what it was when Invert was pressed
    assert re.match(r"The reconstruction is (good|fair|poor): ", verdict), verdict
    assert not b.evaluate(enabled("stop-invert")) and not b.evaluate(enabled("continue"))
    figures = "document.querySelector('#report textarea')"
    assert b.evaluate(f"!{figures} || {figures}.offsetParent === null")  # the figures behind a disclosure
    photo, reconstruction = walk.wait(
        f"(a => a.length === 2 && a)([...{images('#photo')}, ...{images('#reconstruction')}])", "the reconstruction"
    )
    assert reconstruction[:2] == photo[:2] == [192, 192]  # the photo's resolution, not the model's 64 px
    assert abs(reconstruction[2] - photo[2]) <= 2 and abs(reconstruction[3] - photo[3]) <= 2  # shown at its size
    walk.shot("inverted")


def edit_and_check(walk: Walk, studio) -> str:
    """Edit: before / after labelled at the photo's resolution, the edit made (the square turned yellow), heat maps
    labelled once per word, the command naming the photo by an absolute path; the threshold's preview says that
    Edit applies it. The screenshot of a working edit is the README's (docs/ui.png)."""
    from p2p_real.toyworld.demo import DEMO_SCENE
    from p2p_real.toyworld.edits import check_edit, make_edit
    from p2p_real.toyworld.scenes import render

    b = walk.browser
    b.click("#edit")
    command = walk.wait(f"(v => v.includes('p2p-real edit') && v)({value('#command')})", "the command line")
    sizes = walk.wait(f"(a => a.length >= 2 && a)({images('#compare')})", "the before / after images")
    assert [s[:2] for s in sizes[:2]] == [[192, 192], [192, 192]]
    labels = [
        b.evaluate(f"getComputedStyle(document.querySelector('#compare'), '::{side}').content")
        for side in (
            "before",
            "after",
        )
    ]
    assert labels == ['"before: the photo"', '"after: the edit"']
    words = walk.wait(
        "(a => a.length > 0 && a)([...document.querySelectorAll('#heatmaps .caption-label, #heatmaps figcaption')]"
        ".map(e => e.innerText.trim()))",
        "the heat maps' labels",
    )
    assert len(words) == len(set(words)) and "yellow (target)" in words, words
    path = re.search(r"edit (/\S+\.png) ", command)
    assert path and Path(path[1]).is_file(), command  # the photo by an absolute path: it runs from any folder
    assert Path(path[1]).is_relative_to(studio.out / "photos"), command  # kept: the upload is Gradio's
    scene = render(DEMO_SCENE, 64)
    swap = make_edit("colour", scene, prefer="yellow")
    edited = max(studio.edits.glob("toy-scene-*.1.png"), key=lambda p: p.stat().st_mtime_ns)  # this edit's
    small = np.asarray(Image.open(edited).convert("RGB").resize((64, 64)))
    assert swap.target == TYPED and check_edit(swap, scene, small).success  # the edit took
    shot = walk.shot("edited")
    if os.environ.get("P2P_UI_SCREENSHOT"):
        shutil.copyfile(shot, Path(os.environ["P2P_UI_SCREENSHOT"]))

    coverage = "document.querySelector('#coverage').innerText"
    first = walk.wait(f"{coverage}.includes('covers') && {coverage}", "the mask's extent")
    b.type_text("#threshold input[type=number]", "0.8")  # the slider's box, as a person types into it
    b.evaluate("document.querySelector('#threshold input[type=number]').blur()")
    preview = walk.wait(f"{coverage}.includes('Press Edit to apply it') && {coverage}", "the preview's note")
    assert "made at 0.3" in preview and first != preview
    walk.shot("threshold-preview")
    return command


def mask_and_history(walk: Walk, first_command: str) -> None:
    """Paint a mask over the photo, Edit with it (the command line names it), then go back in the history."""
    b = walk.browser
    b.evaluate("[...document.querySelectorAll('button')].find(x => x.innerText.startsWith('brush:')).click()")
    walk.wait("(c => c && c.getBoundingClientRect().width > 50)(document.querySelector('#brush canvas'))", "the brush")
    note = "document.querySelector('#brush-note').innerText.startsWith('Painted')"
    for _ in range(5):  # the editor's canvas takes a moment to take paint after its panel opens
        b.drag("#brush canvas", [(0.55 + 0.02 * k, 0.3 + 0.04 * k) for k in range(10)])
        try:
            b.wait_for(note, 5, "the painted mask's note")
            break
        except TimeoutError:
            continue
    walk.wait(note, "the painted mask's note")
    walk.shot("painted")
    b.click("#edit")
    command = walk.wait(
        f"(v => v.includes('--mask') && v)({value('#command')})", "the command line of the edit with the mask"
    )
    assert command != first_command
    walk.shot("edited-with-mask")
    b.click("#history .thumbnail-item")  # the first edit
    walk.wait(f"{value('#command')} === {json.dumps(first_command)}", "the first edit back from the history")
    walk.shot("history")


def new_photo_and_fake_png(walk: Walk, tmp_path: Path) -> None:
    """A new photo clears all derived from the last one; a fake PNG gives a message naming it, not bare badges."""
    b = walk.browser
    photo, caption = scene_photo(tmp_path / "another.png")
    b.set_files("#photo input[type=file]", photo)
    walk.wait(
        f"{value('#caption')} === '' && {value('#target')} === '' && {value('#command')} === ''",
        "the last photo's caption, target and command gone",
    )
    walk.wait(f"{images('#compare')}.length === 0 && {images('#reconstruction')}.length === 0", "the pictures gone")
    walk.wait(
        f"{images('#mask')}.length + {images('#heatmaps')}.length + {images('#history')}.length === 0"
        " && document.querySelector('#verdict').innerText.trim() === ''"
        " && document.querySelectorAll('#downloads a').length === 0"
        f" && {checked('blend-target')}.length === 0",
        "the mask, heat maps, history, verdict, downloads and target's blend words gone",
    )
    assert not b.evaluate(enabled("edit")) and not b.evaluate(enabled("invert"))  # the new photo needs its caption
    b.type_text("#caption textarea", caption)
    walk.wait(enabled("invert"), "Invert ready: a photo and its caption")
    walk.shot("new-photo")

    fake = tmp_path / "fake.png"
    fake.write_bytes(b"a text file, not a picture")
    b.evaluate("document.querySelector('#photo button[aria-label=Clear], #photo button[title=Clear]')?.click()")
    walk.wait("document.querySelector('#photo input[type=file]') !== null", "an empty photo field")
    b.set_files("#photo input[type=file]", fake)
    note = walk.wait(
        "(t => t.includes('fake.png') && t)(document.querySelector('#photo-note').innerText)", "the photo's note"
    )
    assert "is not a picture the page can read" in note and "PNG, JPEG or WebP" in note
    walk.toast("fake.png is not a picture", "the message about the fake PNG")
    assert not b.evaluate(enabled("invert")) and b.evaluate(ERROR_BADGES) == 0
    walk.shot("fake-png")


def stop_is_a_notice(walk: Walk, tmp_path: Path, held: HeldJob) -> None:
    """Stop during Invert: a notice, not a red error; nothing changes; the steps are ready again."""
    b = walk.browser
    photo, caption = scene_photo(tmp_path / "to-stop.png", size=(176, 160))  # not inverted before: not in the cache
    b.evaluate("document.querySelector('#photo button[aria-label=Clear], #photo button[title=Clear]')?.click()")
    walk.wait("document.querySelector('#photo input[type=file]') !== null", "an empty photo field")
    b.set_files("#photo input[type=file]", photo)
    assert b.evaluate(value("#caption")) == ""  # the caption of the last photo went with it (at the fake PNG)
    b.type_text("#caption textarea", caption)
    walk.wait(enabled("invert"), "Invert ready")
    b.click("#invert")
    assert held.running.wait(TIMEOUT), "Invert did not start"
    walk.wait(enabled("stop-invert"), "Stop ready")
    b.click("#stop-invert")
    held.release.set()
    kind = walk.toast("Stopped: nothing was changed", "the notice that Invert stopped")
    assert "info" in kind and "error" not in kind, kind
    walk.wait(enabled("invert"), "Invert ready again")
    assert not b.evaluate(enabled("stop-invert")) and not b.evaluate(enabled("edit"))
    assert b.evaluate(ERROR_BADGES) == 0 and b.evaluate(value("#target")) == ""  # nothing changed
    assert b.evaluate("document.querySelector('#verdict').innerText.trim()") == ""  # nothing changed
    walk.shot("stopped")
