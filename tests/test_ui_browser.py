"""The web page in a real browser (headless Chromium from Debian's packages, driven through its DevTools pipe):
it loads, takes a photo and a caption, inverts, suggests the blend words, edits, and looks like something.

The screenshot goes to the test's folder, and also to $P2P_UI_SCREENSHOT when set (docs/ui.png is made so).
"""

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from tests.cdp import CHROMIUM, Chromium
from tests.ci import unavailable
from tests.ui_server import scene_photo

pytestmark = pytest.mark.slow
TIMEOUT = 300  # seconds for the page to show what one step waits for


@pytest.fixture(scope="session", autouse=True)  # session: set up before the page (a session fixture) starts
def chromium_installed():
    """Before the page is served: a skip without Chromium, a failure in CI (tests/ci.py)."""
    if CHROMIUM is None:
        unavailable("chromium is not installed (apt-get install chromium; .ci/run installs it)")


def checked(group: str) -> str:
    """JavaScript: the labels of the checked boxes of a checkbox group."""
    return (
        f"[...document.querySelectorAll('#{group} input[type=checkbox]')].filter(i => i.checked)"
        ".map(i => i.closest('label').textContent.trim())"
    )


def covered(text: str) -> int:
    """The percentage in 'the mask covers N% of the working area'."""
    return int(re.search(r"covers (\d+)%", text)[1])


def test_a_browser_loads_the_page_and_edits_a_photo(offline_page, tmp_path):
    photo, caption = scene_photo(tmp_path / "scene.png")
    target = caption.replace("circle", "square")
    with Chromium(tmp_path / "profile", tmp_path / "chromium.log") as browser:
        browser.navigate(offline_page.url)
        browser.wait_for("document.querySelector('#invert') !== null", TIMEOUT, "the Invert button")
        browser.set_files("#photo input[type=file]", photo)
        browser.wait_for("document.querySelector('#photo img') !== null", TIMEOUT, "the uploaded photo")
        browser.type_text("#caption textarea", caption)
        browser.click("#invert")
        report = browser.wait_for(
            "(v => v.includes('PSNR') && v)(document.querySelector('#report textarea').value)",
            TIMEOUT,
            "the reconstruction report",
        )
        assert "VAE ceiling" in report
        browser.type_text("#target textarea", target)
        browser.wait_for(
            f"JSON.stringify({checked('blend-target')}) === '[\"square\"]'",
            TIMEOUT,
            "'square' suggested as the target's blend word",
        )
        assert browser.evaluate(checked("blend-source")) == ["circle"]
        browser.click("#edit")
        command = browser.wait_for(
            "(v => v.includes('p2p-real edit') && v)(document.querySelector('#command textarea').value)",
            TIMEOUT,
            "the command line",
        )
        sizes = browser.wait_for(
            "(a => a.length >= 2 && a.every(s => s[0] > 0) && a)([...document.querySelectorAll("
            "'#compare img')].map(i => [i.naturalWidth, i.naturalHeight]))",
            TIMEOUT,
            "the before / after images",
        )
        browser.wait_for("[...document.querySelectorAll('#heatmaps img')].length > 0", TIMEOUT, "the heat maps")
        mask = "(i => i && i.naturalWidth > 0 && i.src)(document.querySelector('#mask img'))"
        coverage = "document.querySelector('#coverage').innerText"
        first_mask = browser.wait_for(mask, TIMEOUT, "the mask")
        first_coverage = browser.wait_for(f"{coverage}.includes('covers') && {coverage}", TIMEOUT, "the mask's extent")
        browser.type_text("#threshold input[type=number]", "0.8")  # the slider's box, as a person types into it
        browser.evaluate("document.querySelector('#threshold input[type=number]').blur()")
        browser.wait_for(f"(s => s && s !== {json.dumps(first_mask)})({mask})", TIMEOUT, "the mask at 0.8")
        second_coverage = browser.wait_for(f"{coverage}.includes('covers') && {coverage}", TIMEOUT, "its extent")
        shot = browser.screenshot(tmp_path / "ui.png")
        urls = browser.requested_urls()
    assert "--blend circle:square" in command and target in command
    assert covered(second_coverage) < covered(first_coverage)  # a higher threshold: a smaller mask
    assert sizes[:2] == [[192, 160], [192, 160]]  # the photo's resolution
    picture = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert picture.shape[0] > 800 and picture.shape[1] >= 1000
    assert picture.std() > 20 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 500  # not blank
    hosts = {urlparse(u).hostname for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {"127.0.0.1"}, json.dumps(sorted(u for u in urls if "127.0.0.1" not in u)[:10])
    if os.environ.get("P2P_UI_SCREENSHOT"):
        shutil.copyfile(shot, Path(os.environ["P2P_UI_SCREENSHOT"]))
