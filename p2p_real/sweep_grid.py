"""The combinations of a settings sweep: every EditSpec setting given as a list of values, crossed.

`Editor.sweep` runs them (p2p_real.editing.sweep); the command line's `--sweep cross=0.2,0.5,0.8` and the page give the
values as text, parsed here. No torch here: the command line checks a sweep before it loads anything.
Design note: docs/sweep.md.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from p2p_real import notation
from p2p_real.spec import SCHEMA, SETTINGS, EditSpec, json_plain

MAX_COMBINATIONS = 64
# Short names of the settings a sweep usually varies (the command line and the page); the full field names
# work too.
SHORT_NAMES = {
    "cross": "cross_replace_steps",
    "self": "self_replace_steps",
    "threshold": "blend_threshold",
    "start": "blend_start",
    "pool": "blend_pool",
}
LABELS = {field: short for short, field in SHORT_NAMES.items()}
# How values are written as text (the command line, the page): each setting's own text form (p2p_real.spec), but a
# sweep of cross-attention takes plain windows, and the other repeatable settings (words, reweights) are no text
# sweeps (their texts hold commas).
TEXT_VALUES: dict[str, Callable[[str], Any]] = {
    name: notation.parse_window if name == "cross_replace_steps" else setting.parse
    for name, setting in SCHEMA.items()
    if setting.combine is None or name == "cross_replace_steps"
}


class SweepError(ValueError):
    """A sweep that cannot run: an unknown setting, no values, too many combinations or a refused value."""


@dataclass(frozen=True)
class Combination:
    """One combination of a sweep: the swept settings' values, the full spec, and its label."""

    index: int  # 1, 2, ...: the K of its files NAME.K.*
    settings: dict[str, Any]  # swept setting (field name) -> value
    spec: EditSpec
    label: str  # "cross=0.2 self=0.6"


def setting_name(text: str) -> str:
    """The EditSpec field a sweep names: a short name (cross, self, threshold, start, pool) or a field name."""
    name = text.strip().replace("-", "_")
    name = SHORT_NAMES.get(name, name)
    if name not in SETTINGS:
        raise SweepError(
            f"{text!r} is not an edit setting to sweep (short names: {', '.join(SHORT_NAMES)}; or one "
            f"of {', '.join(SETTINGS)})"
        )
    return name


def parse_values(name: str, text: str) -> list[Any]:
    """The comma-separated values of one swept setting, as text: '0.2,0.5,0.8' (windows may be '0.1:0.8')."""
    parse = TEXT_VALUES.get(name)
    if parse is None:
        raise SweepError(
            f"{name} cannot be swept from text (text sweeps take {', '.join(TEXT_VALUES)}); sweep it "
            "from Python with Editor.sweep"
        )
    pieces = [piece.strip() for piece in text.split(",")]
    if not text.strip() or not all(pieces):
        raise SweepError(f"sweep of {name}: give comma-separated values, e.g. {name}=0.2,0.5, got {text!r}")
    values = []
    for piece in pieces:
        try:
            values.append(parse(piece))
        except ValueError as exc:
            raise SweepError(f"sweep of {name}: value {piece!r} is refused: {exc}") from None
    return values


def parse_sweep(entry: str) -> tuple[str, list[Any]]:
    """One `--sweep NAME=V1,V2,...` entry: (field name, values)."""
    name, sep, values = entry.partition("=")
    if not sep:
        raise SweepError(f"a sweep is NAME=V1,V2,... (e.g. cross=0.2,0.5,0.8), got {entry!r}")
    field = setting_name(name)
    return field, parse_values(field, values)


def sweep_lists(entries: list[str]) -> dict[str, list[Any]]:
    """Several `--sweep` entries as {field: values}; a setting named twice is an error."""
    lists: dict[str, list[Any]] = {}
    for entry in entries:
        field, values = parse_sweep(entry)
        if field in lists:
            raise SweepError(f"{field} is swept twice; give all its values in one NAME=V1,V2,... entry")
        lists[field] = values
    return lists


def format_value(value: Any) -> str:
    """A setting's value as a label shows it: 0.5, 0.1:0.8, refine, JSON for words and per-word windows."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{value[0]:g}:{value[1]:g}"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(json_plain(value), separators=(",", ":"))


def label(settings: Mapping[str, Any]) -> str:
    """'cross=0.2 self=0.6': each swept setting by its short name (else its field name) and value."""
    return " ".join(f"{LABELS.get(name, name)}={format_value(value)}" for name, value in settings.items())


def sweep_grid(base: EditSpec, lists: Mapping[str, Any]) -> list[Combination]:
    """Every combination of the listed values over `base` (the first setting varies slowest).

    A list gives a setting's values; any other value (a number, a (start, end) window) is one value. Raises
    SweepError naming the problem: no setting, a name that is no EditSpec setting, an empty list, more than
    MAX_COMBINATIONS combinations, or a value (or a combination) the setting refuses.
    """
    if not lists:
        raise SweepError(
            "a sweep needs at least one setting given as a list of values, e.g. cross_replace_steps=[0.2, 0.5, 0.8]"
        )
    values: dict[str, list[Any]] = {}
    for name, given in lists.items():
        if name not in SETTINGS:
            raise SweepError(f"{name!r} is not an edit setting to sweep (expected one of {', '.join(SETTINGS)})")
        if isinstance(given, list) and not given:
            raise SweepError(f"the sweep of {name} is an empty list: give at least one value")
        values[name] = list(given) if isinstance(given, list) else [given]
    count = math.prod(len(v) for v in values.values())
    if count > MAX_COMBINATIONS:
        sizes = " x ".join(str(len(v)) for v in values.values())
        raise SweepError(f"a sweep of {sizes} = {count} combinations is too many (at most {MAX_COMBINATIONS})")
    for name, options in values.items():
        for value in options:
            try:
                base.replace(**{name: value})
            except ValueError as exc:
                raise SweepError(f"the sweep of {name} has a value the setting refuses, {value!r}: {exc}") from None
    combinations = []
    for index, chosen in enumerate(itertools.product(*values.values()), start=1):
        settings = dict(zip(values, chosen))
        try:
            spec = base.replace(**settings)
        except ValueError as exc:
            raise SweepError(f"sweep combination {label(settings)} is refused: {exc}") from None
        combinations.append(Combination(index, settings, spec, label(settings)))
    return combinations
