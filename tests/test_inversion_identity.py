"""What makes a saved inversion fit (docs/design.md §4): the model's fingerprint with its adapters, the cache key
and `Inversion.check_matches`, each shown to refuse what differs in only that one thing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import skimage.data

from inversion.artifact import MismatchError
from inversion.cache import InversionCache
from inversion.fingerprint import ADAPTERS, model_fingerprint, pipeline_fingerprint
from inversion.invert import invert
from inversion.loops.ddim import ddim_scheduler
from inversion.settings import InversionSettings
from p2p_real.testing import tiny_pipeline

PROMPT = "a photo of a cat"
STEPS = 2
SIZE = (24, 16)


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(skimage.data.chelsea()[::6, ::6])


@pytest.fixture(scope="module")
def other_pipe():
    """The tiny pipeline's architecture with other weights: another model."""
    return tiny_pipeline(seed=1)


@pytest.fixture(scope="module")
def inv(tiny_pipe, photo):
    return invert(
        tiny_pipe,
        ddim_scheduler(tiny_pipe.scheduler.config),
        photo,
        InversionSettings(PROMPT, "negative-prompt", STEPS, size=SIZE).resolved(),
        progress=False,
    )


def settings(**changes) -> InversionSettings:
    return InversionSettings(
        **{
            "prompt": PROMPT,
            "method": "negative-prompt",
            "num_inference_steps": STEPS,
            "guidance_scale": 7.5,
            "size": SIZE,
            **changes,
        }
    )


def with_adapters(pipe, adapters):
    """The same model parts as `pipe`, with `adapters` recorded as load_pipeline records them."""
    parts = SimpleNamespace(
        unet=pipe.unet, text_encoder=pipe.text_encoder, vae=pipe.vae, tokenizer=pipe.tokenizer, scheduler=pipe.scheduler
    )
    setattr(parts, ADAPTERS, adapters)
    return parts


def test_the_inversion_fits_the_settings_it_was_made_with(inv, tiny_pipe, photo):
    inv.check_matches(settings(), photo, tiny_pipe)  # no error: the mismatches below are each one change


def test_check_matches_refuses_another_prompt(inv):
    with pytest.raises(MismatchError, match="inverted with prompt 'a photo of a cat', not 'a photo of a dog'"):
        inv.check_matches(settings(prompt="a photo of a dog"))


def test_check_matches_refuses_another_guidance(inv):
    with pytest.raises(MismatchError, match=r"inverted with guidance_scale 7\.5, not 5\.0"):
        inv.check_matches(settings(guidance_scale=5.0))


def test_check_matches_refuses_another_model(inv, other_pipe):
    with pytest.raises(MismatchError, match="another model"):
        inv.check_matches(settings(), pipe=other_pipe)


def test_the_cache_key_holds_the_model(tiny_pipe, other_pipe, photo, tmp_path):
    cache = InversionCache(tmp_path)
    here = cache.path(photo, settings(), tiny_pipe)
    assert cache.path(photo, settings(), tiny_pipe) == here  # stable
    assert cache.path(photo, settings(), other_pipe) != here
    assert cache.path(photo, settings(), with_adapters(tiny_pipe, [{"lora": "style.safetensors"}])) != here


def test_an_inversion_cached_for_one_model_is_not_reused_for_another(inv, tiny_pipe, other_pipe, photo, tmp_path):
    cache = InversionCache(tmp_path, keyed=False)  # one file per photo name: only check_matches tells them apart
    cache.save(inv, photo, settings(), tiny_pipe)
    found, why = cache.find(photo, settings(), other_pipe)
    assert found is None and "another model" in why
    found, why = cache.find(photo, settings(), tiny_pipe)
    assert found is not None and why == ""


@pytest.mark.parametrize(
    "adapter",
    [
        {"lora": "style.safetensors", "scale": 1.0, "sha256": "ab"},
        {"embedding": "shiny.safetensors", "word": "shinystyle", "vectors": 2, "sha256": "cd"},
    ],
)
def test_loras_and_embeddings_are_part_of_the_model_fingerprint(tiny_pipe, adapter):
    plain = pipeline_fingerprint(tiny_pipe)
    assert pipeline_fingerprint(with_adapters(tiny_pipe, None)) == plain
    merged = pipeline_fingerprint(with_adapters(tiny_pipe, [adapter]))
    assert merged != plain
    changed = {**adapter, "sha256": "ef"}  # another file of the same name
    assert pipeline_fingerprint(with_adapters(tiny_pipe, [changed])) != merged
    parts = (tiny_pipe.unet, tiny_pipe.text_encoder, tiny_pipe.vae, tiny_pipe.tokenizer)
    assert model_fingerprint(*parts, adapters=[adapter]) == merged
