"""Batch recipes and jobs (docs/design.md §8): recipes read into settings objects, process planning, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inversion.settings import InversionSettings
from p2p_real.batch import Job, finished, plan
from p2p_real.recipe import RecipeError, plan_jobs
from p2p_real.spec import EditSpec
from tests.helpers import draw_photo


def job(photo: str, edit: str) -> Job:
    return Job("", photo, edit, Path(), InversionSettings(), [], EditSpec(), None, 0, Path(), {})


def test_plan_keeps_a_photos_edits_together_and_balances_processes():
    jobs = [job(photo, f"e{i}") for photo, n in (("a", 3), ("b", 2), ("c", 2)) for i in range(n)]
    owner = plan(jobs, 2)
    assert owner == {"a": 0, "b": 1, "c": 1}
    assert plan(jobs, 1) == {"a": 0, "b": 0, "c": 0}


@pytest.fixture
def recipe(tmp_path) -> dict:
    draw_photo(tmp_path / "cat.png")
    return {"photos": [{"photo": "cat.png", "prompt": "a cat on a wall", "steps": "4", "size": [64, 48],
                        "edits": [{"target": "a dog on a wall", "blend": {"cat": "dog"}, "reweight": "dog=2",
                                   "cross_replace": {"default_": "0.1:0.6", "dog": [0.0, 0.4]}}]}],
            "edits": [{"target": "{prompt} in the sky", "name": "sky", "self_replace": [0.1, 0.5]}]}


def test_recipe_values_become_settings_objects_not_command_lines(tmp_path, recipe):
    first, sky = plan_jobs(recipe, tmp_path / "r.json", tmp_path / "out", "toy", "auto", "auto")
    assert first.settings == InversionSettings("a cat on a wall", "null-text", 4, 7.5, (64, 48), False)
    assert first.spec == EditSpec(blend_words=(("cat",), ("dog",)), equalizer={"dog": 2.0},
                                  cross_replace_steps={"default_": (0.1, 0.6), "dog": (0.0, 0.4)})
    assert sky.targets == ["a cat on a wall in the sky"] and sky.spec.self_replace_steps == (0.1, 0.5)
    assert (first.edit_name, sky.edit_name, first.folder) == ("01-a-dog-on-a-wall", "sky", tmp_path / "out" / "cat")


def test_recipe_errors_name_the_file_the_entry_and_the_key(tmp_path, recipe):
    recipe["photos"][0]["edits"][0]["blend_threshold"] = 3
    with pytest.raises(RecipeError, match=r"r\.json: photos\[0\]: edits\[0\]: blend_threshold must be a fraction"):
        plan_jobs(recipe, tmp_path / "r.json", tmp_path, "toy", "auto", "auto")
    recipe["photos"][0]["edits"][0]["blend_threshold"] = 0.5
    recipe["photos"][0]["edits"][0]["subtract"] = "wall"
    del recipe["photos"][0]["edits"][0]["blend"]
    with pytest.raises(RecipeError, match="edits\\[0\\]: subtract needs blend"):  # the recipe's own spelling
        plan_jobs(recipe, tmp_path / "r.json", tmp_path, "toy", "auto", "auto")


def test_a_job_is_finished_when_its_sidecar_holds_its_request(tmp_path, recipe):
    (first, _) = plan_jobs(recipe, tmp_path / "r.json", tmp_path / "out", "toy", "auto", "auto")
    assert not finished(first, overwrite=False)
    first.folder.mkdir(parents=True)
    first.paths().sidecar.write_text(json.dumps({"job": first.request()}))
    assert finished(first, overwrite=False)
    first.paths().sidecar.write_text(json.dumps({"job": {**first.request(), "seed": 1}}))
    with pytest.raises(ValueError, match="holds another edit"):
        finished(first, overwrite=False)
    assert not finished(first, overwrite=True)
