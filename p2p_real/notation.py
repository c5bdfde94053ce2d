"""The short text forms of edit settings that the command line and batch recipes share.

    window        "0.8" (the first 80% of the steps) or "0.1:0.8" (from 10% to 80%)
    word window   "dog=0.4" or "dog=0.1:0.4": a target word's own cross-attention window
    word pair     "cat:dog" (source word : target word), "cat:dog,lion" (one target word per target prompt),
                  "cat" (the same word on both sides), "red car:blue truck", "hat:" (source side only)
    reweight      "fluffy=2", or "fluffy=2,0.5" with one factor per target prompt
    size          "512x384" (width x height, multiples of 8, at most 2048)

Each parser takes one piece of text and raises ValueError saying what is wrong with it; the converters
turn parsed pieces (or a recipe's JSON mappings) into EditSpec values, and the formatters write values back as
text. EditSpec's fields name these for their options and recipe keys (p2p_real.spec.Setting). No torch here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from itertools import zip_longest
from typing import Any

from inversion import validation
from inversion.validation import quoted

DEFAULT_KEY = "default_"  # the key of the window every other word uses, in a per-word window dict
Window = float | tuple[float, float]
CrossWindow = Window | Mapping[str, Window]
Pair = tuple[str, tuple[str, ...]]  # (source word, target word(s): one shared or one per target)
Reweight = tuple[str, tuple[float, ...]]  # (word, factor(s): one shared or one per target)
WindowEntry = tuple[str | None, Window]  # (None, window) is the default; (word, window) a word's own


def parse_number(text: str) -> float:
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{quoted(text)} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{quoted(text)} is not a finite number")
    return value


def parse_whole(text: str) -> int:
    """A whole number (its range is the caller's to check)."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{quoted(text)} is not a whole number") from None


def parse_fraction(text: str) -> float:
    """A number in [0, 1]."""
    return validation.fraction(parse_number(text), "")


def parse_window(text: str) -> Window:
    """A fraction of the steps ('0.8') or a START:END pair of fractions ('0.1:0.8')."""
    if ":" not in text:
        return parse_fraction(text)
    start, _, end = text.partition(":")
    return validation.window((parse_fraction(start), parse_fraction(end)), "")


def parse_window_entry(text: str) -> WindowEntry:
    """A window for every word ('0.8', '0.1:0.8') or for one word of the targets ('dog=0.4')."""
    if "=" not in text:
        return (None, parse_window(text))
    word, _, value = text.partition("=")
    if not word.strip():
        raise ValueError(f"WORD=WINDOW needs a word, got {quoted(text)}")
    return (word.strip(), parse_window(value))


def parse_pair(text: str) -> Pair:
    """SOURCE:TARGET words of a local blend; TARGET may list one word per target prompt (dog,lion)."""
    if text.count(":") > 1:
        raise ValueError(f"use SOURCE:TARGET (one colon), got {quoted(text)}")
    source, _, target = text.partition(":") if ":" in text else (text, ":", text)
    targets = tuple(t.strip() for t in target.split(","))
    if not source.strip() and not any(targets):
        raise ValueError(f"{quoted(text)} names no word")
    return (source.strip(), targets)


def parse_reweight(text: str) -> Reweight:
    """WORD=FACTOR, or WORD=F1,F2,... with one factor per target prompt."""
    word, sep, values = text.partition("=")
    if not sep or not word.strip() or not values.strip():
        raise ValueError(f"use WORD=FACTOR such as fluffy=2, got {quoted(text)}")
    return (word.strip(), tuple(parse_number(v) for v in values.split(",")))


def parse_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, both positive multiples of 8, at most validation.MAX_WORKING_SIDE."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"expected WIDTHxHEIGHT such as 512x384, got {quoted(text)}")
    width, height = int(match[1]), int(match[2])
    if width < 8 or height < 8 or width % 8 or height % 8:
        raise ValueError(f"width and height must be positive multiples of 8, got {text}")
    if max(width, height) > validation.MAX_WORKING_SIDE:
        raise ValueError(f"width and height must be at most {validation.MAX_WORKING_SIDE} pixels, got {text}")
    return (width, height)


def format_window(window: Window) -> str:
    """The text form of a window: '0.8' or '0.1:0.8'."""
    return f"{window[0]!r}:{window[1]!r}" if isinstance(window, tuple) else repr(window)


def cross_window(entries: Sequence[WindowEntry]) -> CrossWindow:
    """EditSpec.cross_replace_steps from window entries: one window, or {"default_": window, word: window}
    when a word has its own (the default window of such a dict is 0.8 unless an entry sets it)."""
    default: Window = 0.8
    words: dict[str, Window] = {}
    for word, window in entries:
        if word is None:
            default = window
        else:
            words[word] = window
    return {DEFAULT_KEY: default, **words} if words else default


def equalizer(reweights: Sequence[Reweight]) -> dict[str, float | tuple[float, ...]] | None:
    """EditSpec.equalizer from reweights: {word: factor, or factors per target}."""
    if not reweights:
        return None
    return {word: values[0] if len(values) == 1 else tuple(values) for word, values in reweights}


def pair_rows(pairs: Sequence[Pair], n_targets: int, name: str) -> list[list[str]] | None:
    """Words per prompt row (source, then each target) from word pairs, or None without pairs; `name`
    (the setting, as the caller spells it) goes into the error for a pair with the wrong number of words."""
    if not pairs:
        return None
    for source, targets in pairs:
        if len(targets) not in (1, n_targets):
            raise ValueError(
                f"{name} {source}:{','.join(targets)} lists {len(targets)} target words for "
                f"{n_targets} target prompts (give one word, or one per target)"
            )
    rows = [[source for source, _ in pairs if source]]
    for j in range(n_targets):
        row = [targets[j] if len(targets) > 1 else targets[0] for _, targets in pairs]
        rows.append([word for word in row if word])
    return rows


def format_number(value: float) -> str:
    """The text form of a number: '0.25', '2'."""
    return repr(value)


def format_cross_window(window: CrossWindow) -> list[str]:
    """The texts of a cross-attention window, one per option: ['0.8'], or ['0.8', 'dog=0.1:0.4'] for per-word
    windows (a dict without "default_" injects every other word always: '1.0')."""
    if not isinstance(window, Mapping):
        return [format_window(window)]
    texts = [format_window(window.get(DEFAULT_KEY, 1.0))]
    return texts + [f"{word}={format_window(w)}" for word, w in window.items() if word != DEFAULT_KEY]


def format_pairs(words: Sequence[Sequence[str]]) -> list[str]:
    """SOURCE:TARGET pairs of a (source words, target words) setting: 'cat:dog', 'hat:' or ':dog'."""
    if len(words) != 2:
        raise ValueError(f"words of one target prompt are written as (source words, target words), got {words!r}")
    return [f"{s or ''}:{t or ''}" for s, t in zip_longest(words[0], words[1])]


def format_reweights(equalizer: Mapping[str, float | Sequence[float]]) -> list[str]:
    """WORD=FACTOR texts of an equalizer: 'fluffy=2.0', or 'big=1.5,0.5' with one factor per target."""
    texts = []
    for word, factor in equalizer.items():
        factors = factor if isinstance(factor, Sequence) else (factor,)
        texts.append(f"{word}={','.join(repr(f) for f in factors)}")
    return texts


def window_mapping(windows: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A recipe's {word: window} ("default_" for the other words): each text window parsed, other values kept."""
    parsed = {}
    for word, window in windows.items():
        try:
            parsed[word] = parse_window(window) if isinstance(window, str) else window
        except ValueError as exc:
            raise ValueError(f"{name}[{word!r}]: {exc}") from exc
    return parsed


def pair_mapping(pairs: Mapping[str, Any], n_targets: int, name: str) -> list[list[str]] | None:
    """Words per prompt row from a recipe's {source word: target word, or a list of one per target}."""
    entries = [
        (str(source), tuple(map(str, target)) if isinstance(target, list) else (str(target),))
        for source, target in pairs.items()
    ]
    return pair_rows(entries, n_targets, name)
