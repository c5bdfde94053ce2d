"""Versions of p2p-real and of the libraries its results depend on, read without importing them."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = ("p2p-real", "torch", "diffusers", "transformers", "safetensors", "numpy", "pillow")


def package_version(name: str = "p2p-real") -> str:
    """An installed distribution's version, or 'not installed'."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Python's version and those of the libraries a result depends on."""
    return {"python": platform.python_version(), **{name: package_version(name) for name in LIBRARIES}}
