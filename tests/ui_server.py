"""What the tests of the web page share: the page served in-process on the toy model, a guard that refuses
(and records) every connection that would leave this machine, and the demo scene as a photo."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before Gradio is imported
os.environ["HF_HUB_OFFLINE"] = "1"

METHOD, STEPS = "negative-prompt", 8  # a quick inversion on the toy model (null-text is tested elsewhere)
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_local(host: Any) -> bool:
    """Whether a host (name or address) is this machine's loopback."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass
class NetworkGuard:
    """While entered, connecting to or resolving any host but the loopback raises OSError and is recorded."""

    attempts: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def active(self) -> Iterator[NetworkGuard]:
        """Patch socket connect / connect_ex / getaddrinfo for the duration."""
        connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
        guard = self

        def check(sock: socket.socket, address: Any) -> None:
            """Refuse a non-loopback internet address."""
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
                guard.attempts.append(f"connect {address!r}")
                raise OSError(f"test network guard: refused to connect to {address!r}")

        def guarded_connect(sock: socket.socket, address: Any) -> Any:
            """socket.connect for loopback addresses only."""
            check(sock, address)
            return connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
            """socket.connect_ex for loopback addresses only."""
            check(sock, address)
            return connect_ex(sock, address)

        def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            """socket.getaddrinfo for loopback names only."""
            if not is_local(host):
                guard.attempts.append(f"resolve {host!r}")
                raise socket.gaierror(f"test network guard: refused to resolve {host!r}")
            return getaddrinfo(host, *args, **kwargs)

        socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex
        socket.getaddrinfo = guarded_getaddrinfo
        try:
            yield self
        finally:
            socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """The page running in this process."""

    url: str
    page: Any  # gradio.Blocks
    studio: Any  # p2p_real.ui.studio.Studio
    guard: NetworkGuard


@contextlib.contextmanager
def serve_toy_page(out: Path) -> Iterator[Served]:
    """`p2p-real ui --model toy` as the command builds it, served on a free localhost port; it starts behind the
    guard (tests activate it again around what they do)."""
    import cli
    from p2p_real.commands import ui
    from p2p_real.ui.app import launch

    guard = NetworkGuard()
    port = free_port()
    args = cli.build_parser().parse_args(
        [
            "ui",
            "--model",
            "toy",
            "--out",
            str(out),
            "--method",
            METHOD,
            "--steps",
            str(STEPS),
            "--port",
            str(port),
            "--quiet",
        ]
    )
    with guard.active():
        page, studio = ui.build(args)
        launch(page, args.host, args.port, studio.out, quiet=True, block=False)
    if guard.attempts:
        page.close()
        raise AssertionError(f"starting the page tried to reach the network: {guard.attempts}")
    try:
        yield Served(f"http://{args.host}:{port}/", page, studio, guard)
    finally:
        page.close()


def scene_photo(path: Path, size: tuple[int, int] = (192, 160)) -> tuple[Path, str]:
    """A toy scene (a big red circle on a yellow background; the tests swap "circle") rendered at 192 px and
    cut to `size` (not square), saved as PNG; and its caption."""
    from p2p_real.toyworld.scenes import Scene, SceneObject, render

    scene = Scene(objects=(SceneObject("red", "circle", "big", (0.36, 0.42)),), background="yellow", seed=987_654_321)
    rendered = render(scene, max(size))
    Image.fromarray(rendered.image).crop((0, 0, *size)).save(path)
    return path, rendered.caption
