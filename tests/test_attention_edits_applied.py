"""The attention edits reach the images (docs/design.md §2, SPEC §2): a target row under cross- or self-attention
injection is not what the model makes of the target prompt alone (with cross-attention it comes closer to the source
row), while the source row is never changed. A test of the controller alone cannot see an edit left unapplied."""

from __future__ import annotations

import skimage.data
import torch

from p2p_real import Editor

STEPS = 4
SRC, TGT = "a photo of a cat on the wall", "a photo of a dog on the wall"
NO_INJECTION = {"cross_replace_steps": 0.0, "self_replace_steps": 0.0}


def z_T() -> torch.Tensor:
    return torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))


def generate(editor: Editor, **settings) -> torch.Tensor:
    return editor.generate([SRC, TGT], latents=z_T(), output_type="latent", progress=False, **settings).images


def test_cross_and_self_injection_each_pull_the_target_towards_the_source(tiny_pipe):
    editor = Editor(tiny_pipe, num_inference_steps=STEPS)
    plain = generate(editor, **NO_INJECTION)
    alone = tiny_pipe(TGT, latents=z_T(), num_inference_steps=STEPS, output_type="latent").images
    torch.testing.assert_close(plain[1:], alone, atol=2e-4, rtol=1e-4)  # no injection: the target prompt alone
    source_gap, gaps = float((plain[1] - plain[0]).abs().mean()), []
    for settings in (
        {"cross_replace_steps": 1.0, "self_replace_steps": 0.0},
        {"cross_replace_steps": 0.0, "self_replace_steps": 1.0, "self_replace_max_res": 1.0},
    ):
        edited = generate(editor, **settings)
        assert torch.equal(edited[0], plain[0]), settings  # the source row is never edited
        assert (edited[1] - plain[1]).abs().max() > 1e-3, settings
        gaps.append(float((edited[1] - edited[0]).abs().mean()))
    assert gaps[0] < 0.8 * source_gap  # the source's cross-attention maps draw the target's layout


def test_an_edit_of_a_photo_injects_the_sources_attention(tiny_pipe):
    editor = Editor(tiny_pipe, num_inference_steps=STEPS)
    photo = skimage.data.chelsea()[::6, ::6].copy()
    inv = editor.invert(photo, SRC, method="negative-prompt", progress=False)
    plain = editor.edit(inv, TGT, output_type="latent", progress=False, **NO_INJECTION).images
    edited = editor.edit(inv, TGT, output_type="latent", progress=False).images  # the photo defaults: 0.8 / 0.6
    assert torch.equal(edited[0], plain[0])
    assert (edited[1] - plain[1]).abs().max() > 1e-2
