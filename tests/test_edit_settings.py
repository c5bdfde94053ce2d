"""EditSpec's JSON form keeps every setting (docs/design.md §6): a spec with no field at its default survives
to_dict -> JSON -> from_dict, so a sidecar or recipe never replays an edit with a default in place of a choice."""

from __future__ import annotations

import dataclasses
import json

from p2p_real import EditSpec
from p2p_real.spec import SETTINGS

EVERY_FIELD_CHANGED = {
    "edit": "refine",
    "cross_replace_steps": {"default_": (0.1, 0.7), "dog": 0.4},
    "self_replace_steps": (0.1, 0.5),
    "self_replace_max_res": 0.25,
    "blend_words": (["cat"], ["dog"]),
    "subtract_words": (["wall"], ["wall"]),
    "blend_threshold": 0.45,
    "blend_pool": 2,
    "blend_start": 0.35,
    "equalizer": {"dog": (2.0,)},
    "mask_mode": "intersect",
    "feather": 0.05,
}


def test_the_list_above_changes_every_setting():
    assert set(EVERY_FIELD_CHANGED) == set(SETTINGS)
    spec, defaults = EditSpec(**EVERY_FIELD_CHANGED), EditSpec()
    assert [name for name in SETTINGS if getattr(spec, name) == getattr(defaults, name)] == []


def test_to_dict_keeps_every_setting_through_json():
    spec = EditSpec(**EVERY_FIELD_CHANGED)
    data = json.loads(json.dumps(spec.to_dict()))
    assert set(data) == set(SETTINGS)
    assert data["blend_threshold"] == 0.45 and data["feather"] == 0.05
    again = EditSpec.from_dict(data)
    assert again == spec
    for field in dataclasses.fields(EditSpec):
        if field.compare:
            assert getattr(again, field.name) == getattr(spec, field.name), field.name
