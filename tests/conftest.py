"""Shared fixtures: tiny offline pipelines saved to disk and loaded through the real loading path."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DIFFUSERS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest
import torch

from p2p_real.loading import load_pipeline
from p2p_real.testing import tiny_pipeline

# The tiny models are far too small to gain from threads; on a busy 2-core machine two threads spin
# against each other and run many times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny epsilon-prediction pipeline saved with save_pretrained."""
    path = tmp_path_factory.mktemp("tiny-eps")
    tiny_pipeline(seed=0).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_vpred_dir(tmp_path_factory):
    """The same tiny pipeline with a v-prediction scheduler (like SD 2.x at 768px)."""
    path = tmp_path_factory.mktemp("tiny-v")
    tiny_pipeline(seed=0, prediction_type="v_prediction").save_pretrained(path)
    return path


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
