"""EditSpec: every Prompt-to-Prompt setting of one edit, its default set once, checked once, stored as JSON.

The Python API (Editor.edit / Editor.generate keyword arguments), the command line, batch recipes, the page and
the sidecar of every result build or store this one object. Each field carries how the front ends spell and read
it (a p2p_real.schema.Setting: its option, recipe key, text form and help), and they are loops over the fields:
a new setting is a field here, plus its use in the edit (docs/design.md §6). Checks name each setting as the
caller spells it: `names` maps a field to its spelling ({"equalizer": "--reweight"} on the command line). What
can only be checked against the prompts (words, per-target counts, token alignment) is Editor.check's job.
No torch here: the command line builds specs before it loads anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inversion import validation
from inversion.validation import PromptError
from p2p_real import notation
from p2p_real.notation import DEFAULT_KEY, CrossWindow, Window
from p2p_real.schema import schema, setting

EDIT_KINDS = ("auto", "replace", "refine", "reweight")
MASK_MODES = ("replace", "intersect")
# Generated images inject self-attention for fewer steps and only in the coarsest layers (the P2P notebook);
# photos use the null-text notebook's 0.6 and latent/2 (the field defaults below).
SYNTHETIC = {"self_replace_steps": 0.4, "self_replace_max_res": 0.25}
DEFAULT_CROSS_REPLACE = 0.8  # the default cross_replace_steps and self_replace_steps: fractions of the steps
DEFAULT_SELF_REPLACE = 0.6

Words = Sequence[str | Sequence[str]]
Equalizer = Mapping[str, float | Sequence[float]]
MAX_FEATHER = 0.5  # the paste-back feather's bound: masks.paste.MAX_FEATHER (this module stays free of torch)
MAX_BLEND_POOL = 8  # map cells; 8 is half of a 16x16 map
MAX_REWEIGHT = 10.0  # |c| of a reweight factor; the paper's examples stay in [-2, 2]


def _pool_radius(text: str) -> int:
    """A blend pool as text: a whole number of map cells in [0, MAX_BLEND_POOL]."""
    return validation.whole_number(notation.parse_whole(text), "", minimum=0, maximum=MAX_BLEND_POOL)


@dataclass(frozen=True)
class EditSpec:
    """The settings of one Prompt-to-Prompt edit. `EditSpec()` has the defaults for real photos,
    `EditSpec.synthetic()` those for generated images; any field can be given to either.

    Attributes:
        edit: "auto" (replace for prompts with equal word counts, else refine), "replace", "refine" or
            "reweight".
        cross_replace_steps: when target rows take the source's cross-attention: a fraction of the steps,
            a (start, end) pair of fractions, or {"default_": window, word: window} for per-word windows.
        self_replace_steps: when target rows take the source's self-attention (fraction or pair).
        self_replace_max_res: self-attention is injected only in layers at most this fraction of the
            latent's side (0.5: latent/2, 0.25: latent/4).
        blend_words: local blend: words per prompt row, or a (source words, target words) pair shared by
            every target, e.g. (["cat"], ["dog"]); None turns local blend off.
        subtract_words: words whose regions are removed from the local-blend mask (needs blend_words).
        blend_threshold: local-blend mask threshold on the normalised attention.
        blend_pool: the blend words' maps grow by this many map cells (a max-pool) before the threshold:
            1, a 3x3 pool as in the reference; 0 keeps a sharp model's maps to the object's outline.
        blend_start: local blend starts after this fraction of the steps.
        equalizer: reweight: {word: factor} or {word: [factor per target]}, composing with the edit.
        mask_mode: a user mask "replace"s the attention mask or "intersect"s it (needs blend_words).
        feather: paste-back feather (Gaussian sigma as a fraction of the photo box's shorter side); None:
            a third of an attention-map cell.
        names: how the caller spells each setting, for messages; not compared, not stored.
    """

    edit: str = field(
        default="auto",
        metadata=setting(
            flag="--edit",
            key="edit",
            parse=str.strip,
            show=str,
            choices=EDIT_KINDS,
            help="replace (word swap), refine (add words), reweight, or auto (default {default})",
        ),
    )
    cross_replace_steps: CrossWindow = field(
        default=DEFAULT_CROSS_REPLACE,
        metadata=setting(
            flag="--cross-replace",
            key="cross_replace",
            parse=notation.parse_window_entry,
            combine=lambda entries, n_targets, name: notation.cross_window(entries),
            mapping=lambda windows, n_targets, name: notation.window_mapping(windows, name),
            show=notation.format_cross_window,
            metavar="F|A:B|WORD=F",
            help="cross-attention injection: fraction of the steps, a START:END range, or a word's own window "
            "(repeatable; default {default})",
        ),
    )
    self_replace_steps: Window = field(
        default=DEFAULT_SELF_REPLACE,
        metadata=setting(
            flag="--self-replace",
            key="self_replace",
            parse=notation.parse_window,
            show=notation.format_window,
            metavar="F|A:B",
            help="self-attention injection window (default {default})",
        ),
    )
    self_replace_max_res: float = field(
        default=0.5,
        metadata=setting(
            flag="--self-replace-max-res",
            key="self_replace_max_res",
            parse=notation.parse_fraction,
            show=notation.format_number,
            metavar="F",
            help="inject self-attention only in layers up to this fraction of the latent side (default {default})",
        ),
    )
    blend_words: Words | None = field(
        default=None,
        metadata=setting(
            flag="--blend",
            key="blend",
            parse=notation.parse_pair,
            combine=notation.pair_rows,
            mapping=notation.pair_mapping,
            show=notation.format_pairs,
            metavar="SRC:TGT",
            help="local blend: edit only where SRC (source prompt) and TGT (target prompt) attend; TGT may list one "
            "word per target (cat:dog,lion); SRC alone uses the same word in both; quote phrases ('red car:blue "
            "truck'); repeatable",
        ),
    )
    subtract_words: Words | None = field(
        default=None,
        metadata=setting(
            flag="--subtract",
            key="subtract",
            parse=notation.parse_pair,
            combine=notation.pair_rows,
            mapping=notation.pair_mapping,
            show=notation.format_pairs,
            metavar="SRC:TGT",
            help="remove these words' regions from the local-blend mask (repeatable)",
        ),
    )
    blend_threshold: float = field(
        default=0.3,
        metadata=setting(
            flag="--blend-threshold",
            key="blend_threshold",
            parse=notation.parse_fraction,
            show=notation.format_number,
            metavar="F",
            help="local-blend mask threshold (default {default})",
        ),
    )
    blend_pool: int = field(
        default=1,
        metadata=setting(
            flag="--blend-pool",
            key="blend_pool",
            parse=_pool_radius,
            show=notation.format_number,
            metavar="N",
            help="grow the blend words' maps by N map cells before the threshold (default {default}, the reference's "
            "3x3 max-pool; 0 for none)",
        ),
    )
    blend_start: float = field(
        default=0.2,
        metadata=setting(
            flag="--blend-start",
            key="blend_start",
            parse=notation.parse_fraction,
            show=notation.format_number,
            metavar="F",
            help="start local blend after this fraction of the steps (default {default})",
        ),
    )
    equalizer: Equalizer | None = field(
        default=None,
        metadata=setting(
            flag="--reweight",
            key="reweight",
            parse=notation.parse_reweight,
            combine=lambda entries, n_targets, name: notation.equalizer(entries),
            show=notation.format_reweights,
            metavar="WORD=F",
            help="scale a target word's attention, e.g. fluffy=2 (or fluffy=2,0.5 per target; repeatable)",
        ),
    )
    mask_mode: str = field(
        default="replace",
        metadata=setting(
            flag="--mask-mode",
            key="mask_mode",
            parse=str.strip,
            show=str,
            choices=MASK_MODES,
            photo=True,
            help="replace the attention mask (default), or intersect with it (needs --blend)",
        ),
    )
    feather: float | None = field(
        default=None,
        metadata=setting(
            flag="--feather",
            key="feather",
            parse=notation.parse_number,
            show=notation.format_number,
            metavar="F",
            photo=True,
            help=f"paste-back feather: the Gaussian's sigma as a fraction of the photo box's shorter side, at most "
            f"{MAX_FEATHER} (default: a third of an attention-map cell)",
        ),
    )
    names: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def synthetic(cls, **settings: Any) -> EditSpec:
        """The defaults for generated images (self-attention injected up to 0.4 of the steps, at latent/4)."""
        return cls(**{**SYNTHETIC, **settings})

    def __post_init__(self) -> None:
        n = self.name
        set_ = object.__setattr__
        validation.choice(self.edit, EDIT_KINDS, n("edit"), error=PromptError)
        set_(self, "cross_replace_steps", _cross_window(self.cross_replace_steps, n("cross_replace_steps")))
        set_(self, "self_replace_steps", validation.window(self.self_replace_steps, n("self_replace_steps")))
        set_(
            self, "self_replace_max_res", validation.side_fraction(self.self_replace_max_res, n("self_replace_max_res"))
        )
        set_(self, "blend_words", _words(self.blend_words, n("blend_words")))
        set_(self, "subtract_words", _words(self.subtract_words, n("subtract_words")))
        set_(self, "blend_threshold", validation.fraction(self.blend_threshold, n("blend_threshold")))
        validation.whole_number(self.blend_pool, n("blend_pool"), minimum=0, maximum=MAX_BLEND_POOL)
        set_(self, "blend_start", validation.fraction(self.blend_start, n("blend_start")))
        set_(self, "equalizer", _equalizer(self.equalizer, n("equalizer")))
        validation.choice(self.mask_mode, MASK_MODES, n("mask_mode"))
        if self.feather is not None:
            set_(self, "feather", validation.number(self.feather, n("feather"), minimum=0, maximum=MAX_FEATHER))
        if self.subtract_words is not None and self.blend_words is None:
            raise ValueError(
                f"{n('subtract_words')} needs {n('blend_words')}: it removes words from the local-blend mask"
            )
        if self.mask_mode == "intersect" and self.blend_words is None:
            raise ValueError(
                f"{n('mask_mode')} 'intersect' needs {n('blend_words')}: there is no attention mask to intersect with"
            )
        if self.edit == "reweight" and not self.equalizer:
            raise PromptError(
                f"{n('edit')} 'reweight' needs an equalizer: give {n('equalizer')}, e.g. {{'fluffy': 2.0}}"
            )

    def name(self, setting: str) -> str:
        """How the caller spells `setting` (the field name unless `names` says otherwise)."""
        return (self.names or {}).get(setting, setting)

    def replace(self, **changes: Any) -> EditSpec:
        """A copy with these settings changed (and checked), spelt as this spec spells them."""
        return dataclasses.replace(self, **changes)

    def updated(self, **changes: Any) -> EditSpec:
        """A copy with the settings that are not None changed: what keyword arguments add to a spec."""
        given = {key: value for key, value in changes.items() if value is not None}
        return self.replace(**given) if given else self

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain JSON values (windows and word lists as lists)."""
        return {name: json_plain(getattr(self, name)) for name in SETTINGS}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], names: Mapping[str, str] | None = None, synthetic: bool = False
    ) -> EditSpec:
        """The spec `to_dict` wrote (or any subset of its keys; the others take the defaults, those of
        generated images with `synthetic=True`)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"edit settings must be a mapping of setting to value, got {validation.quoted(data)}")
        for key in data:
            if key not in SETTINGS:
                raise ValueError(f"unknown edit setting {key!r} (expected one of {', '.join(SETTINGS)})")
        base = SYNTHETIC if synthetic else {}
        return cls(**{**base, **data}, names=names)


SCHEMA = schema(EditSpec)  # field name -> how the front ends spell and read it
SETTINGS = tuple(SCHEMA)
FLAGS = {name: s.flag for name, s in SCHEMA.items()}  # how the command line spells each setting
KEYS = {name: s.key for name, s in SCHEMA.items()}  # how a batch recipe spells each setting


def settings_in(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The edit settings among a call's arguments (named as EditSpec's fields) that were given (not None)."""
    return {name: arguments[name] for name in SETTINGS if arguments.get(name) is not None}


def json_plain(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, recursively: what JSON stores."""
    if isinstance(value, Mapping):
        return {str(k): json_plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [json_plain(v) for v in value]
    return value


def _cross_window(value: Any, name: str) -> CrossWindow:
    """One window, or {word: window} with "default_" for the other words."""
    if not isinstance(value, Mapping):
        return validation.window(value, name)
    windows = {}
    for word, window in value.items():
        if not isinstance(word, str) or not word.strip():
            raise PromptError(f"{name} keys must be words (or {DEFAULT_KEY!r}), got {validation.quoted(word)}")
        windows[word] = validation.window(window, f"{name}[{word!r}]")
    return windows


def given_spec(spec: Any) -> EditSpec | None:
    """`spec=` as given to an API call: None or an EditSpec (anything else is a ValueError, not a crash)."""
    if spec is not None and not isinstance(spec, EditSpec):
        raise ValueError(f"spec must be an EditSpec (p2p_real.EditSpec(...)), got {type(spec).__name__}")
    return spec


def _words(words: Any, name: str) -> tuple[tuple[str, ...], ...] | None:
    """Words per prompt row, or a (source, target) pair: each entry one word or a list of words."""
    if words is None:
        return None
    ok = isinstance(words, Sequence) and not isinstance(words, str)
    ok = ok and all(
        isinstance(e, str) or (isinstance(e, Sequence) and all(isinstance(w, str) for w in e)) for e in words
    )
    if not ok:
        raise PromptError(f"{name} must give words per prompt, e.g. (['cat'], ['dog']), got {validation.quoted(words)}")
    return tuple((e,) if isinstance(e, str) else tuple(dict.fromkeys(e)) for e in words)  # duplicates: once


def _equalizer(equalizer: Any, name: str) -> dict[str, float | tuple[float, ...]] | None:
    """{word: factor} or {word: factors per target}; every factor a finite number in [-10, 10]."""
    if equalizer is None or (isinstance(equalizer, Mapping) and not equalizer):
        return None
    if not isinstance(equalizer, Mapping):
        raise PromptError(
            f"{name} must map words to factors, e.g. {{'fluffy': 2.0}}, got {validation.quoted(equalizer)}"
        )
    out: dict[str, float | tuple[float, ...]] = {}
    for word, value in equalizer.items():
        if not isinstance(word, str) or not word.strip():
            raise PromptError(f"{name} keys must be words, got {validation.quoted(word)}")
        label = f"{name}[{word!r}]"
        if isinstance(value, Sequence) and not isinstance(value, str):
            out[word] = tuple(reweight_factor(v, label) for v in value)
        else:
            out[word] = reweight_factor(value, label)
    return out


def reweight_factor(value: Any, name: str) -> float:
    """One reweight factor: a finite number in [-MAX_REWEIGHT, MAX_REWEIGHT]."""
    factor = validation.number(value, name, error=PromptError)
    if abs(factor) > MAX_REWEIGHT:
        raise PromptError(
            f"{name} must be in [-{MAX_REWEIGHT:g}, {MAX_REWEIGHT:g}] (the paper uses [-2, 2]; larger "
            f"factors swamp the other words and overflow), got {value!r}"
        )
    return factor
