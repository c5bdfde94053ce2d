"""Editor.generate end to end on the tiny pipelines (docs/design.md §1-3, §12; the API in README.md): a test that
takes `editor` runs with SD and with SDXL (tests/conftest.py), one that takes `sd_editor` with SD."""

import numpy as np
import pytest
import torch

from masks.local_blend import threshold_mask
from p2p_real import Editor, EditSpec, NonFiniteError, PromptError
from p2p_real.editing.edit_loop import run_rows
from tests.attention_state import assert_restored_after_a_failing_call, processors
from tests.families import EDITOR_STEPS as STEPS
from tests.families import family

# the tiny SDXL model's maps are flatter than the tiny SD model's: a higher threshold gives a partial mask
PARTIAL_MASK = {"sd": (2, 0.6), "sdxl": (1, 0.8)}  # (seed of z_T, blend threshold)
SRC, TGT = "a photo of a cat on the wall", "a photo of a dog on the wall"


def z_T(seed=0, h=32, w=32):
    return torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(seed))


def test_row_zero_equals_plain_generation_from_the_same_latent(editor):
    z = z_T(1)
    res = editor.generate([SRC, TGT], latents=z, output_type="np", progress=False, blend_words=(["cat"], ["dog"]))
    plain = editor.pipe(SRC, latents=z, num_inference_steps=STEPS, guidance_scale=7.5, output_type="np").images
    np.testing.assert_allclose(res.images[0], plain[0], atol=2e-4)
    assert np.abs(res.images[1] - plain[0]).max() > 1e-2  # the edit did change the target


def test_row_zero_equals_plain_generation_with_the_same_generator(sd_editor, tiny_pipe):
    res = sd_editor.generate(
        [SRC, TGT], generator=torch.Generator().manual_seed(3), output_type="latent", progress=False
    )
    plain = tiny_pipe(
        SRC, generator=torch.Generator().manual_seed(3), num_inference_steps=STEPS, output_type="latent"
    ).images
    torch.testing.assert_close(res.images[:1], plain, atol=2e-4, rtol=1e-4)


def test_processors_are_restored_after_a_call(sd_editor, tiny_pipe):
    before = processors(tiny_pipe)
    sd_editor.generate([SRC, TGT], generator=0, progress=False, output_type="latent")
    after = processors(tiny_pipe)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    tiny_pipe(SRC, num_inference_steps=2, output_type="latent")  # the user's pipeline still works


def test_processors_are_restored_after_an_exception(editor):
    assert_restored_after_a_failing_call(editor, editor.pipe, [SRC, TGT])


def test_seeded_generation_is_deterministic(sd_editor):
    run = lambda seed: sd_editor.generate([SRC, TGT], generator=seed, output_type="np", progress=False).images  # noqa: E731
    a, b, c = run(5), run(5), run(6)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_a_target_equal_to_the_source_with_full_injection_reproduces_it(editor):
    res = editor.generate(
        [SRC, SRC],
        latents=z_T(2),
        cross_replace_steps=1.0,
        self_replace_steps=1.0,
        self_replace_max_res=1.0,
        output_type="latent",
        progress=False,
    )
    torch.testing.assert_close(res.images[1], res.images[0], atol=1e-5, rtol=1e-5)


def test_local_blend_keeps_latents_outside_the_mask_equal_to_the_source(editor):
    seed, threshold = PARTIAL_MASK[family(editor)]
    res = editor.generate(
        [SRC, TGT],
        latents=z_T(seed),
        blend_words=(["cat"], ["dog"]),
        blend_threshold=threshold,
        output_type="latent",
        progress=False,
    )
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
    final, mask, _ = run_rows(editor, [SRC, TGT], z_T(5), editor.uncond_embedding(), spec, mask=user, progress=False)
    inside = user.bool().expand_as(final[:1])[0]
    assert torch.equal(final[1][~inside], final[0][~inside])
    assert not torch.allclose(final[1][inside], final[0][inside])
    torch.testing.assert_close(mask[0], user[0])


def test_non_square_sizes_work(sd_editor):
    res = sd_editor.generate(
        [SRC, TGT], generator=1, height=48, width=80, blend_words=(["cat"], ["dog"]), progress=False
    )
    assert [im.size for im in res.images] == [(80, 48), (80, 48)]
    assert res.masks[0].size == (80, 48)
    assert res.attention.maps.shape == (2, 6, 10, 77)  # latent 24x40 -> working resolution latent/4


def test_attention_gives_per_word_maps_of_source_and_target_rows(sd_editor):
    res = sd_editor.generate([SRC, TGT], generator=2, progress=False, output_type="latent")
    words = [w for w, _ in res.attention.per_word(1)]
    assert words == TGT.split()
    dog = res.attention.word("dog", row=1)
    assert dog.shape == (8, 8) and np.isfinite(dog).all() and dog.sum() > 0
    with pytest.raises(ValueError, match="'dog'"):
        res.attention.word("dog", row=0)


def test_three_rows_and_refine_and_reweight_run_together(sd_editor):
    prompts = ["a castle on a field", "a gothic castle on a field", "a gothic castle on a green field"]
    res = sd_editor.generate(
        prompts,
        generator=3,
        equalizer={"gothic": [2.0, 1.5]},
        blend_words=(["castle"], ["castle"]),
        output_type="np",
        progress=False,
    )
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
def test_bad_arguments_raise_errors_naming_them(sd_editor, tiny_pipe, kwargs, error, match):
    before = processors(tiny_pipe)
    kwargs = {"prompts": [SRC, TGT], "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        sd_editor.generate(**kwargs)
    after = processors(tiny_pipe)
    assert all(after[k] is before[k] for k in before)


def test_editor_rejects_what_is_not_a_pipeline():
    with pytest.raises(ValueError, match="not a Stable Diffusion pipeline"):
        Editor(object())


@pytest.mark.parametrize("factor", [10.5, -11.0, 1e30, 1e39, 1e308, [2.0, 1e30]])
def test_a_reweight_factor_out_of_range_is_an_error_naming_the_word(sd_editor, factor):
    prompts = ["a fluffy cat on the wall", "a fluffy dog on the wall", "a fluffy bird on the wall"]
    with pytest.raises(PromptError, match=r"equalizer\['fluffy'\] must be in \[-10, 10\]"):
        sd_editor.generate(prompts, equalizer={"fluffy": factor}, generator=0, progress=False)


def test_the_largest_allowed_reweight_factor_still_gives_a_finite_image(sd_editor):
    res = sd_editor.generate(
        ["a fluffy cat", "a fluffy dog"], equalizer={"fluffy": -10.0}, generator=0, output_type="np", progress=False
    )
    assert np.isfinite(res.images).all()


@pytest.mark.parametrize(
    "kwargs",
    [{"guidance_scale": 1e30}, {"latents": torch.full((1, 4, 32, 32), 3e38)}],
    ids=["huge guidance", "huge start latent"],
)
def test_nan_or_infinite_latents_are_an_error_naming_the_likely_cause_not_an_image(sd_editor, kwargs):
    with pytest.raises(NonFiniteError, match=r"the sampled latents contain .* likely causes: a huge guidance_scale"):
        sd_editor.generate([SRC, TGT], progress=False, **{"generator": 0, **kwargs})


def test_a_vae_that_decodes_to_nan_is_an_error_not_a_black_image(sd_editor):
    with pytest.raises(NonFiniteError, match="the decoded images contain"):
        sd_editor.decode(torch.full((1, 4, 8, 8), 3e38))


@pytest.mark.parametrize("prompts", [[SRC, ""], [SRC, "   "], ["", TGT]])
def test_an_empty_prompt_is_an_error(sd_editor, prompts):
    with pytest.raises(PromptError, match="must not be empty"):
        sd_editor.generate(prompts, generator=0, progress=False)


def _generate(editor, prompts, **kwargs):
    return editor.generate(prompts, latents=z_T(0), output_type="np", progress=False, **kwargs)


def test_without_an_edit_the_target_row_is_the_target_prompt_alone(sd_editor):
    # the baseline the two tests below measure against: rows of one batch do not leak into each other
    alone = _generate(sd_editor, [TGT])
    off = _generate(sd_editor, [SRC, TGT], cross_replace_steps=0.0, self_replace_steps=0.0)
    np.testing.assert_allclose(off.images[1], alone.images[0], atol=1e-5)


def test_a_cross_attention_edit_gives_the_target_row_the_source_maps_and_changes_its_image(editor):
    alone = _generate(editor, [TGT])
    res = _generate(editor, [SRC, TGT], cross_replace_steps=1.0, self_replace_steps=0.0)
    assert np.abs(res.images[1] - alone.images[0]).mean() > 1e-3  # measured 1e-2; the rows' own noise is 1e-7
    maps, own = res.attention.maps, alone.attention.maps[0]
    # a word swap maps every token to itself: inside the window the target row uses the source row's maps
    torch.testing.assert_close(maps[1], maps[0], rtol=0, atol=1e-6)
    assert (maps[1] - own).abs().max() > 1e-2  # which are not the maps the target prompt makes alone


def test_a_refine_edit_gives_aligned_target_tokens_the_source_maps(editor):
    src, tgt = "a castle on a field", "a gothic castle on a field"
    res = _generate(editor, [src, tgt], cross_replace_steps=1.0, self_replace_steps=0.0)
    maps = res.attention.maps
    partners = {1: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, **{j: j for j in range(8, 77)}}  # "gothic" (2) is new
    for j, i in partners.items():
        torch.testing.assert_close(maps[1][..., j], maps[0][..., i], rtol=0, atol=1e-6, msg=f"token {j}")
    assert (maps[1][..., 2] - maps[0][..., 2]).abs().max() > 1e-3  # the new word keeps its own map


def test_a_self_attention_edit_changes_the_target_row(editor):
    alone = _generate(editor, [TGT])
    res = _generate(editor, [SRC, TGT], cross_replace_steps=0.0, self_replace_steps=1.0, self_replace_max_res=1.0)
    assert np.abs(res.images[1] - alone.images[0]).mean() > 1e-4  # measured 9e-4; the rows' own noise is 1e-7


def test_the_blend_mask_unites_source_and_target_words_minus_the_subtract_words(sd_editor):
    # blend_start=1: the mask is made once after the last step, so both calls share every attention map;
    # without cross-attention injection the source and target words attend to different regions
    kwargs = {"blend_words": (["cat"], ["dog"]), "blend_start": 1.0, "blend_threshold": 0.5, "cross_replace_steps": 0}
    plain = sd_editor.generate([SRC, TGT], latents=z_T(0), progress=False, **kwargs)
    sub = sd_editor.generate([SRC, TGT], latents=z_T(0), progress=False, subtract_words=(["wall"], ["wall"]), **kwargs)
    maps = plain.attention.maps  # (rows, 8, 8, tokens); "cat"/"dog" are token 5, "wall" token 8

    def region(row: int, token: int, pool: int) -> torch.Tensor:
        return threshold_mask(maps[row, :, :, token][None, None], (32, 32), 0.5, pool=pool)[0]

    union = region(0, 5, 1) | region(1, 5, 1)
    assert not torch.equal(union, region(0, 5, 1)) and not torch.equal(union, region(1, 5, 1))
    assert torch.equal(plain.info["blend_mask"][0].bool(), union)
    walls = region(0, 8, 0) | region(1, 8, 0)
    assert (union & walls).any()
    assert torch.equal(sub.info["blend_mask"][0].bool(), union & ~walls)
    sharp = sd_editor.generate([SRC, TGT], latents=z_T(0), progress=False, blend_pool=0, **kwargs)
    assert torch.equal(sharp.info["blend_mask"][0].bool(), region(0, 5, 0) | region(1, 5, 0))
    assert sharp.info["blend_mask"].sum() < plain.info["blend_mask"].sum()  # the pool grew the mask
