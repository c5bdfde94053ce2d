"""The Setting in each EditSpec field's metadata: how the front ends spell and read that setting.

The command line's options (p2p_real.commands.options), a batch recipe's keys (p2p_real.batches.recipe), the page's
command (p2p_real.ui.choices), text sweeps (p2p_real.sweep_grid) and the names in messages are loops over these, so a
new setting is one field of EditSpec (p2p_real/spec.py) with its Setting, plus its use in the edit (docs/design.md
§6). No torch here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SETTING = "setting"  # the key of a field's Setting in its metadata


@dataclass(frozen=True)
class Setting:
    """How the front ends spell and read one setting (the text forms are p2p_real.notation's)."""

    flag: str  # the command line's option: "--cross-replace"
    key: str  # a batch recipe's key: "cross_replace"
    help: str  # the option's help; "{default}" stands for the default
    parse: Callable[[str], Any]  # one text -> the value, or one entry of a repeatable setting
    show: Callable[[Any], str | list[str]]  # the value -> its text, or one text per entry of a repeatable setting
    combine: Callable[[list[Any], int, str], Any] | None = None  # repeatable: (entries, n_targets, name) -> value
    mapping: Callable[[Mapping[str, Any], int, str], Any] | None = None  # a recipe's {word: ...} -> the value
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    photo: bool = False  # a setting of photo edits alone (user mask, paste-back): no option of `generate`


def setting(**how: Any) -> dict[str, Setting]:
    """A field's metadata: its Setting, from Setting's arguments."""
    return {SETTING: Setting(**how)}


def schema(settings: type) -> dict[str, Setting]:
    """Field name -> Setting of a settings dataclass, in field order (compared fields only: `names` is none);
    a field without a Setting is a TypeError naming it."""
    found = {}
    for f in dataclasses.fields(settings):
        if not f.compare:
            continue
        if not isinstance(f.metadata.get(SETTING), Setting):
            raise TypeError(
                f"{settings.__name__}.{f.name} has no Setting (its option, recipe key, text form and help): "
                "declare it with field(default=..., metadata=setting(flag=..., key=..., ...)), docs/design.md §6"
            )
        found[f.name] = f.metadata[SETTING]
    return found
