"""Headless Chromium driven through its own DevTools protocol over --remote-debugging-pipe (no extra packages).

Chromium reads commands from its fd 3 and writes answers and events to its fd 4, each a JSON message ended by
a NUL byte. Started with the flags that keep it off the network (no background requests, no QUIC, every host
name unresolvable but the loopback's), in a fresh profile, in its own process group.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--remote-debugging-pipe",
)


class Chromium:
    """One headless Chromium and one page in it."""

    def __init__(self, profile: Path, log: Path, width: int = 1280, height: int = 1000) -> None:
        if CHROMIUM is None:
            raise FileNotFoundError("chromium is not installed")
        profile.mkdir(parents=True, exist_ok=True)
        to_child, self._to_chrome = _high_pipe()
        self._from_chrome, from_child = _high_pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, to_child, 3),
            (os.POSIX_SPAWN_DUP2, from_child, 4),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        ]
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        self.pid = os.posix_spawn(CHROMIUM, argv, os.environ, file_actions=actions, setsid=True)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        page = next(t for t in self.send("Target.getTargets", timeout=60)["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable", session=self.session)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile go to `events`)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if "method" in answer:
                self.events.append(answer)

    def _receive(self, deadline: float) -> dict[str, Any]:
        """The next message from Chromium, waiting until `deadline` at most."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("no answer from chromium in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed its debugging pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session,
            timeout,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"the page did not show {what} within {timeout:.0f} s")

    def navigate(self, url: str) -> None:
        """Open a URL in the page."""
        self.send("Page.navigate", {"url": url}, self.session)

    def set_files(self, selector: str, *paths: Path) -> None:
        """Choose files in the <input type=file> that `selector` finds, as a person picking them would."""
        found = self.send(
            "Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(selector)})"}, self.session
        )
        self.send(
            "DOM.setFileInputFiles",
            {"files": [str(p) for p in paths], "objectId": found["result"]["objectId"]},
            self.session,
        )

    def type_text(self, selector: str, text: str) -> None:
        """Replace the text of the field that `selector` finds by typing `text` into it, key by key, as a person
        types (each key an input event; pasting the whole text at once is not what pages see from people)."""
        self.evaluate(f"(e => {{ e.focus(); e.select(); }})(document.querySelector({json.dumps(selector)}))")
        if not text:
            for kind in ("rawKeyDown", "keyUp"):
                key = {"type": kind, "key": "Backspace", "code": "Backspace", "windowsVirtualKeyCode": 8}
                self.send("Input.dispatchKeyEvent", key, self.session)
        for char in text:
            self.send("Input.dispatchKeyEvent", {"type": "char", "text": char}, self.session)

    def click(self, selector: str) -> None:
        """Click the element that `selector` finds."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def drag(self, selector: str, points: list[tuple[float, float]]) -> None:
        """Press the left mouse button at the first point and move it through the others, then release it, as a
        person paints: points are fractions (x, y) of the box of the element that `selector` finds."""
        box = self.evaluate(
            f"(r => [r.left, r.top, r.width, r.height])(document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect())"
        )
        spots = [(box[0] + x * box[2], box[1] + y * box[3]) for x, y in points]
        kinds = ["mousePressed", *["mouseMoved"] * (len(spots) - 2), "mouseReleased"] if len(spots) > 1 else []
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": spots[0][0], "y": spots[0][1]}, self.session)
        for kind, (x, y) in zip(kinds, spots):
            event = {"type": kind, "x": x, "y": y, "button": "left", "buttons": 0 if kind == "mouseReleased" else 1}
            if kind != "mouseMoved":
                event["clickCount"] = 1
            self.send("Input.dispatchMouseEvent", event, self.session)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the window)."""
        metrics = self.send("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        size = {
            "width": int(metrics["width"]),
            "height": int(metrics["height"]),
            "deviceScaleFactor": 1,
            "mobile": False,
        }
        self.send("Emulation.setDeviceMetricsOverride", size, self.session)
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, self.session)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for so far."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        """Close the browser and end its processes."""
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, RuntimeError):
            self.send("Browser.close", timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            time.sleep(0.1)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # its own process group: what is left of this browser
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _high_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) on descriptors above 9, close-on-exec, so that placing them on 3 and 4 in
    the child cannot overwrite one with the other."""
    low = os.pipe()
    high = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in low)
    for fd in low:
        os.close(fd)
    return high
