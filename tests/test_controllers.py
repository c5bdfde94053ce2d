"""Attention control (docs/design.md §2), checked against the maps computed explicitly from its formulas."""

import pytest
import torch

from p2p_real.core.alignment import PromptError, tokenize
from p2p_real.core.controllers import P2PController, build_cross_edit, edit_maps
from p2p_real.spec import EditSpec
from p2p_real.testing import tiny_components

STEPS = 10
HEADS, DIM = 2, 8


@pytest.fixture(scope="module")
def parts():
    return tiny_components()


def make_controller(
    parts, prompts, edit="auto", cross=0.8, self_steps=0.4, self_max_res=0.25, equalizer=None, guidance=True
):
    tok = parts["tokenizer"]
    tokens = [tokenize(tok, p) for p in prompts]
    spec = EditSpec(
        edit=edit,
        cross_replace_steps=cross,
        self_replace_steps=self_steps,
        self_replace_max_res=self_max_res,
        equalizer=equalizer,
    )
    cross_edit = build_cross_edit(tok, tokens[0], tokens[1:], spec, STEPS)
    ctl = P2PController(len(prompts), guidance, (32, 32), parts["unet"], cross_edit, self_steps, self_max_res, STEPS)
    return ctl, cross_edit


def qkv(n_rows, queries, keys, guidance=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = 2 * n_rows if guidance else n_rows
    return (
        torch.randn(b, HEADS, queries, DIM, generator=g),
        torch.randn(b, HEADS, keys, DIM, generator=g),
        torch.randn(b, HEADS, keys, DIM, generator=g),
    )


def maps_of(q, k):
    return (q @ k.transpose(-1, -2) * DIM**-0.5).softmax(-1)


def test_inside_the_cross_window_targets_use_the_mapped_source_maps(parts):
    ctl, edit = make_controller(parts, ["a photo of a cat", "a photo of a tigercat"], cross=0.5)
    q, k, v = qkv(2, 64, 77)
    ctl.begin_step(2)
    out = ctl.attend(q, k, v, None, is_cross=True)
    m = maps_of(q, k)
    expected_maps = m[2] @ edit.mapper[0]  # source row 2 (first conditional row), mapped to target tokens
    torch.testing.assert_close(out[3], expected_maps @ v[3], atol=1e-5, rtol=1e-5)
    # the unconditional rows and the source row are untouched
    torch.testing.assert_close(out[:3], maps_of(q[:3], k[:3]) @ v[:3], atol=1e-5, rtol=1e-5)


def test_outside_the_cross_window_each_row_uses_its_own_maps(parts):
    ctl, _ = make_controller(parts, ["a photo of a cat", "a photo of a dog"], cross=0.5)
    q, k, v = qkv(2, 64, 77)
    ctl.begin_step(5)  # int(10 * 0.5) = 5 is the first step outside
    out = ctl.attend(q, k, v, None, is_cross=True)
    torch.testing.assert_close(out, maps_of(q, k) @ v, atol=1e-5, rtol=1e-5)


def test_cross_window_pairs_and_per_word_windows(parts):
    ctl, edit = make_controller(
        parts, ["a cat on the wall", "a dog on the wall"], cross={"default_": (0.2, 0.6), "dog": 0.3}
    )
    a = edit.alpha[:, 0]
    assert a[:2, 1].sum() == 0 and a[2:6, 1].all() and a[6:].sum() == 0  # "a": steps 2..5
    assert a[:3, 2].all() and a[3:, 2].sum() == 0  # "dog": steps 0..2
    with pytest.raises(PromptError, match="'lion'"):
        make_controller(parts, ["a cat", "a dog"], cross={"lion": 0.3})
    with pytest.raises(ValueError, match="cross_replace_steps"):
        make_controller(parts, ["a cat", "a dog"], cross=1.5)


def test_refine_keeps_source_maps_for_aligned_tokens_and_own_maps_for_new_ones(parts):
    ctl, edit = make_controller(parts, ["a castle on a field", "a gothic castle on a field"], cross=1.0)
    q, k, v = qkv(2, 16, 77)
    ctl.begin_step(0)
    m = maps_of(q, k)
    src, own = m[2], m[3]
    used = edit_maps(src.mean(0), own.mean(0)[None], ctl.value_map, ctl.own_scale)[0]
    torch.testing.assert_close(used[:, 3], src.mean(0)[:, 2])  # "castle" takes the source's "castle"
    torch.testing.assert_close(used[:, 1], src.mean(0)[:, 1])  # "a"
    torch.testing.assert_close(used[:, 2], own.mean(0)[:, 2])  # "gothic" is new: its own map
    # the fused output equals the explicit maps applied to the target's values, per head
    out = ctl.attend(q, k, v, None, is_cross=True)
    explicit = edit_maps(src, own[None], ctl.value_map, ctl.own_scale)[0]
    torch.testing.assert_close(out[3], explicit @ v[3], atol=1e-5, rtol=1e-5)


def test_reweight_scales_exactly_the_chosen_tokens(parts):
    prompts = ["a fluffy dog on the grass", "a fluffy dog on the grass"]
    ctl, edit = make_controller(parts, prompts, edit="reweight", cross=1.0, equalizer={"fluffy": 2.0})
    q, k, v = qkv(2, 16, 77)
    ctl.begin_step(0)
    m = maps_of(q, k)
    expected = m[2].clone()
    expected[..., 2] *= 2.0  # "fluffy" is token 2
    out = ctl.attend(q, k, v, None, is_cross=True)
    torch.testing.assert_close(out[3], expected @ v[3], atol=1e-5, rtol=1e-5)
    assert edit.scale[0, 2] == 2.0 and (edit.scale[0, torch.arange(77) != 2] == 1).all()


def test_reweight_composes_with_refine_including_new_words(parts):
    prompts = ["a castle on a field", "a gothic castle on a field"]
    ctl, _ = make_controller(parts, prompts, cross=1.0, equalizer={"gothic": 3.0, "castle": 0.5})
    q, k, v = qkv(2, 16, 77)
    ctl.begin_step(0)
    m = maps_of(q, k)
    expected = m[3].clone()  # target's own maps for unaligned tokens
    expected[..., 1] = m[2][..., 1]
    expected[..., 2] = 3.0 * m[3][..., 2]  # new word, reweighted own map
    expected[..., 3] = 0.5 * m[2][..., 2]  # aligned word, reweighted source map
    for j in range(4, 8):
        expected[..., j] = m[2][..., j - 1]
    out = ctl.attend(q, k, v, None, is_cross=True)
    explicit_cols = [1, 2, 3, 4, 5, 6, 7]
    used = edit_maps(m[2], m[3][None], ctl.value_map, ctl.own_scale)[0]
    torch.testing.assert_close(used[..., explicit_cols], expected[..., explicit_cols])
    torch.testing.assert_close(out[3], used @ v[3], atol=1e-5, rtol=1e-5)


def test_equalizer_errors_name_the_word(parts):
    with pytest.raises(PromptError, match="'furry'"):
        make_controller(parts, ["a cat", "a dog"], equalizer={"furry": 2.0})
    with pytest.raises(PromptError, match="finite"):
        make_controller(parts, ["a cat", "a dog"], equalizer={"dog": float("nan")})
    with pytest.raises(PromptError, match="needs an equalizer"):
        make_controller(parts, ["a cat", "a cat"], edit="reweight")


def test_self_injection_only_inside_its_window_and_at_low_resolution(parts):
    ctl, _ = make_controller(parts, ["a cat", "a dog"], self_steps=0.4, self_max_res=0.25)
    low, high = 8 * 8, 32 * 32  # level 2 (latent/4) and level 0 of a 32x32 latent
    for queries, step, injected in [
        (low, 0, True),
        (low, 3, True),
        (low, 4, False),
        (high, 0, False),
        (16 * 16, 0, False),
    ]:
        q, k, v = qkv(2, queries, queries, seed=step)
        ctl.begin_step(step)
        out = ctl.attend(q, k, v, None, is_cross=False)
        expected = maps_of(q, k) @ v
        if injected:
            expected[3] = maps_of(q[2], k[2]) @ v[3]
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5, msg=f"{queries} step {step}")


def test_self_injection_limit_is_relative_to_the_latent(parts):
    ctl, _ = make_controller(parts, ["a cat", "a dog"], self_steps=1.0, self_max_res=0.5)
    q, k, v = qkv(2, 16 * 16, 16 * 16)
    ctl.begin_step(0)
    out = ctl.attend(q, k, v, None, is_cross=False)
    torch.testing.assert_close(out[3], maps_of(q[2], k[2]) @ v[3], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="self_replace_max_res"):
        make_controller(parts, ["a cat", "a dog"], self_max_res=0)


def test_unconditional_rows_are_never_edited(parts):
    ctl, _ = make_controller(parts, ["a cat", "a dog", "a bird"], cross=1.0, self_steps=1.0, self_max_res=1.0)
    for is_cross, keys in ((True, 77), (False, 64)):
        q, k, v = qkv(3, 64, keys)
        ctl.begin_step(0)
        out = ctl.attend(q, k, v, None, is_cross=is_cross)
        torch.testing.assert_close(out[:4], maps_of(q[:4], k[:4]) @ v[:4], atol=1e-5, rtol=1e-5)


def test_store_keeps_edited_maps_of_the_working_resolution_only(parts):
    ctl, _ = make_controller(parts, ["a photo of a cat", "a photo of a dog"], cross=1.0)
    ctl.begin_step(0)
    for queries in (32 * 32, 16 * 16, 8 * 8, 8 * 8):
        ctl.attend(*qkv(2, queries, 77, seed=queries), None, is_cross=True)
    ctl.end_step()
    assert ctl.store.steps == 1 and ctl.store.total.shape == (2, 64, 77)
    q, k, _ = qkv(2, 64, 77, seed=64)
    m = maps_of(q, k).mean(1)
    torch.testing.assert_close(ctl.store.total[0], m[2], atol=1e-5, rtol=1e-5)  # averaged over the two layers
    torch.testing.assert_close(ctl.store.total[1], m[2], atol=1e-5, rtol=1e-5)  # replace: all source maps


def test_a_batch_of_another_size_is_left_alone(parts):
    ctl, _ = make_controller(parts, ["a cat", "a dog"], cross=1.0)
    q, k, v = qkv(3, 16, 77)  # 6 rows, not the 4 of this edit
    ctl.begin_step(0)
    torch.testing.assert_close(ctl.attend(q, k, v, None, True), maps_of(q, k) @ v, atol=1e-5, rtol=1e-5)


def test_without_guidance_the_conditional_rows_are_the_whole_batch(parts):
    ctl, edit = make_controller(parts, ["a cat", "a dog"], cross=1.0, guidance=False)
    q, k, v = qkv(2, 16, 77, guidance=False)
    ctl.begin_step(0)
    out = ctl.attend(q, k, v, None, True)
    torch.testing.assert_close(out[1], (maps_of(q[0], k[0]) @ edit.mapper[0]) @ v[1], atol=1e-5, rtol=1e-5)


def test_the_store_averages_all_layers_of_the_working_resolution_and_sums_steps(parts):
    ctl, _ = make_controller(parts, ["a photo of a cat", "a photo of a dog"], cross=0.0)  # each row its own maps
    per_step = []
    for step in range(2):
        ctl.begin_step(step)
        layers = [qkv(2, 64, 77, seed=10 * step + s) for s in range(3)]  # three different layers at 8x8
        for q, k, v in layers:
            ctl.attend(q, k, v, None, is_cross=True)
        ctl.attend(*qkv(2, 16 * 16, 77, seed=99), None, is_cross=True)  # 16x16: not the store's resolution
        ctl.end_step()
        per_step.append(torch.stack([maps_of(q, k)[2:].mean(1) for q, k, _ in layers]).mean(0))
    torch.testing.assert_close(ctl.store.total, per_step[0] + per_step[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ctl.store.mean(), (per_step[0] + per_step[1]) / 2, atol=1e-5, rtol=1e-5)


def test_a_per_target_equalizer_list_gives_each_target_its_own_factor(parts):
    prompts = ["a fluffy cat", "a fluffy dog", "a fluffy bird", "a very fluffy dog"]
    _, edit = make_controller(parts, prompts, cross=1.0, equalizer={"fluffy": [2.0, 3.0, -1.5]})
    assert edit.scale[0, 2] == 2.0 and edit.scale[1, 2] == 3.0 and edit.scale[2, 3] == -1.5
    assert (edit.scale != 1).sum() == 3
