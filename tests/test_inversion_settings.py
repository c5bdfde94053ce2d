"""InversionSettings.resolved (docs/design.md §4, "Settings and cache"): a fresh inversion's settings with every
default filled in, as a type whose fixed settings are never None."""

from __future__ import annotations

import pytest

from inversion.methods import DEFAULT_METHOD
from inversion.settings import InversionSettings, ResolvedInversionSettings
from inversion.validation import PromptError


def test_resolved_settings_fill_every_default_but_the_size():
    resolved = InversionSettings("a cat on a wall").resolved(num_inference_steps=12, guidance_scale=5.0)
    assert isinstance(resolved, ResolvedInversionSettings)
    assert (
        resolved.prompt,
        resolved.method,
        resolved.num_inference_steps,
        resolved.guidance_scale,
        resolved.size,
        resolved.square,
    ) == ("a cat on a wall", DEFAULT_METHOD, 12, 5.0, None, False)


def test_resolved_settings_keep_what_was_given():
    given = InversionSettings("a cat", "ddim", 4, 0.0, (64, 48), True, names={"prompt": "--prompt"})
    resolved = given.resolved(num_inference_steps=12, guidance_scale=5.0)
    assert (resolved.method, resolved.num_inference_steps, resolved.guidance_scale, resolved.size, resolved.square) == (
        "ddim",
        4,
        0.0,
        (64, 48),
        True,
    )  # a guidance of 0 is kept, not defaulted
    assert resolved.name("prompt") == "--prompt"


def test_resolved_settings_equal_plain_settings_with_the_same_values():
    resolved = InversionSettings("a cat").resolved(num_inference_steps=4, guidance_scale=7.5)
    plain = InversionSettings("a cat", DEFAULT_METHOD, 4, 7.5, None, False)
    assert resolved == plain and plain == resolved and hash(resolved) == hash(plain)
    assert resolved != InversionSettings("a dog", DEFAULT_METHOD, 4, 7.5, None, False)
    assert resolved.to_dict() == plain.to_dict()


def test_resolving_without_a_prompt_names_it_as_the_caller_spells_it():
    with pytest.raises(PromptError, match="--prompt must be a string"):
        InversionSettings(method="ddim", names={"prompt": "--prompt"}).resolved()


def test_resolved_settings_refuse_a_setting_left_open():
    with pytest.raises(ValueError, match="steps must be given"):
        ResolvedInversionSettings("a cat", "ddim", None, 7.5, names={"num_inference_steps": "steps"})
