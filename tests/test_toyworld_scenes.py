"""The toy world renderer: deterministic, anti-aliased, with masks that match the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from p2p_real.toyworld.scenes import Scene, SceneObject, coverage, random_scene, render
from p2p_real.toyworld.world import COLOURS


def _scenes(count: int, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [random_scene(rng) for _ in range(count)]


def test_same_seed_same_scenes_and_pixels():
    first, second = _scenes(5, seed=3), _scenes(5, seed=3)
    assert first == second
    for a, b in zip(first, second):
        assert np.array_equal(render(a).image, render(b).image)


def test_different_seeds_differ():
    assert _scenes(3, seed=1) != _scenes(3, seed=2)


def test_render_returns_rgb_uint8_caption_and_objects():
    rendered = render(_scenes(1, seed=4)[0], size=96)
    assert rendered.image.shape == (96, 96, 3) and rendered.image.dtype == np.uint8
    assert rendered.caption.startswith("a ") and rendered.caption.endswith("background")
    for obj in rendered.objects:
        assert obj.mask.shape == (96, 96) and obj.mask.dtype == bool and obj.mask.any()
        x0, y0, x1, y1 = obj.bbox
        ys, xs = np.nonzero(obj.mask)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_masks_match_the_pixels():
    for scene in _scenes(12, seed=5):
        rendered = render(scene)
        image = rendered.image.astype(np.float32)
        for obj in rendered.objects:
            inner = obj.mask & np.roll(obj.mask, 2, 0) & np.roll(obj.mask, -2, 0)
            inner &= np.roll(obj.mask, 2, 1) & np.roll(obj.mask, -2, 1)
            mean = image[inner].mean(0)
            assert np.abs(mean - COLOURS[obj.colour]).max() < 20, (obj.colour, mean)
        bg = rendered.background_mask
        assert not any((bg & obj.mask).any() for obj in rendered.objects)
        median = np.median(image[bg], axis=0)
        assert np.abs(median - COLOURS[scene.background]).max() < 25


def test_objects_are_inside_the_image_and_barely_overlap():
    for scene in _scenes(30, seed=6):
        rendered = render(scene)
        for obj, spec in zip(rendered.objects, scene.objects):
            full = coverage(
                spec.shape, (spec.center[0] * 128, spec.center[1] * 128), spec.radius * 128, spec.angle, 128
            )
            assert obj.mask.sum() >= 0.85 * (full >= 0.5).sum()


def test_edges_are_anti_aliased():
    alpha = coverage("circle", (32.3, 31.7), 20.0, 0.0, 64)
    partial = (alpha > 0.05) & (alpha < 0.95)
    assert partial.sum() > 50
    assert abs(alpha.sum() - np.pi * 20.0**2) < 0.01 * np.pi * 20.0**2


def test_recolour_keeps_everything_else():
    scene = Scene(
        objects=(
            SceneObject("red", "circle", "big", (0.3, 0.3)),
            SceneObject("blue", "square", "small", (0.75, 0.75)),
        ),
        background="yellow",
        texture="mottled",
        texture_strength=0.1,
        seed=11,
    )
    edited = scene.with_object(0, colour="green")
    a, b = render(scene), render(edited)
    assert edited.objects[0].colour == "green" and edited.objects[1] == scene.objects[1]
    assert b.caption == "a big green circle and a small blue square on a yellow background"
    for obj_a, obj_b in zip(a.objects, b.objects):
        assert np.array_equal(obj_a.mask, obj_b.mask)
    outside = ~a.objects[0].mask
    grown = np.zeros_like(outside)
    ys, xs = np.nonzero(a.objects[0].mask)
    grown[max(ys.min() - 2, 0) : ys.max() + 3, max(xs.min() - 2, 0) : xs.max() + 3] = True
    assert np.array_equal(a.image[~grown], b.image[~grown])
    assert not np.array_equal(a.image[~outside], b.image[~outside])


def test_resize_and_reshape_edits():
    scene = Scene(objects=(SceneObject("red", "triangle", "small", (0.5, 0.5)),), background="white")
    big = render(scene.with_object(0, size="big")).objects[0]
    small = render(scene).objects[0]
    assert big.mask.sum() > 2.5 * small.mask.sum()
    star = render(scene.with_object(0, shape="star")).objects[0]
    assert star.shape == "star"
    assert render(scene.with_background("blue")).caption == "a small red triangle on a blue background"


@pytest.mark.parametrize(
    "make",
    [
        lambda: SceneObject("mauve", "circle", "big", (0.5, 0.5)),
        lambda: SceneObject("red", "hexagon", "big", (0.5, 0.5)),
        lambda: SceneObject("red", "circle", "huge", (0.5, 0.5)),
        lambda: Scene(objects=(), background="red"),
        lambda: Scene(objects=(SceneObject("red", "circle", "big", (0.5, 0.5)),), background="red", texture="wavy"),
        lambda: random_scene(np.random.default_rng(0), n_objects=3),
        lambda: random_scene(np.random.default_rng(0), n_objects=1, colours=["red"], background="red"),
        lambda: render(Scene(objects=(SceneObject("red", "circle", "big", (0.5, 0.5)),), background="blue"), size=8),
    ],
)
def test_bad_attributes_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_fixed_attributes_are_respected():
    rng = np.random.default_rng(9)
    scene = random_scene(
        rng, n_objects=2, colours=["purple", "white"], shapes=["star", "triangle"], sizes=["big", "big"]
    )
    assert [(o.colour, o.shape, o.size) for o in scene.objects] == [
        ("purple", "star", "big"),
        ("white", "triangle", "big"),
    ]
    assert scene.background not in ("purple", "white")
