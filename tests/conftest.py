"""Shared fixtures: tiny offline pipelines saved to disk and loaded through the real loading path."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DIFFUSERS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest
import torch

from p2p_real.models.loading import load_pipeline
from p2p_real.testing import tiny_pipeline
from tests.families import EDITOR_STEPS, INVERSION_METHODS, PHOTO_PROMPT, SDXL_SIZE

# The tiny models are far too small to gain from threads; on a busy 2-core machine two threads spin
# against each other and run many times slower.
torch.set_num_threads(1)


def _saved(tmp_path_factory, name: str, pipe) -> Path:
    """`pipe` saved with save_pretrained into a new folder of the session."""
    path = tmp_path_factory.mktemp(name)
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny epsilon-prediction pipeline saved with save_pretrained."""
    return _saved(tmp_path_factory, "tiny-eps", tiny_pipeline(seed=0))


@pytest.fixture(scope="session")
def tiny_vpred_dir(tmp_path_factory):
    """The same tiny pipeline with a v-prediction scheduler (like SD 2.x at 768px)."""
    return _saved(tmp_path_factory, "tiny-v", tiny_pipeline(seed=0, prediction_type="v_prediction"))


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_dir):
    """The tiny pipeline loaded with load_pipeline on the CPU; tests must leave it as they found it."""
    return load_pipeline(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_vpred_pipe(tiny_vpred_dir):
    return load_pipeline(tiny_vpred_dir, device="cpu")


@pytest.fixture(scope="session")
def toy_page(tmp_path_factory):
    """`p2p-real ui --model toy` served in this process on a free localhost port (tests/ui_server.py)."""
    from tests.ui_server import serve_toy_page

    with serve_toy_page(tmp_path_factory.mktemp("ui")) as served:
        yield served


@pytest.fixture
def offline_page(toy_page):
    """The toy page, with every connection that would leave this machine refused and, at the end, reported."""
    toy_page.guard.attempts.clear()
    with toy_page.guard.active():
        yield toy_page
    attempts = toy_page.guard.attempts
    assert attempts == [], f"the page or its client tried to reach the network: {attempts}"


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory):
    """A tiny SDXL pipeline (two text encoders, text-time embedding) saved with save_pretrained."""
    from p2p_real.testing import tiny_sdxl_pipeline

    return _saved(tmp_path_factory, "tiny-sdxl", tiny_sdxl_pipeline(seed=0))


@pytest.fixture(scope="session")
def tiny_sdxl_pipe(tiny_sdxl_dir):
    """The tiny SDXL pipeline loaded with load_pipeline on the CPU; tests must leave it as they found it."""
    return load_pipeline(tiny_sdxl_dir, device="cpu")


# --- editors, a photo and its inversions, shared by the tests of SD and SDXL ---
# A test that holds for both model families takes `editor` (and `inversions`): it runs once per family. A test of
# one family takes `sd_editor` / `sdxl_editor` (and `sd_inversions` / `sdxl_inversions`). All are made once.


@pytest.fixture(scope="session")
def photo():
    """A real, non-square photo: 150 x 226."""
    import skimage.data

    return skimage.data.chelsea()[::2, ::2].copy()


@pytest.fixture(scope="session")
def sd_editor(tiny_pipe):
    from p2p_real import Editor

    return Editor(tiny_pipe, num_inference_steps=EDITOR_STEPS)


@pytest.fixture(scope="session")
def sdxl_editor(tiny_sdxl_pipe):
    from p2p_real import Editor

    return Editor(tiny_sdxl_pipe, num_inference_steps=EDITOR_STEPS)


@pytest.fixture(scope="session", params=["sd", "sdxl"])
def editor(request):
    """The SD editor, then the SDXL one."""
    return request.getfixturevalue(f"{request.param}_editor")


def _invert_all(editor, photo, **kwargs) -> dict:
    return {
        m: editor.invert(photo, PHOTO_PROMPT, method=m, num_inner_steps=2, progress=False, **kwargs)
        for m in INVERSION_METHODS
    }


@pytest.fixture(scope="session")
def sd_inversions(sd_editor, photo):
    """The photo inverted by each method with the SD editor (at its working size, 80 x 56)."""
    return _invert_all(sd_editor, photo)


@pytest.fixture(scope="session")
def sdxl_inversions(sdxl_editor, photo):
    """The photo inverted by each method with the SDXL editor, at SDXL_SIZE."""
    return _invert_all(sdxl_editor, photo, size=SDXL_SIZE)


@pytest.fixture(scope="session")
def inversions(request, editor):
    """The photo's inversions by the editor of the test."""
    return request.getfixturevalue("sdxl_inversions" if editor.is_sdxl else "sd_inversions")
