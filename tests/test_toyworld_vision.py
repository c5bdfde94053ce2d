"""Toy-world vision recovers the rendered truth: colours, shapes, sizes and masks."""

from __future__ import annotations

import numpy as np
import pytest

from p2p_real.toyworld.scenes import Scene, SceneObject, random_scene, render
from p2p_real.toyworld.vision import (
    background_colour,
    classify_shape,
    find_object,
    mask_iou,
    match_truth,
    segment_objects,
)
from p2p_real.toyworld.world import SHAPES


def test_vision_recovers_rendered_truth():
    rng = np.random.default_rng(2024)
    total = correct = 0
    ious = []
    for _ in range(25):
        rendered = render(random_scene(rng))
        found = segment_objects(rendered.image)
        assert len(found) == len(rendered.objects)
        assert background_colour(rendered.image) == rendered.scene.background
        for truth, match in zip(rendered.objects, match_truth(found, [o.mask for o in rendered.objects])):
            total += 1
            assert match is not None
            correct += (match.colour, match.shape, match.size) == (truth.colour, truth.shape, truth.size)
            ious.append(mask_iou(match.mask, truth.mask))
    assert correct == total
    assert min(ious) > 0.85 and np.mean(ious) > 0.95


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", ["small", "big"])
def test_every_shape_and_size_is_recognised(shape, size):
    scene = Scene(objects=(SceneObject("blue", shape, size, (0.45, 0.55), angle=7.0),), background="white")
    rendered = render(scene)
    found = segment_objects(rendered.image)
    assert [(o.colour, o.shape, o.size) for o in found] == [("blue", shape, size)]
    assert found[0].shape_score > 0.85
    assert classify_shape(rendered.objects[0].mask)[0] == shape


def test_find_object_and_iou_helpers():
    rendered = render(
        Scene(
            objects=(
                SceneObject("red", "circle", "big", (0.3, 0.3)),
                SceneObject("green", "star", "small", (0.75, 0.7)),
            ),
            background="white",
        )
    )
    found = segment_objects(rendered.image)
    assert find_object(found, "green", "star") is not None
    assert find_object(found, "green", "circle") is None
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2], b[1:3] = True, True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    with pytest.raises(ValueError):
        mask_iou(a, np.zeros((3, 3), bool))


def test_plain_background_has_no_objects():
    image = np.full((64, 64, 3), (240, 240, 236), np.uint8)
    assert segment_objects(image) == []
    with pytest.raises(ValueError):
        segment_objects(image[..., 0])
