"""One settings schema (docs/design.md §6): every EditSpec field carries its command-line option, recipe key, text
form and help (a p2p_real.schema.Setting in its metadata), and the front ends are loops over the fields. Each field,
set away from its default, comes back unchanged through the command line, a recipe (JSON and YAML), a --spec file,
the sidecar and the page's command; a field added without its Setting, or left out of CHANGED below, fails here."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

import cli
from p2p_real.batches.recipe import RecipeError, load_recipe, plan_jobs
from p2p_real.commands.options import spec_from_args
from p2p_real.editor import Editor
from p2p_real.schema import SETTING, Setting
from p2p_real.spec import SCHEMA, EditSpec
from p2p_real.ui.choices import spec_options
from tests.helpers import draw_photo

# Each setting: its option and recipe key (what users type: pinned here), a value away from both defaults (one
# target prompt), that value as the option's texts, and a value the setting refuses.
CHANGED = {
    "edit": ("--edit", "edit", "refine", ["refine"], "swap"),
    "cross_replace_steps": (
        "--cross-replace",
        "cross_replace",
        {"default_": (0.1, 0.7), "dog": 0.4},
        ["0.1:0.7", "dog=0.4"],
        1.5,
    ),
    "self_replace_steps": ("--self-replace", "self_replace", (0.1, 0.5), ["0.1:0.5"], (0.5, 0.1)),
    "self_replace_max_res": ("--self-replace-max-res", "self_replace_max_res", 0.125, ["0.125"], 0),
    "blend_words": ("--blend", "blend", (("cat",), ("dog",)), ["cat:dog"], 5),
    "subtract_words": ("--subtract", "subtract", (("wall",), ("wall",)), ["wall:wall"], 5),
    "blend_threshold": ("--blend-threshold", "blend_threshold", 0.45, ["0.45"], 3),
    "blend_pool": ("--blend-pool", "blend_pool", 2, ["2"], -1),
    "blend_start": ("--blend-start", "blend_start", 0.35, ["0.35"], 3),
    "equalizer": ("--reweight", "reweight", {"dog": 2.0}, ["dog=2.0"], {"dog": 99}),
    "mask_mode": ("--mask-mode", "mask_mode", "intersect", ["intersect"], "union"),
    "feather": ("--feather", "feather", 0.05, ["0.05"], 0.9),
}
VALUES = {name: value for name, (_, _, value, _, _) in CHANGED.items()}
EDIT = ["edit", "photo.png", "-p", "a cat on a wall", "-t", "a dog on a wall"]
SPEC = EditSpec(**VALUES)


def fields() -> list[str]:
    """EditSpec's settings, read from the dataclass itself (not from the schema under test)."""
    return [f.name for f in dataclasses.fields(EditSpec) if f.name != "names"]


def options() -> list[str]:
    """Every setting's option with its texts, as CHANGED spells them."""
    return [x for flag, _, _, texts, _ in CHANGED.values() for text in texts for x in (flag, text)]


def test_every_field_has_a_setting_and_the_table_changes_every_one():
    assert set(CHANGED) == set(fields())  # a new setting: add it to CHANGED
    for field in dataclasses.fields(EditSpec):
        if field.name != "names":
            assert isinstance(field.metadata.get(SETTING), Setting), field.name
    assert list(SCHEMA) == fields()
    for name in fields():
        setting = SCHEMA[name]
        assert (setting.flag, setting.key) == CHANGED[name][:2], name
        assert setting.help.strip(), name
        assert getattr(SPEC, name) != getattr(EditSpec(), name), name
        assert getattr(SPEC, name) != getattr(EditSpec.synthetic(), name), name


def test_the_command_line_gives_every_setting():
    args = cli.build_parser().parse_args([*EDIT, *options()])
    spec = spec_from_args(args, 1)
    for name in fields():
        assert getattr(spec, name) == VALUES[name], name
    assert spec == SPEC


def test_feather_has_its_option():
    spec = spec_from_args(cli.build_parser().parse_args([*EDIT, "--feather", "0.1"]), 1)
    assert spec.feather == 0.1 and spec.replace(feather=None) == EditSpec()
    with pytest.raises(ValueError, match=r"--feather must be <= 0\.5"):
        spec_from_args(cli.build_parser().parse_args([*EDIT, "--feather", "0.9"]), 1)


def test_generate_has_no_option_of_photo_edits_alone():
    photo_only = [name for name, setting in SCHEMA.items() if setting.photo]
    assert photo_only == ["mask_mode", "feather"]
    for name in photo_only:
        with pytest.raises(cli.UsageError, match="unrecognized arguments"):
            cli.build_parser().parse_args(["generate", "a cat", "a dog", SCHEMA[name].flag, CHANGED[name][3][0]])


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_recipe_gives_every_setting_in_text_and_as_a_sidecar_stores_it(tmp_path, suffix):
    if suffix == ".yaml":
        yaml = pytest.importorskip("yaml")
    draw_photo(tmp_path / "cat.png")
    as_text = {key: texts if len(texts) > 1 else texts[0] for _, key, _, texts, _ in CHANGED.values()}
    as_json = {CHANGED[name][1]: value for name, value in SPEC.to_dict().items()}  # a sidecar's values
    edits = [{"target": "a dog on a wall", **as_text}, {"target": "a dog on a wall", "name": "json", **as_json}]
    recipe = {"photos": [{"photo": "cat.png", "prompt": "a cat on a wall", "edits": edits}]}
    path = tmp_path / f"recipe{suffix}"
    path.write_text(yaml.safe_dump(recipe) if suffix == ".yaml" else json.dumps(recipe), encoding="utf-8")
    jobs = plan_jobs(load_recipe(path), path, tmp_path / "out", "toy", "auto", "auto")
    for job in jobs:
        for name in fields():
            assert getattr(job.spec, name) == VALUES[name], (job.edit_name, name)
        assert job.spec == SPEC


def test_a_spec_file_gives_every_setting(tmp_path):
    plain = tmp_path / "spec.json"
    plain.write_text(json.dumps(SPEC.to_dict()), encoding="utf-8")
    sidecar = tmp_path / "photo.json"
    sidecar.write_text(json.dumps({"parameters": {"spec": SPEC.to_dict()}}), encoding="utf-8")
    for given in (str(plain), str(sidecar), json.dumps(SPEC.to_dict())):
        spec = spec_from_args(cli.build_parser().parse_args([*EDIT, "--spec", given]), 1)
        for name in fields():
            assert getattr(spec, name) == VALUES[name], (given, name)


def test_the_sidecar_keeps_every_setting():
    data = json.loads(json.dumps(SPEC.to_dict()))
    assert list(data) == fields()
    again = EditSpec.from_dict(data)
    for name in fields():
        assert getattr(again, name) == VALUES[name], name


def test_the_pages_command_gives_every_setting():
    argv = spec_options(SPEC)
    assert argv == options()  # in field order, each option's texts as CHANGED writes them
    spec = spec_from_args(cli.build_parser().parse_args([*EDIT, *argv]), 1)
    for name in fields():
        assert getattr(spec, name) == VALUES[name], name
    assert spec_options(EditSpec()) == []


@pytest.mark.parametrize("name", list(CHANGED))
def test_errors_name_the_setting_as_each_front_end_spells_it(tmp_path, name):
    flag, key, _, _, refused = CHANGED[name]
    needs = {"blend_words": [["cat"], ["dog"]]} if name in ("subtract_words", "mask_mode") else {}
    given = {**needs, name: refused}
    with pytest.raises(ValueError, match=f"{flag}[ \\[]"):
        spec_from_args(cli.build_parser().parse_args([*EDIT, "--spec", json.dumps(given)]), 1)
    draw_photo(tmp_path / "cat.png")
    edit = {"target": "a dog on a wall", **{SCHEMA[n].key: v for n, v in given.items()}}
    recipe = {"photos": [{"photo": "cat.png", "prompt": "a cat on a wall", "edits": [edit]}]}
    with pytest.raises(RecipeError, match=f"edits\\[0\\]: {key}[ \\[]"):
        plan_jobs(recipe, tmp_path / "r.json", tmp_path / "out", "toy", "auto", "auto")


def test_editor_settings_are_keyword_only_after_the_prompts():
    for method, positional in ((Editor.edit, ["self", "inv", "targets"]), (Editor.generate, ["self", "prompts"])):
        parameters = inspect.signature(method).parameters.values()
        assert [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY] == positional
        keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert set(fields()) - {"mask_mode", "feather"} <= keywords
