"""Editor.generate end to end on the tiny pipeline (docs/design.md §1-3; the API in README.md)."""

import numpy as np
import pytest
import torch

from p2p_real import Editor, EditSpec, PromptError

STEPS = 8
SRC, TGT = "a photo of a cat on the wall", "a photo of a dog on the wall"


@pytest.fixture(scope="module")
def editor(tiny_pipe):
    return Editor(tiny_pipe, num_inference_steps=STEPS)


def z_T(seed=0, h=32, w=32):
    return torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(seed))


def processors(pipe):
    return dict(pipe.unet.attn_processors)


def test_row_zero_equals_plain_generation_from_the_same_latent(editor, tiny_pipe):
    z = z_T(1)
    res = editor.generate([SRC, TGT], latents=z, output_type="np", progress=False, blend_words=(["cat"], ["dog"]))
    plain = tiny_pipe(SRC, latents=z, num_inference_steps=STEPS, guidance_scale=7.5, output_type="np").images
    np.testing.assert_allclose(res.images[0], plain[0], atol=2e-4)
    assert np.abs(res.images[1] - plain[0]).max() > 1e-2  # the edit did change the target


def test_row_zero_equals_plain_generation_with_the_same_generator(editor, tiny_pipe):
    res = editor.generate([SRC, TGT], generator=torch.Generator().manual_seed(3), output_type="latent",
                          progress=False)
    plain = tiny_pipe(SRC, generator=torch.Generator().manual_seed(3), num_inference_steps=STEPS,
                      output_type="latent").images
    torch.testing.assert_close(res.images[:1], plain, atol=2e-4, rtol=1e-4)


def test_processors_are_restored_after_a_call(editor, tiny_pipe):
    before = processors(tiny_pipe)
    editor.generate([SRC, TGT], generator=0, progress=False, output_type="latent")
    after = processors(tiny_pipe)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    tiny_pipe(SRC, num_inference_steps=2, output_type="latent")  # the user's pipeline still works


def test_processors_are_restored_after_an_exception(editor, tiny_pipe):
    before = processors(tiny_pipe)
    calls = []

    def fail_on_third(module, args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")

    hook = tiny_pipe.unet.register_forward_pre_hook(fail_on_third)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            editor.generate([SRC, TGT], generator=0, progress=False, output_type="latent")
    finally:
        hook.remove()
    after = processors(tiny_pipe)
    assert all(after[k] is before[k] for k in before)


def test_seeded_generation_is_deterministic(editor):
    run = lambda seed: editor.generate([SRC, TGT], generator=seed, output_type="np", progress=False).images  # noqa: E731
    a, b, c = run(5), run(5), run(6)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_a_target_equal_to_the_source_with_full_injection_reproduces_it(editor):
    res = editor.generate([SRC, SRC], latents=z_T(2), cross_replace_steps=1.0, self_replace_steps=1.0,
                          self_replace_max_res=1.0, output_type="latent", progress=False)
    torch.testing.assert_close(res.images[1], res.images[0], atol=1e-5, rtol=1e-5)


def test_local_blend_keeps_latents_outside_the_mask_equal_to_the_source(editor):
    res = editor.generate([SRC, TGT], latents=z_T(2), blend_words=(["cat"], ["dog"]), blend_threshold=0.6,
                          output_type="latent", progress=False)
    mask = np.asarray(res.masks[0])[::2, ::2] > 127  # image-resolution mask back to the 32x32 latent
    assert 0 < mask.sum() < mask.size
    src, tgt = res.images[0], res.images[1]
    outside = torch.from_numpy(~mask).expand_as(src)
    assert torch.equal(tgt[outside], src[outside])
    assert not torch.allclose(tgt[~outside], src[~outside])


def test_user_mask_confines_the_edit(editor):
    user = torch.zeros(1, 1, 32, 32)
    user[..., 8:20, 4:16] = 1
    spec = EditSpec.synthetic(blend_start=0.0)
    final, mask, _ = editor._run([SRC, TGT], z_T(5), editor.uncond_embedding(), spec, mask=user, progress=False)
    inside = user.bool().expand_as(final[:1])[0]
    assert torch.equal(final[1][~inside], final[0][~inside])
    assert not torch.allclose(final[1][inside], final[0][inside])
    torch.testing.assert_close(mask[0], user[0])


def test_non_square_sizes_work(editor):
    res = editor.generate([SRC, TGT], generator=1, height=48, width=80, blend_words=(["cat"], ["dog"]),
                          progress=False)
    assert [im.size for im in res.images] == [(80, 48), (80, 48)]
    assert res.masks[0].size == (80, 48)
    assert res.attention.maps.shape == (2, 6, 10, 77)  # latent 24x40 -> working resolution latent/4


def test_attention_gives_per_word_maps_of_source_and_target_rows(editor):
    res = editor.generate([SRC, TGT], generator=2, progress=False, output_type="latent")
    words = [w for w, _ in res.attention.per_word(1)]
    assert words == TGT.split()
    dog = res.attention.word("dog", row=1)
    assert dog.shape == (8, 8) and np.isfinite(dog).all() and dog.sum() > 0
    with pytest.raises(ValueError, match="'dog'"):
        res.attention.word("dog", row=0)


def test_three_rows_and_refine_and_reweight_run_together(editor):
    prompts = ["a castle on a field", "a gothic castle on a field", "a gothic castle on a green field"]
    res = editor.generate(prompts, generator=3, equalizer={"gothic": [2.0, 1.5]}, blend_words=(["castle"], ["castle"]),
                          output_type="np", progress=False)
    assert res.images.shape == (3, 64, 64, 3) and len(res.masks) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompts": []}, PromptError, "non-empty list"),
        ({"prompts": [SRC, 3]}, PromptError, "non-empty list"),
        ({"prompts": [SRC, " ".join(["cat"] * 80)]}, PromptError, "tokens"),
        ({"prompts": [SRC, "a dog"], "edit": "replace"}, PromptError, "same number of words"),
        ({"edit": "swap"}, PromptError, "edit must be one of"),
        ({"blend_words": (["cat"], ["lion"])}, PromptError, "'lion'"),
        ({"blend_words": "cat"}, PromptError, "words per prompt"),
        ({"blend_words": (["cat"], ["dog"], ["dog"])}, PromptError, "one entry per prompt"),
        ({"equalizer": {"furry": 2.0}}, PromptError, "'furry'"),
        ({"height": 50}, ValueError, "height"),
        ({"width": 0}, ValueError, "width"),
        ({"latents": torch.zeros(2, 4, 32, 32)}, ValueError, "latents must be a tensor of shape"),
        ({"latents": torch.full((1, 4, 32, 32), float("nan"))}, ValueError, "NaN"),
        ({"output_type": "tensor"}, ValueError, "output_type"),
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps"),
        ({"guidance_scale": -1}, ValueError, "guidance_scale"),
        ({"blend_threshold": 1.5, "blend_words": (["cat"], ["dog"])}, ValueError, "blend_threshold"),
        ({"self_replace_steps": (0.5, 0.2)}, ValueError, "self_replace_steps"),
        ({"generator": "seed"}, ValueError, "generator"),
    ],
)
def test_bad_arguments_raise_errors_naming_them(editor, tiny_pipe, kwargs, error, match):
    before = processors(tiny_pipe)
    kwargs = {"prompts": [SRC, TGT], "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        editor.generate(**kwargs)
    after = processors(tiny_pipe)
    assert all(after[k] is before[k] for k in before)


def test_editor_rejects_what_is_not_a_pipeline():
    with pytest.raises(ValueError, match="not a Stable Diffusion pipeline"):
        Editor(object())
