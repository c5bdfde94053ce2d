"""What the page lets people choose, without typing words: the words of a prompt, the blend words it
suggests, the EditSpec of the page's settings and the `p2p-real edit` command that does the same edit.

No Gradio here, and no model: the tokenizer is the pipeline's.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from inversion.settings import InversionSettings
from p2p_real.core.alignment import PromptError, tokenize, word_indices
from p2p_real.defaults import PROG
from p2p_real.spec import DEFAULT_CROSS_REPLACE, DEFAULT_SELF_REPLACE, SCHEMA, EditSpec

# how the page labels each setting, for the library's messages
PAGE_NAMES = {
    "edit": "edit kind",
    "cross_replace_steps": "cross-attention steps",
    "self_replace_steps": "self-attention steps",
    "blend_words": "blend words",
    "blend_threshold": "blend threshold",
    "equalizer": "reweight",
    "prompt": "caption",
    "method": "inversion method",
    "num_inference_steps": "steps",
}
NOTATION = set(":,=")  # the command line's separators: a word holding one cannot be written as an option
DIGITS = 4  # slider values are rounded to this many decimals (a browser's 0.35000000000000003 is 0.35)


def prompt_words(tokenizer: Any, prompt: str) -> list[str]:
    """The words of a prompt that a setting can name: each word without the punctuation around it, once, in
    order, and only where the tokenizer finds it in the prompt (so that none of them can fail the edit's check).
    A blank prompt has none; a prompt too long for the text encoder raises PromptError."""
    if not prompt or not prompt.strip():
        return []
    tokens = tokenize(tokenizer, prompt)
    words: list[str] = []
    for raw in prompt.split():
        word = raw.strip(string.punctuation)
        if not word or NOTATION & set(word) or word.lower() in {w.lower() for w in words}:
            continue
        try:
            word_indices(tokenizer, tokens, word)
        except PromptError:
            continue
        words.append(word)
    return words


def changed_words(source: Sequence[str], target: Sequence[str]) -> tuple[list[str], list[str]]:
    """The source's words missing from the target and the target's missing from the source (case ignored):
    what an edit changes, so the blend words it suggests."""
    src, tgt = {w.lower() for w in source}, {w.lower() for w in target}
    return [w for w in source if w.lower() not in tgt], [w for w in target if w.lower() not in src]


@overload
def slider(value: float) -> float: ...
@overload
def slider(value: None) -> None: ...
def slider(value: float | None) -> float | None:
    """A slider's value rounded to DIGITS decimals."""
    return None if value is None else round(float(value), DIGITS)


@dataclass(frozen=True)
class EditChoices:
    """The page's edit settings: the target prompt, the words picked and the sliders."""

    target: str
    blend_source: tuple[str, ...] = ()
    blend_target: tuple[str, ...] = ()
    threshold: float = EditSpec.blend_threshold
    reweight_words: tuple[str, ...] = ()
    reweight: float = 1.0
    edit: str = EditSpec.edit
    cross_replace: float = DEFAULT_CROSS_REPLACE
    self_replace: float = DEFAULT_SELF_REPLACE
    mask: Path | None = None  # a painted mask, saved (p2p_real/ui/brush.py): the edit's user mask
    mask_mode: str = "replace"  # how the mask meets the attention mask (EditSpec.mask_mode): with a mask only

    def spec(self) -> EditSpec:
        """The EditSpec of these choices (checked; its messages name the page's labels). Blend words on either
        side turn local blend on; reweight words count only with a factor other than 1."""
        blend = (list(self.blend_source), list(self.blend_target)) if self.blend_source or self.blend_target else None
        factor = slider(self.reweight)
        equalizer = {w: factor for w in self.reweight_words} if self.reweight_words and factor != 1 else None
        if self.edit == "reweight" and equalizer is None:
            raise PromptError("edit kind 'reweight' needs reweight words and a reweight factor other than 1")
        return EditSpec(
            edit=self.edit,
            cross_replace_steps=slider(self.cross_replace),
            self_replace_steps=slider(self.self_replace),
            blend_words=blend,
            blend_threshold=slider(self.threshold),
            equalizer=equalizer,
            mask_mode=self.mask_mode if self.mask is not None else "replace",
            names=PAGE_NAMES,
        )


def spec_options(spec: EditSpec) -> list[str]:
    """The `p2p-real edit` options that give `spec` (those left out have their default): each setting's option,
    once per text of its value (p2p_real.spec)."""
    default = EditSpec()
    argv: list[str] = []
    for name, setting in SCHEMA.items():
        value = getattr(spec, name)
        if value == getattr(default, name):
            continue
        try:
            shown = setting.show(value)
        except ValueError as exc:
            raise ValueError(f"{setting.flag}: {exc}") from exc
        for text in [shown] if isinstance(shown, str) else shown:
            argv += [setting.flag, text]
    return argv


def edit_command(
    photo: str,
    settings: InversionSettings,
    target: str,
    spec: EditSpec,
    run_options: Sequence[str] = (),
    mask: Path | None = None,
) -> str:
    """The shell line of `p2p-real edit` that inverts `photo` (a file name) with the resolved `settings` and
    makes the same edit (`photo` may be an inversion file: without a method, its own is used); `run_options` are
    --model, --device and --dtype; `mask` a user mask file (written by its absolute path)."""
    method = ["--method", str(settings.method)] if settings.method is not None else []
    argv = [
        "edit",
        photo,
        "--prompt",
        settings.prompt or "",
        "--target",
        target,
        *method,
        "--steps",
        str(settings.num_inference_steps),
        "--guidance",
        repr(settings.guidance_scale),
    ]
    if settings.size is not None:
        argv += ["--size", f"{settings.size[0]}x{settings.size[1]}"]
    if settings.square:
        argv.append("--square")
    if mask is not None:
        argv += ["--mask", str(Path(mask).resolve())]
    return shlex.join([PROG, *argv, *spec_options(spec), *run_options])
