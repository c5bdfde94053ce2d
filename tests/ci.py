"""What a test needs from the machine: locally a skip with the reason, in CI (CI=true) a failure with it, so a
green CI run never hides a test that did not run."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether the tests run in CI: the CI variable is set to true (or 1), as CI services and .ci/run set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def unavailable(reason: str) -> NoReturn:
    """Stop the test because the machine lacks something: pytest.fail in CI, pytest.skip elsewhere."""
    if in_ci():
        pytest.fail(f"CI must run this test, but {reason}", pytrace=False)
    pytest.skip(reason)
