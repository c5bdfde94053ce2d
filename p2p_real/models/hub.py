"""Bounded waits for the Hugging Face hub: a network that accepts connections but never answers fails in time.

huggingface_hub gives its file downloads a timeout (HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT) but not the
repository lookup that diffusers' from_pretrained starts with, which then waits forever. Inside
`bounded_hub_requests`, every request of huggingface_hub's shared HTTP session that has no timeout gets one;
the session is restored on the way out, so nothing changes for code outside the block.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

TIMEOUT_ENV = "HF_HUB_ETAG_TIMEOUT"  # huggingface_hub's own setting for metadata requests
DEFAULT_TIMEOUT = 10.0  # seconds; huggingface_hub's default for HF_HUB_ETAG_TIMEOUT
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")
_TIMEOUT_NAMES = ("Timeout", "TimeoutError", "TimeoutException")  # httpx, requests and urllib3 spell it so


def hub_timeout() -> float:
    """Seconds to wait for each answer of the hub: $HF_HUB_ETAG_TIMEOUT if it is a positive number, else 10."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if 0 < value < float("inf") else DEFAULT_TIMEOUT


def hub_endpoint() -> str:
    """The hub's address, as huggingface_hub uses it ($HF_ENDPOINT or https://huggingface.co)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _session() -> Any:
    """huggingface_hub's shared HTTP session (an httpx client from version 1.0 on, a requests session before)."""
    from huggingface_hub.utils import get_session

    return get_session()


def _timeout_hook(seconds: float) -> Callable[[Any], None]:
    """An httpx request hook that fills in every timeout the request leaves unset."""

    def hook(request: Any) -> None:
        timeouts = dict(request.extensions.get("timeout") or {})
        for key in _TIMEOUT_KEYS:
            if timeouts.get(key) is None:
                timeouts[key] = seconds
        request.extensions["timeout"] = timeouts

    return hook


@contextmanager
def _httpx_timeouts(client: Any, seconds: float) -> Iterator[None]:
    saved = client.event_hooks
    hooks = {kind: list(functions) for kind, functions in saved.items()}
    hooks.setdefault("request", []).append(_timeout_hook(seconds))
    client.event_hooks = hooks
    try:
        yield
    finally:
        client.event_hooks = saved


@contextmanager
def _requests_timeouts(session: Any, seconds: float) -> Iterator[None]:
    adapters = list(session.adapters.values())
    own = [vars(adapter).get("send") for adapter in adapters]
    for adapter in adapters:
        send = adapter.send

        def bounded(request: Any, *args: Any, _send: Callable[..., Any] = send, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = seconds
            return _send(request, *args, **kwargs)

        adapter.send = bounded
    try:
        yield
    finally:
        for adapter, send in zip(adapters, own):
            if send is None:
                vars(adapter).pop("send", None)
            else:
                adapter.send = send


@contextmanager
def bounded_hub_requests(seconds: float | None = None) -> Iterator[float]:
    """Within the block, hub requests without a timeout wait at most `seconds` (default `hub_timeout()`) for
    each connection and each answer; yields the value used."""
    seconds = hub_timeout() if seconds is None else float(seconds)
    session = _session()
    if hasattr(session, "event_hooks"):
        bound = _httpx_timeouts(session, seconds)
    elif hasattr(session, "adapters"):
        bound = _requests_timeouts(session, seconds)
    else:  # an HTTP client this version does not know: leave it alone
        bound = _unchanged()
    with bound:
        yield seconds


@contextmanager
def _unchanged() -> Iterator[None]:
    yield


def is_timeout(exc: BaseException) -> bool:
    """Whether an error, or one it was raised from, is a network timeout (httpx, requests or the socket's)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError) or type(current).__name__.endswith(_TIMEOUT_NAMES):
            return True
        current = current.__cause__ or current.__context__
    return False
