"""A hub that accepts connections but never answers: loading fails with one clear error in bounded time.

The "hub" is a local listener on 127.0.0.1 that accepts and never writes a byte; HF_ENDPOINT points at it and
every other address goes to a dead proxy, so no test here can reach the real internet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from huggingface_hub.utils import get_session

import p2p_real.models.hub
from p2p_real.models.hub import bounded_hub_requests, hub_timeout, is_timeout

BIN = Path(sys.executable).parent
TIMEOUT = 2  # HF_HUB_ETAG_TIMEOUT for the subprocesses, seconds
STARTUP = 30  # generous: importing torch and diffusers on a busy 2-core machine


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def offline_env(endpoint: str, home: Path) -> dict[str, str]:
    """Environment whose only reachable address is the silent endpoint."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "P2P_REAL_", "TRANSFORMERS_", "DIFFUSERS_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens, every other address fails at once
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(home),
        HF_HUB_ETAG_TIMEOUT=str(TIMEOUT),
        HF_HUB_DISABLE_TELEMETRY="1",
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        ALL_PROXY=dead,
        NO_PROXY="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
        TQDM_DISABLE="1",
    )
    return env


def sd_checkpoint(path: Path) -> str:
    """A single-file checkpoint whose keys say "Stable Diffusion 1.x": its configuration comes from the hub."""
    import torch
    from safetensors.torch import save_file

    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
            "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 768),
        },
        path,
    )
    return str(path)


@pytest.mark.parametrize("kind", ["hub id", "single-file checkpoint"])
@pytest.mark.slow
def test_load_pipeline_from_a_silent_hub_fails_clearly_within_twice_the_timeout(silent, tmp_path, kind):
    model = "p2p-real-tests/silent-model" if kind == "hub id" else sd_checkpoint(tmp_path / "sd.safetensors")
    code = (
        "import sys, time\n"
        "from p2p_real import ModelLoadError, load_pipeline\n"  # p2p_real imports lazily: load torch before timing
        "start = time.monotonic()\n"
        "try:\n"
        "    load_pipeline(sys.argv[1], device='cpu')\n"
        "except ModelLoadError as exc:\n"
        "    print(f'{time.monotonic() - start:.2f}'); print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, model],
        env=offline_env(silent.url, tmp_path),
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT + STARTUP + 60,
    )
    assert result.returncode == 0, result.stderr
    seconds, message = result.stdout.strip().splitlines()
    assert "did not answer within 2 s" in message and silent.url in message
    assert TIMEOUT <= float(seconds) < 2 * TIMEOUT + 5  # two lookups time out, then a quick look in the cache
    assert silent.connections  # it did ask the silent hub, not anything else


@pytest.mark.slow
def test_the_cli_says_so_in_one_line(silent, tmp_path):
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (48, 40), (90, 140, 200)).save(photo)
    script = [str(BIN / "p2p-real")] if (BIN / "p2p-real").exists() else [sys.executable, "-m", "cli"]
    argv = [
        "edit",
        str(photo),
        "-p",
        "a cat",
        "-t",
        "a dog",
        "--model",
        "p2p-real-tests/silent-model",
        "-q",
        "--out",
        str(tmp_path / "out"),
    ]
    start = time.monotonic()
    result = subprocess.run(
        [*script, *argv],
        env=offline_env(silent.url, tmp_path),
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT + STARTUP + 60,
    )
    elapsed = time.monotonic() - start
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("p2p-real: error: the Hugging Face hub") and "did not answer within 2 s" in lines[0]
    assert elapsed < 2 * TIMEOUT + STARTUP
    assert not (tmp_path / "out").exists()


def error_within(seconds: float, call: Callable[[], object]) -> BaseException:
    """The exception `call` raises, which it must do within `seconds` (it runs in a thread, so a hang fails)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    assert raised, "no error"
    return raised[0]


def test_bounded_requests_time_out_and_leave_the_hub_session_as_it_was(silent, monkeypatch):
    session = type(get_session())(timeout=None)  # as huggingface_hub makes it (httpx, no timeout), minus its hooks
    monkeypatch.setattr(p2p_real.models.hub, "_session", lambda: session)
    hooks = session.event_hooks

    def lookup() -> None:
        with bounded_hub_requests(0.5):
            session.get(silent.url + "/api/models/a/b")

    assert is_timeout(error_within(10, lookup))
    assert session.event_hooks == hooks  # nothing stays changed outside the block


def test_bounded_requests_also_cover_a_requests_session(silent, monkeypatch):
    # huggingface_hub before 1.0 talks through a requests.Session
    session = requests.Session()
    monkeypatch.setattr(p2p_real.models.hub, "_session", lambda: session)

    def lookup() -> None:
        with bounded_hub_requests(0.5):
            session.get(silent.url + "/api/models/a/b")

    assert isinstance(error_within(10, lookup), requests.exceptions.ReadTimeout)
    assert all("send" not in vars(adapter) for adapter in session.adapters.values())


def test_the_timeout_is_huggingface_hubs_own_setting(monkeypatch):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3.5")
    assert hub_timeout() == 3.5
    for bad in ("", "soon", "0", "-1", "inf"):
        monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", bad)
        assert hub_timeout() == 10.0
