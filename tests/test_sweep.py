"""Settings sweeps: Editor.sweep, its batches, files, contact sheet, `edit --sweep` and the page (docs/sweep.md)."""

import json

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from p2p_real import Editor
from p2p_real.editing.sweep import SweepError, batches
from p2p_real.spec import EditSpec
from p2p_real.sweep_grid import MAX_COMBINATIONS, sweep_lists

STEPS = 5
PROMPT, TARGET = "a photo of a cat sitting on a table", "a photo of a dog sitting on a table"
BLEND = (["cat"], ["dog"])


def close(batched: torch.Tensor, alone: torch.Tensor) -> bool:
    """Equal up to float32 rounding: a batch's rows differ from a lone edit's by a few ulps of the largest latent
    (the untrained tiny model's latents reach ~20; docs/sweep.md)."""
    return bool((batched - alone).abs().max() <= 2e-5 * alone.abs().max())


@pytest.fixture(scope="module")
def editor(tiny_pipe):
    return Editor(tiny_pipe, num_inference_steps=STEPS)


@pytest.fixture(scope="module")
def inversions(editor):
    photo = skimage.data.chelsea()[::4, ::4].copy()
    return {
        m: editor.invert(photo, PROMPT, method=m, num_inner_steps=2, progress=False) for m in ("direct", "null-text")
    }


def test_every_combination_of_the_listed_values_is_one_edit(editor, inversions):
    res = editor.sweep(
        inversions["direct"], TARGET, cross_replace_steps=[0.2, 0.5, 0.8], self_replace_steps=[0.2, 0.6], progress=False
    )
    assert len(res) == 6
    assert res.labels == [
        "cross=0.2 self=0.2",
        "cross=0.2 self=0.6",
        "cross=0.5 self=0.2",
        "cross=0.5 self=0.6",
        "cross=0.8 self=0.2",
        "cross=0.8 self=0.6",
    ]
    for result, spec in zip(res.results, res.specs):
        assert result.prompts == [PROMPT, TARGET]
        assert result.parameters["spec"] == spec.to_dict()  # each edit reproducible from its own parameters
        assert len(result.images) == 2
    assert res.specs[3] == EditSpec(cross_replace_steps=0.5, self_replace_steps=0.6)


WINDOWS = {
    "cross_replace_steps": [0.2, (0.2, 0.8)],
    "self_replace_steps": [0.0, 0.6],
    "blend_threshold": [0.1, 0.6],
    "blend_start": [0.0, 0.8],
}
LAYERS = {
    "blend_pool": [0, 1],
    "self_replace_max_res": [0.25, 0.5],
    "edit": ["replace", "refine"],
    "equalizer": [None, {"dog": 2.0}],
}


NULL_TEXT = {"cross_replace_steps": [0.2, 0.8], "self_replace_steps": [0.0, 0.6], "blend_threshold": [0.1, 0.6]}


@pytest.mark.parametrize("method, lists", [("direct", WINDOWS), ("direct", LAYERS), ("null-text", NULL_TEXT)])
def test_a_batched_combination_equals_its_separate_edit(editor, inversions, method, lists):
    inv = inversions[method]
    res = editor.sweep(inv, TARGET, spec=EditSpec(blend_words=BLEND), progress=False, batch_size=16, **lists)
    assert len(batches(res.combinations, 16)) == 1  # one denoising batch [source, target x N]
    for k in (0, len(res) // 2 + 1, len(res) - 1):
        alone = editor.edit(inv, TARGET, spec=res.specs[k], progress=False)
        assert close(res[k].latents, alone.latents), res.labels[k]
        assert torch.equal(res[k].info["blend_mask"], alone.info["blend_mask"]), res.labels[k]
        diff = np.abs(np.asarray(res[k].images[1], dtype=int) - np.asarray(alone.images[1], dtype=int))
        assert diff.max() <= 1, res.labels[k]


def test_combinations_that_cannot_share_a_batch_run_apart(editor, inversions):
    inv = inversions["direct"]
    res = editor.sweep(inv, TARGET, blend_words=[None, BLEND], self_replace_steps=[0.2, 0.6], progress=False)
    assert [len(b) for b in batches(res.combinations, 8)] == [2, 2]
    assert res[0].info["blend_mask"] is None and res[2].info["blend_mask"] is not None
    alone = editor.edit(inv, TARGET, spec=res.specs[3], progress=False)
    assert close(res[3].latents, alone.latents)


def test_the_batch_size_caps_the_rows_of_one_denoising_batch(editor, inversions):
    res = editor.sweep(
        inversions["direct"], TARGET, cross_replace_steps=[0.2, 0.4, 0.6, 0.8, 1.0], batch_size=2, progress=False
    )
    assert [len(b) for b in batches(res.combinations, 2)] == [2, 2, 1]
    alone = editor.edit(inversions["direct"], TARGET, cross_replace_steps=1.0, progress=False)
    assert close(res[4].latents, alone.latents)


@pytest.mark.parametrize(
    "lists, match",
    [
        ({"cross_steps": [0.2, 0.5]}, "'cross_steps' is not an edit setting"),
        ({"cross_replace_steps": []}, "cross_replace_steps is an empty list"),
        ({"cross_replace_steps": [0.1] * 5, "self_replace_steps": [0.1] * 13}, "65 combinations is too many"),
        ({"blend_threshold": [0.3, 1.5]}, r"blend_threshold has a value the setting refuses, 1\.5"),
        ({}, "at least one setting"),
    ],
)
def test_a_bad_sweep_is_refused_before_any_work(editor, inversions, lists, match, tmp_path):
    with pytest.raises(SweepError, match=match):
        editor.sweep(inversions["direct"], TARGET, progress=False, **lists)
    assert isinstance(SweepError("x"), ValueError)
    assert MAX_COMBINATIONS == 64


def test_a_word_the_prompts_lack_is_refused_before_any_edit(editor, inversions):
    with pytest.raises(ValueError, match="lion"):
        editor.sweep(inversions["direct"], TARGET, blend_words=[BLEND, (["cat"], ["lion"])], progress=False)


def test_text_sweeps_parse_short_and_full_names():
    assert sweep_lists(["cross=0.2,0.5", "self_replace_steps=0.1:0.6", "pool=0,1", "threshold=0.3"]) == {
        "cross_replace_steps": [0.2, 0.5],
        "self_replace_steps": [(0.1, 0.6)],
        "blend_pool": [0, 1],
        "blend_threshold": [0.3],
    }
    with pytest.raises(SweepError, match="'crosss' is not an edit setting"):
        sweep_lists(["crosss=0.2"])
    with pytest.raises(SweepError, match="value '2' is refused"):
        sweep_lists(["threshold=0.2,2"])
    with pytest.raises(SweepError, match="swept twice"):
        sweep_lists(["cross=0.2", "cross_replace_steps=0.4"])


def test_save_writes_each_combination_as_an_edit_and_the_contact_sheet(editor, inversions, tmp_path):
    res = editor.sweep(
        inversions["direct"],
        TARGET,
        spec=EditSpec(blend_words=BLEND),
        cross_replace_steps=[0.2, 0.8],
        blend_threshold=[0.1, 0.3, 0.5],
        progress=False,
    )
    written = res.save(tmp_path, "cat")
    names = {p.name for p in written}
    for k in range(1, 7):
        assert {
            f"cat.{k}.0.png",
            f"cat.{k}.1.png",
            f"cat.{k}.1.mask.png",
            f"cat.{k}.grid.png",
            f"cat.{k}.json",
        } <= names
        sidecar = json.loads((tmp_path / f"cat.{k}.json").read_text())
        assert EditSpec.from_dict(sidecar["parameters"]["spec"]) == res.specs[k - 1]
        assert sidecar["sweep"]["index"] == k and sidecar["sweep"]["label"] == res.labels[k - 1]
    assert written[-1].name == "cat.sweep.json" and "cat.sweep.png" in names
    sweep = json.loads((tmp_path / "cat.sweep.json").read_text())
    assert sweep["parameters"]["swept"] == {"cross_replace_steps": [0.2, 0.8], "blend_threshold": [0.1, 0.3, 0.5]}
    with Image.open(tmp_path / "cat.sweep.png") as sheet:
        assert sheet.size == res.sheet.size
        assert sheet.height > 3 * res[0].images[1].height  # photo row and two rows of three combinations
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError):
        res.save(tmp_path, "cat")
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert len(res.save(tmp_path, "cat", overwrite=True)) == len(written)


# --- the command line -------------------------------------------------------------------------------------------


def test_edit_sweep_writes_each_combination_and_the_contact_sheet(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import cli
    from tests.helpers import DOG, cli_args, draw_photo, quick

    monkeypatch.chdir(tmp_path)
    draw_photo(tmp_path / "photo.png")
    sweeps = ["--sweep", "cross=0.2,0.8", "--sweep", "blend_threshold=0.1,0.3,0.5"]
    argv = cli_args(
        "edit", "photo.png", "--blend", "cat:dog", *sweeps, *quick(tiny_model_dir, 3, "direct"), "-q", targets=[DOG]
    )
    assert cli.main([*argv, "--out", "out"]) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    for k in range(1, 7):
        assert (out / f"photo.{k}.1.png").is_file() and (out / f"photo.{k}.1.mask.png").is_file()
    assert (out / "photo.sweep.png").is_file()
    sweep = json.loads((out / "photo.sweep.json").read_text())
    assert [c["label"] for c in sweep["parameters"]["combinations"]][:2] == [
        "cross=0.2 threshold=0.1",
        "cross=0.2 threshold=0.3",
    ]
    # each combination's sidecar reproduces that edit alone, byte for byte
    fifth = json.loads((out / "photo.5.json").read_text())
    assert "--sweep" not in fifth["argv"]
    assert cli.main([*fifth["argv"], "--model", str(tiny_model_dir), "--out", "again", "-q"]) == 0
    assert (tmp_path / "again/photo.1.png").read_bytes() == (out / "photo.5.1.png").read_bytes()
    # written again only with --overwrite
    capsys.readouterr()
    assert cli.main([*argv, "--out", "out"]) == 1
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "sweep, match",
    [
        (["colour=0.2,0.5"], "'colour' is not an edit setting"),
        (["cross="], "give comma-separated values"),
        (["threshold=0.2,7"], "value '7' is refused"),
        (["cross=" + ",".join(["0.1"] * 9), "self=" + ",".join(["0.1"] * 8)], "72 combinations is too many"),
        (["equalizer=2"], "cannot be swept from text"),
    ],
)
def test_a_bad_sweep_option_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, sweep, match):
    import cli
    from tests.helpers import DOG, cli_args, draw_photo

    monkeypatch.chdir(tmp_path)
    draw_photo(tmp_path / "photo.png")
    sweeps = [x for s in sweep for x in ("--sweep", s)]
    argv = cli_args("edit", "photo.png", "--model", "no-such-model", "--out", "out", *sweeps, targets=[DOG])
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


# --- the page ---------------------------------------------------------------------------------------------------


def test_the_page_sweeps_a_setting_and_a_click_on_a_tile_loads_its_values(offline_page, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from tests.ui_server import METHOD, STEPS, scene_photo

    photo, caption = scene_photo(tmp_path / "scene.png", size=(176, 160))  # not test_ui's photo: the page caches
    target = caption.replace("circle", "square")
    session = Client(offline_page.url, verbose=False, download_files=str(tmp_path / "downloads"))
    session.predict(handle_file(str(photo)), caption, METHOD, STEPS, api_name="/invert")
    session.predict(caption, target, [], api_name="/words")  # the word pickers offer the prompts' words
    page = [caption, target, ["circle"], ["square"], 0.3, [], 1.0, "auto", 0.8, 0.6, "replace"]  # mask mode last
    tiles, sheet = session.predict(*page, "self-attention steps", "0.0,0.4,0.8", api_name="/sweep")
    assert [tile["caption"] for tile in tiles] == ["1: self=0", "2: self=0.4", "3: self=0.8"]
    with Image.open(sheet) as img:
        assert img.width > 3 * 56  # three edits side by side under the photo and its reconstruction
    (saved,) = (offline_page.studio.edits).glob("scene-sweep-*.sweep.png")
    assert saved.with_name(saved.name.replace(".sweep.png", ".2.json")).is_file()
    for k, tile in enumerate(tiles, start=1):  # each tile is its combination's edit
        edited = saved.with_name(saved.name.replace(".sweep.png", f".{k}.1.png"))
        assert np.array_equal(np.asarray(Image.open(tile["image"])), np.asarray(Image.open(edited)))
    assert session.predict(1, api_name="/pick") == ("auto", 0.8, 0.4, 0.3)  # the second tile clicked
    with pytest.raises(AppError, match="click one of its tiles"):
        session.predict(5, api_name="/pick")
    with pytest.raises(AppError, match="value '7' is refused"):
        session.predict(*page, "blend threshold", "0.2,7", api_name="/sweep")


def test_a_sweep_result_can_be_continued_as_an_edit_of_an_edit(editor, inversions):
    """Each combination keeps its own row's trajectory (docs/design.md, "Edits of edits"): its as_inversion
    replays exactly that edit as row 0 of the next one."""
    res = editor.sweep(inversions["direct"], TARGET, cross_replace_steps=[0.2, 0.8], blend_words=BLEND, progress=False)
    for picked in res.results:
        chained = picked.as_inversion(1)
        again = editor.edit(chained, "a photo of a dog sitting on a bed", output_type="latent", progress=False)
        assert torch.equal(again.images[0:1], picked.latents[1:2])


def test_a_sweep_without_trajectories_gives_the_same_edits_and_cannot_be_continued(editor, inversions):
    """keep_trajectory=False (the command line and the page) records no latents per step: the same edits, and
    as_inversion says why it cannot continue."""
    lists = {"cross_replace_steps": [0.2, 0.8]}
    kept = editor.sweep(inversions["direct"], TARGET, blend_words=BLEND, progress=False, **lists)
    plain = editor.sweep(
        inversions["direct"], TARGET, blend_words=BLEND, progress=False, keep_trajectory=False, **lists
    )
    for with_steps, without in zip(kept.results, plain.results):
        assert torch.equal(with_steps.latents, without.latents)
        assert with_steps.trajectory is not None and without.trajectory is None
        with pytest.raises(ValueError, match="no trajectory"):
            without.as_inversion(1)
