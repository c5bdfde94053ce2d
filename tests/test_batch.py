"""Batch recipes and jobs (docs/design.md §8): recipes read into settings objects, process planning, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inversion.settings import InversionSettings
from p2p_real.batches.batch import Job, finished, plan, resume_state
from p2p_real.batches.recipe import RecipeError, output_folder, plan_jobs
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
    return {
        "photos": [
            {
                "photo": "cat.png",
                "prompt": "a cat on a wall",
                "steps": "4",
                "size": [64, 48],
                "edits": [
                    {
                        "target": "a dog on a wall",
                        "blend": {"cat": "dog"},
                        "reweight": "dog=2",
                        "cross_replace": {"default_": "0.1:0.6", "dog": [0.0, 0.4]},
                    }
                ],
            }
        ],
        "edits": [{"target": "{prompt} in the sky", "name": "sky", "self_replace": [0.1, 0.5]}],
    }


def test_recipe_values_become_settings_objects_not_command_lines(tmp_path, recipe):
    first, sky = plan_jobs(recipe, tmp_path / "r.json", tmp_path / "out", "toy", "auto", "auto")
    assert first.settings == InversionSettings("a cat on a wall", "direct", 4, 7.5, (64, 48), False)  # the default
    assert first.spec == EditSpec(
        blend_words=(("cat",), ("dog",)),
        equalizer={"dog": 2.0},
        cross_replace_steps={"default_": (0.1, 0.6), "dog": (0.0, 0.4)},
    )
    assert sky.targets == ["a cat on a wall in the sky"] and sky.spec.self_replace_steps == (0.1, 0.5)
    assert (first.edit_name, sky.edit_name, first.folder) == ("01-a-dog-on-a-wall", "sky", tmp_path / "out" / "cat")


def test_recipe_errors_name_the_file_the_entry_and_the_key(tmp_path, recipe):
    recipe["photos"][0]["edits"][0]["blend_threshold"] = 3
    with pytest.raises(RecipeError, match=r"r\.json: photos\[0\]: edits\[0\]: blend_threshold must be a fraction"):
        plan_jobs(recipe, tmp_path / "r.json", tmp_path, "toy", "auto", "auto")
    recipe["photos"][0]["edits"][0]["blend_threshold"] = 0.5
    recipe["photos"][0]["edits"][0]["blend_pool"] = "1.5"
    with pytest.raises(RecipeError, match=r"edits\[0\]: blend_pool: '1\.5' is not a whole number"):
        plan_jobs(recipe, tmp_path / "r.json", tmp_path, "toy", "auto", "auto")
    recipe["photos"][0]["edits"][0]["blend_pool"] = "0"
    (first, _) = plan_jobs(recipe, tmp_path / "r.json", tmp_path, "toy", "auto", "auto")
    assert first.spec.blend_pool == 0
    recipe["photos"][0]["edits"][0]["subtract"] = "wall"
    del recipe["photos"][0]["edits"][0]["blend"]
    with pytest.raises(RecipeError, match="edits\\[0\\]: subtract needs blend"):  # the recipe's own spelling
        plan_jobs(recipe, tmp_path / "r.json", tmp_path, "toy", "auto", "auto")


def test_a_job_is_finished_when_its_sidecar_holds_its_request(tmp_path, recipe):
    (first, _) = plan_jobs(recipe, tmp_path / "r.json", tmp_path / "out", "toy", "auto", "auto")
    assert not finished(first, overwrite=False)
    first.folder.mkdir(parents=True)
    for path in first.paths().all()[:-1]:
        path.write_bytes(b"png")
    first.paths().sidecar.write_text(json.dumps({"job": first.request()}))
    assert finished(first, overwrite=False)
    first.paths().sidecar.write_text(json.dumps({"job": {**first.request(), "seed": 1}}))
    with pytest.raises(ValueError, match="holds another edit"):
        finished(first, overwrite=False)
    assert not finished(first, overwrite=True)


def test_a_job_whose_files_went_missing_is_redone_not_skipped(tmp_path, recipe):
    first, _ = plan_jobs(recipe, tmp_path / "r.json", tmp_path / "out", "toy", "auto", "auto")
    paths = first.paths()
    first.folder.mkdir(parents=True)
    for path in paths.all()[:-1]:
        path.write_bytes(b"png")
    outputs = {
        "images": [p.name for p in paths.images],
        "masks": [p.name for p in paths.masks],
        "grid": paths.grid.name,
    }
    paths.sidecar.write_text(json.dumps({"job": first.request(), "outputs": outputs}))
    assert resume_state(first, overwrite=False) == "finished"
    paths.images[1].unlink()  # the user deleted an edit: the sidecar alone does not make the job finished
    assert resume_state(first, overwrite=False) == "incomplete" and not finished(first, overwrite=False)


@pytest.mark.parametrize("out", ["/tmp/elsewhere", "../up", "a/../../up", "~/results", "C:\\results", "", 3])
def test_a_recipes_out_stays_inside_the_recipes_folder(tmp_path, out):
    with pytest.raises(RecipeError, match=r"r\.json: 'out' must be a folder"):
        output_folder({"out": out}, tmp_path / "r.json", "p2p-out")


def test_a_recipes_out_may_be_any_folder_below_it(tmp_path):
    assert output_folder({"out": "results/today"}, tmp_path / "r.json", "p2p-out") == tmp_path / "results/today"
    assert output_folder({}, tmp_path / "r.json", "p2p-out") == tmp_path / "p2p-out"


@pytest.mark.parametrize(
    ("where", "name"), [("photo", "../x"), ("photo", ".hidden"), ("edit", "a/b"), ("edit", "/abs"), ("edit", "..")]
)
def test_names_are_plain_file_names(tmp_path, recipe, where, name):
    entry = recipe["photos"][0] if where == "photo" else recipe["photos"][0]["edits"][0]
    entry["name"] = name
    with pytest.raises(RecipeError, match="must be a plain file name"):
        plan_jobs(recipe, tmp_path / "r.json", tmp_path / "out", "toy", "auto", "auto")


def test_a_saved_inversion_is_a_batch_photo_and_missing_files_are_redone(
    tmp_path, tiny_pipe, tiny_model_dir, capsys, monkeypatch
):
    import cli
    import p2p_real

    draw_photo(tmp_path / "cat.png")
    p2p_real.Editor(tiny_pipe).invert(
        tmp_path / "cat.png", "a cat on a wall", method="ddim", num_inference_steps=2, progress=False
    ).save(tmp_path / "cat.inv.safetensors")
    (tmp_path / "cat.png").unlink()  # the inversion is all the batch needs
    recipe = {
        "model": str(tiny_model_dir),
        "photos": [{"photo": "cat.inv.safetensors", "edits": [{"target": "{prompt} at night", "name": "night"}]}],
    }
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["batch", "r.json", "-q"]) == 0, capsys.readouterr().err
    out = tmp_path / "p2p-out" / "cat"
    sidecar = json.loads((out / "night.json").read_text())
    assert sidecar["parameters"]["inversion"] == "cat.inv.safetensors"
    assert sidecar["parameters"]["targets"] == ["a cat on a wall at night"]  # {prompt}: the inversion's caption
    assert "1 done, 0 skipped" in capsys.readouterr().out
    stamp = (out / "night.0.png").stat().st_mtime_ns
    (out / "night.1.png").unlink()
    assert cli.main(["batch", "r.json", "-q"]) == 0
    assert "1 done, 0 skipped" in capsys.readouterr().out and (out / "night.1.png").is_file()  # redone
    assert (out / "night.0.png").stat().st_mtime_ns != stamp  # the job's own files were replaced
    assert cli.main(["batch", "r.json", "-q"]) == 0
    assert "0 done, 1 skipped" in capsys.readouterr().out
    recipe["photos"][0]["steps"] = 3  # a setting the inversion does not have: refused, naming it
    (tmp_path / "r.json").write_text(json.dumps(recipe))
    assert cli.main(["batch", "r.json", "-q", "--overwrite"]) == 1
    assert "was inverted with steps 2, not 3" in capsys.readouterr().err
