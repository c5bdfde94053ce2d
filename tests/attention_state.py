"""Checks shared by the SD and SDXL tests: the attention processors a call leaves on the user's UNet."""

from __future__ import annotations

import pytest


def processors(pipe) -> dict:
    """The UNet's attention processors by layer name."""
    return dict(pipe.unet.attn_processors)


def assert_restored_after_a_failing_call(editor, pipe, prompts: list[str]) -> None:
    """Make the UNet's third forward raise inside editor.generate: the exception reaches the caller, every
    processor is the one the pipeline had before, and the plain pipeline still runs."""
    before = processors(pipe)
    calls = []

    def fail_on_third(module, args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")

    hook = pipe.unet.register_forward_pre_hook(fail_on_third)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            editor.generate(prompts, generator=0, progress=False, output_type="latent")
    finally:
        hook.remove()
    after = processors(pipe)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    pipe(prompts[0], num_inference_steps=1, output_type="latent")  # the user's pipeline still works
