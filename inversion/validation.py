"""Checks of plain values (whole numbers, numbers, fractions, windows, choices, seeds) and the errors of
prompts that cannot be used: the one place such checks live.

Each check returns the value it accepts and raises an error whose message names the setting as the caller
wrote it: `name` is "num_inference_steps" for the Python API, "--steps" on the command line, "steps" in a
batch recipe, or "" where the caller adds the name itself (argparse does). Nothing here imports torch, so
settings objects and the command line can use it without loading the model code.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Sequence
from typing import Any

Window = float | tuple[float, float]
SEED_LIMIT = 2**63
MAX_STEPS = 1000  # DDIM steps: Stable Diffusion was trained on 1000 timesteps, so more steps repeat timesteps
MAX_WORKING_SIDE = 2048  # pixels per side of a working image (4x SDXL's pixels); beyond it memory runs out


QUOTE_CHARS = 80  # the most characters of a value that an error message quotes
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, QUOTE_CHARS, QUOTE_CHARS, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4


def callback(value: Any, name: str) -> Any:
    """None or something callable (a step callback), else a ValueError naming it."""
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be a function called after each step (or None), got {quoted(value)}")
    return value


def quoted(value: Any) -> str:
    """repr(value) for an error message, at most QUOTE_CHARS characters whatever its size or depth."""
    text = _SHORT.repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


class PromptError(ValueError):
    """A prompt, word or edit that cannot be used; the message names it."""


class PromptTooLongError(PromptError):
    """A prompt with more tokens than the text encoder reads."""


def _named(name: str, problem: str) -> str:
    return f"{name} {problem}" if name else problem


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plain(value: Any) -> Any:
    """A numpy or torch scalar (0-d) as the Python number it holds; anything else as it is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item) and tuple(getattr(value, "shape", (None,))) == ():
        try:
            held = item()
        except Exception:  # not a scalar after all
            return value
        if isinstance(held, (bool, int, float)):
            return held
    return value


def whole_number(
    value: Any, name: str, minimum: int = 1, error: type[ValueError] = ValueError, maximum: int | None = None
) -> int:
    """An int (not a bool; numpy and torch scalars count) of at least `minimum` (and at most `maximum`)."""
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(_named(name, f"must be a whole number, got {quoted(value)}"))
    if value < minimum:
        raise error(_named(name, f"must be at least {minimum}, got {value!r}"))
    if maximum is not None and value > maximum:
        raise error(_named(name, f"must be at most {maximum}, got {value!r}"))
    return value


def steps(value: Any, name: str, error: type[ValueError] = ValueError) -> int:
    """A step count: a whole number from 1 to MAX_STEPS (checked before anything is allocated for the steps)."""
    return whole_number(value, name, error=error, maximum=MAX_STEPS)


def number(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    error: type[ValueError] = ValueError,
) -> float:
    """A finite int or float within [minimum, maximum] (either bound may be None), as a float."""
    value = plain(value)
    if not _is_number(value):
        raise error(_named(name, f"must be a number, got {quoted(value)}"))
    if not math.isfinite(value):
        raise error(_named(name, f"must be a finite number, got {value!r}"))
    if minimum is not None and value < minimum:
        raise error(_named(name, f"must be >= {minimum:g}, got {value!r}"))
    if maximum is not None and value > maximum:
        raise error(_named(name, f"must be <= {maximum:g}, got {value!r}"))
    return float(value)


def fraction(value: Any, name: str, error: type[ValueError] = ValueError) -> float:
    """A number in [0, 1]."""
    value = plain(value)
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise error(_named(name, f"must be a fraction in [0, 1], got {quoted(value)}"))
    return float(value)


def side_fraction(value: Any, name: str) -> float:
    """A fraction of the latent's side in (0, 1]: 1 is the full latent, 0.5 half its side."""
    value = plain(value)
    if not _is_number(value) or not 0.0 < value <= 1.0:
        raise ValueError(_named(name, f"must be a fraction of the latent side in (0, 1], got {value!r}"))
    return float(value)


def window(value: Any, name: str) -> Window:
    """A fraction of the steps (end of a window from 0) or a (start, end) pair with 0 <= start <= end <= 1."""
    value = plain(value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        value = (plain(value[0]), plain(value[1]))
    if _is_number(value):
        return fraction(value, name)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        if not all(_is_number(v) and math.isfinite(v) for v in value):
            raise ValueError(_named(name, f"must be a fraction or a (start, end) pair, got {quoted(value)}"))
        start, end = float(value[0]), float(value[1])
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(_named(name, f"must be a window START:END with 0 <= START <= END <= 1, got {value!r}"))
        return (start, end)
    raise ValueError(_named(name, f"must be a fraction or a (start, end) pair, got {quoted(value)}"))


def choice(value: Any, choices: Iterable[str], name: str, error: type[ValueError] = ValueError) -> str:
    """One of `choices`."""
    options = tuple(choices)
    if value not in options:
        raise error(_named(name, f"must be one of {', '.join(options)}, got {quoted(value)}"))
    return value


def seed(value: Any, name: str) -> int:
    """A seed for torch.Generator.manual_seed: a whole number in [0, 2**63)."""
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(_named(name, f"must be a whole number, got {quoted(value)}"))
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(_named(name, f"must be in [0, 2**63), got {value}"))
    return value


def multiple_of(value: Any, multiple: int, name: str, maximum: int | None = None) -> int:
    """A positive whole number divisible by `multiple` (image sides: 8 for Stable Diffusion's VAE), at most
    `maximum` if given."""
    bad = isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % multiple
    if bad or (maximum is not None and value > maximum):
        limit = "" if maximum is None else f" up to {maximum}"
        raise ValueError(_named(name, f"must be a positive multiple of {multiple}{limit}, got {value!r}"))
    return value


def size(value: Any, name: str, multiple: int = 1, maximum: int | None = None) -> tuple[int, int]:
    """(width, height): two positive whole numbers, multiples of `multiple`, at most `maximum` if given."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % multiple == 0 for v in value)
    if not ok:
        what = "positive whole numbers" if multiple == 1 else f"positive multiples of {multiple}"
        raise ValueError(_named(name, f"must be (width, height), {what}, got {quoted(value)}"))
    if maximum is not None and max(value) > maximum:
        raise ValueError(
            _named(
                name,
                f"{value[0]}x{value[1]} is too large: a working image may be at most {maximum} "
                "pixels per side (the edit is pasted back onto the photo at its own resolution "
                "anyway)",
            )
        )
    return int(value[0]), int(value[1])
