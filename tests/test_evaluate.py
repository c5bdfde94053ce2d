"""`p2p-real evaluate` and p2p_real.evaluate (docs/evaluate.md): inputs, PIE-Bench masks and background figures
checked by hand, resuming, the report, the optional model figures with a fake model, and the toy-world PIE set."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

import p2p_real
from p2p_real.evaluation import MetricModels
from p2p_real.evaluation.background import (
    MaskCodeError,
    background_mse,
    background_psnr,
    background_ssim,
    rle_decode,
    rle_encode,
)
from p2p_real.evaluation.inputs import EvaluationInputError, folder_cases, pie_cases, split_brackets
from p2p_real.evaluation.report import pie_table_lines, summary
from p2p_real.evaluation.runner import RowsMismatchError, check_mask, row_path
from p2p_real.files.output_sets import OutputExistsError
from tests.helpers import draw_photo

STEPS = 2


@pytest.fixture
def editor(tiny_pipe):
    return p2p_real.Editor(tiny_pipe, num_inference_steps=STEPS)


@pytest.fixture
def photos(tmp_path):
    """Two photos with captions in captions.csv."""
    folder = tmp_path / "photos"
    folder.mkdir()
    draw_photo(folder / "sun.png")
    draw_photo(folder / "red.png", sun=(200, 40, 40))
    (folder / "captions.csv").write_text("photo,caption\nsun.png,a yellow circle in the sky\nred.png,a red circle\n")
    return folder


def pie_folder(root, runs=None, size=(40, 32)):
    """A PIE-format set of one photo (cat -> dog) with a hand-made mask: a box of 8x6 pixels at (10, 12)."""
    mask = np.zeros(size[::-1], dtype=bool)
    mask[12:18, 10:18] = True
    (root / "annotation_images" / "0_random").mkdir(parents=True)
    draw_photo(root / "annotation_images" / "0_random" / "000.png", size=size)
    entry = {
        "image_path": "0_random/000.png",
        "original_prompt": "a cat sitting on a wall",
        "editing_prompt": "a [dog] sitting on a wall",
        "editing_instruction": "make it a dog",
        "editing_type_id": "0",
        "blended_word": "cat dog",
        "mask": rle_encode(mask) if runs is None else runs,
    }
    (root / "mapping_file.json").write_text(json.dumps({"000": entry}))
    return root, mask


# --- masks and background figures (docs/evaluate.md, "Masks", "Background figures (PIE-Bench)") ---


def test_rle_runs_read_the_pixels_row_by_row():
    mask = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool)
    assert rle_encode(mask) == [1, 2, 7, 2]  # pixels 1-2, then 7-8 (row 1's last and row 2's first)
    assert np.array_equal(rle_decode([1, 2, 7, 2], (3, 4)), mask)


def test_rle_round_trip_on_random_masks():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (5, 7), (32, 40)]:
        for density in (0.0, 0.3, 1.0):
            mask = rng.random(shape) < density
            assert np.array_equal(rle_decode(rle_encode(mask), shape), mask)


def test_rle_marks_the_border_as_the_benchmark_does_and_stops_a_long_run_at_the_end():
    mask = rle_decode([], (4, 5), mark_border=True)
    assert mask.sum() == 4 * 5 - 2 * 3 and not mask[1:3, 1:4].any()
    assert rle_decode([18, 10], (4, 5)).sum() == 2  # a run past the end stops there


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ([3], "runs come in pairs"),
        ([1, -2], "-2 is not a whole number"),
        ([1.5, 2], "1.5 is not a whole number"),
        ([20, 1], "starts at pixel 20, outside the 5x4 image"),
        ("1 2", "not a list of numbers"),
    ],
)
def test_a_malformed_rle_mask_is_one_clear_error(runs, message):
    with pytest.raises(MaskCodeError, match=message):
        rle_decode(runs, (4, 5))


def test_background_figures_by_hand():
    photo = np.zeros((4, 4, 3), dtype=np.uint8)
    image = photo.copy()
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2] = True  # the edited region: the top half
    image[0, 0] = 255  # inside the mask: not counted
    assert background_mse(image, photo, mask) == 0 and background_psnr(image, photo, mask) == math.inf
    image[3, 3, 0] = 51  # one background channel off by 0.2: MSE = 0.04 / (8 pixels x 3 channels)
    assert background_mse(image, photo, mask) == pytest.approx(0.04 / 24)
    assert background_psnr(image, photo, mask) == pytest.approx(10 * math.log10(24 / 0.04))
    assert background_ssim(photo, photo, mask) == pytest.approx(1.0)
    assert background_ssim(image, photo, mask) < 1.0
    with pytest.raises(ValueError, match="no background"):
        background_mse(image, photo, np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="the mask is 3x4, the image 4x4"):
        background_mse(image, photo, np.zeros((4, 3), dtype=bool))


# --- inputs (docs/evaluate.md, "Inputs") ---


def test_captions_come_from_csv_jsonl_or_a_sidecar(tmp_path, photos):
    assert [(c.name, c.caption) for c in folder_cases(photos)] == [
        ("red", "a red circle"),
        ("sun", "a yellow circle in the sky"),
    ]
    (photos / "captions.csv").unlink()
    (photos / "captions.jsonl").write_text('{"photo": "red.png", "caption": "a red one"}\n\n')
    (photos / "sun.txt").write_text("a sun\n")
    assert [c.caption for c in folder_cases(photos)] == ["a red one", "a sun"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda f: (f / "sun.png").unlink() or (f / "red.png").unlink(), "holds no photos"),
        (
            lambda f: (f / "captions.csv").write_text("photo,caption\nsun.png,a sun\n"),
            "photo 'red.png' has no caption in captions.csv or red.txt",
        ),
        (lambda f: (f / "captions.csv").write_text("file,text\nsun.png,a sun\n"), "must name the columns photo and"),
        (lambda f: (f / "captions.csv").write_text("photo,caption\nsun.png,\n"), "line 2: a photo and a caption"),
        (lambda f: (f / "captions.csv").write_text("photo,caption\nmoon.png,a moon\n"), "no photo 'moon.png'"),
        (
            lambda f: (f / "captions.csv").unlink() or (f / "captions.jsonl").write_text('{"photo": "sun.png"\n'),
            "captions.jsonl, line 1: not valid JSON",
        ),
        (
            lambda f: (f / "captions.csv").unlink() or (f / "captions.jsonl").write_text('["sun.png", "a sun"]\n'),
            "line 1: expected an object",
        ),
    ],
)
def test_a_bad_folder_or_captions_file_is_one_clear_error(photos, setup, message):
    setup(photos)
    with pytest.raises(EvaluationInputError, match=message):
        folder_cases(photos)


def test_photos_of_one_stem_get_rows_of_their_own(photos):
    draw_photo(photos / "sun.jpg")
    (photos / "sun.txt").write_text("a sun")
    assert [c.name for c in folder_cases(photos)] == ["red", "sun.jpg", "sun.png"]


def test_a_missing_folder_or_a_file_is_refused(tmp_path):
    with pytest.raises(EvaluationInputError, match="not found"):
        folder_cases(tmp_path / "nope")
    (tmp_path / "f").write_text("")
    with pytest.raises(EvaluationInputError, match="is not a folder"):
        folder_cases(tmp_path / "f")


def test_pie_entries_lose_their_brackets_and_keep_the_blend_words(tmp_path):
    pie_folder(tmp_path)
    (case,) = pie_cases(tmp_path)
    assert (case.caption, case.target, case.blend_words, case.emphasised) == (
        "a cat sitting on a wall",
        "a dog sitting on a wall",
        (["cat"], ["dog"]),
        ["dog"],
    )
    assert split_brackets("a [red  car] on [ ] the road") == ("a red car on the road", ["red car"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: "{", "not valid JSON"),
        (lambda d: [], "expected an object of entries"),
        (lambda d: {"000": {**d["000"], "editing_prompt": 3}}, "'editing_prompt' is missing or not a text"),
        (lambda d: {"000": {**d["000"], "mask": "1 2"}}, "'mask' is missing or not a list"),
        (lambda d: {"000": {**d["000"], "blended_word": "a b c"}}, "'blended_word' must be two words"),
        (lambda d: {"000": {**d["000"], "image_path": "0_random/none.png"}}, "none.png' not found"),
    ],
)
def test_a_malformed_mapping_file_is_one_clear_error(tmp_path, change, message):
    pie_folder(tmp_path)
    path = tmp_path / "mapping_file.json"
    changed = change(json.loads(path.read_text()))
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(EvaluationInputError, match=message):
        pie_cases(tmp_path)


def test_a_pie_folder_without_a_mapping_file_and_a_mask_that_does_not_fit(tmp_path):
    with pytest.raises(EvaluationInputError, match=r"has no mapping_file\.json"):
        pie_cases(tmp_path)
    pie_folder(tmp_path, runs=[40 * 32, 5])  # starts one pixel past the 40x32 photo
    (case,) = pie_cases(tmp_path)
    with pytest.raises(EvaluationInputError, match=r"case '000' \(000.png\): run 0 of the mask starts at pixel 1280"):
        check_mask(case)


# --- evaluate on the tiny model (docs/evaluate.md, "Files and resuming", "Plots") ---


def test_evaluate_measures_every_photo_and_method_and_resumes(tmp_path, photos, editor, monkeypatch):
    out = tmp_path / "eval"
    result = p2p_real.evaluate(editor, photos, out, ["ddim", "direct"], progress=False)
    assert [(r["photo"], r["method"]) for r in result.rows] == [
        ("red", "ddim"),
        ("red", "direct"),
        ("sun", "ddim"),
        ("sun", "direct"),
    ]
    direct = result.rows[1]
    assert direct["latent_error"] == 0 and direct["lost_db"] == pytest.approx(0, abs=1e-3)
    assert direct["drift_psnr"] is not None and result.rows[0]["drift_psnr"] is None  # direct's drift only
    assert direct["verdict"] in ("good", "fair", "poor") and direct["invert_s"] > 0
    assert result.rows[0]["lost_db"] == pytest.approx(result.rows[0]["vae_psnr"] - result.rows[0]["psnr"], abs=1e-5)
    table = {e["method"]: e for e in summary(result.rows)}
    assert table["ddim"]["photos"] == 2
    assert table["ddim"]["psnr"] == pytest.approx((result.rows[0]["psnr"] + result.rows[2]["psnr"]) / 2)
    lines = (out / "evaluation.csv").read_text().splitlines()
    assert lines[0].startswith("photo,method,caption,psnr") and len(lines) == 5
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["rows"] == result.rows and saved["summary"][0]["method"] == "ddim"
    assert json.loads(row_path(out, "sun", "direct").read_text())["row"] == result.rows[3]

    # a second run measures nothing: finished rows are read back
    def no_inversion(*args, **kwargs):
        raise AssertionError("a finished row was measured again")

    monkeypatch.setattr(editor, "invert", no_inversion)
    again = p2p_real.evaluate(editor, photos, out, ["ddim", "direct"], progress=False)
    assert again.skipped == 4 and again.rows == result.rows
    monkeypatch.undo()
    row_path(out, "red", "ddim").unlink()  # a missing row is redone, the others kept
    third = p2p_real.evaluate(editor, photos, out, ["ddim", "direct"], progress=False)
    assert third.skipped == 3 and row_path(out, "red", "ddim").is_file()
    with pytest.raises(RowsMismatchError, match=r"red\.ddim\.json was measured with other settings"):
        p2p_real.evaluate(editor, photos, out, ["ddim"], num_inference_steps=3, progress=False)
    redone = p2p_real.evaluate(editor, photos, out, ["ddim"], num_inference_steps=3, overwrite=True, progress=False)
    assert redone.skipped == 0
    assert json.loads(row_path(out, "sun", "ddim").read_text())["request"]["steps"] == 3


def test_each_process_measures_its_share_of_the_photos(tmp_path, photos, editor):
    out = tmp_path / "eval"
    first = p2p_real.evaluate(editor, photos, out, ["ddim"], process=(0, 2), report=False, progress=False)
    assert [r["photo"] for r in first.rows] == ["red"] and not (out / "evaluation.json").exists()
    second = p2p_real.evaluate(editor, photos, out, ["ddim"], process=(1, 2), report=False, progress=False)
    # only its own share: another process's rows may be finished while this one plans (they count there)
    assert [r["photo"] for r in second.rows] == ["sun"] and second.skipped == 0
    again = p2p_real.evaluate(editor, photos, out, ["ddim"], process=(1, 2), report=False, progress=False)
    assert [r["photo"] for r in again.rows] == ["sun"] and again.skipped == 1
    last = p2p_real.evaluate(editor, photos, out, ["ddim"], progress=False)
    assert last.skipped == 2 and len(json.loads((out / "evaluation.json").read_text())["rows"]) == 2


@pytest.mark.slow
def test_accelerate_launch_splits_the_photos_and_the_first_process_writes_the_report(tmp_path, photos, tiny_model_dir):
    from tests.helpers import ok, run_cli
    from tests.test_cli import accelerate_prefix

    argv = [
        "evaluate",
        str(photos),
        "--model",
        str(tiny_model_dir),
        "--steps",
        "2",
        "--methods",
        "ddim,direct",
        "--out",
        str(tmp_path / "eval"),
        "-q",
    ]
    result = ok(run_cli(argv, tmp_path, tmp_path / "home", accelerate_prefix()))
    assert "4 rows measured, 0 skipped" in result.stdout and result.stdout.count("| ddim ") == 1
    rows = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["rows"]
    assert sorted((r["photo"], r["method"]) for r in rows) == [
        ("red", "ddim"),
        ("red", "direct"),
        ("sun", "ddim"),
        ("sun", "direct"),
    ]
    measured_by = {
        name: json.loads(row_path(tmp_path / "eval", name, "ddim").read_text())["process"] for name in ("red", "sun")
    }
    assert measured_by == {"red": 0, "sun": 1}  # one photo each


def test_the_report_embeds_the_plots_and_never_replaces_a_file_it_did_not_write(tmp_path, photos, editor):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "evaluation.html").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"evaluation\.html exists"):
        p2p_real.evaluate(editor, photos, out, ["ddim"], progress=False)
    assert (out / "evaluation.html").read_text() == "mine" and not (out / "rows").exists()  # refused before work
    result = p2p_real.evaluate(editor, photos, out, ["ddim"], overwrite=True, progress=False)
    png = (out / "evaluation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and Image.open(out / "evaluation.png").size == (1100, 420)
    page = (out / "evaluation.html").read_text()
    assert "data:image/png;base64," in page and "<td>sun</td>" in page and "| ddim" in page
    assert sorted(p.name for p in result.written) == sorted(
        f"evaluation.{s}" for s in ("csv", "txt", "png", "html", "json")
    )
    p2p_real.evaluate(editor, photos, out, ["ddim"], progress=False)  # its own report: rewritten on a rerun


def test_without_matplotlib_the_report_is_written_without_plots(tmp_path, photos, editor, monkeypatch):
    import sys

    out = tmp_path / "eval"
    p2p_real.evaluate(editor, photos, out, ["ddim"], progress=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = p2p_real.evaluate(editor, photos, out, ["ddim"], progress=False)
    assert not (out / "evaluation.png").exists() and "evaluation.png" not in {p.name for p in result.written}
    assert "matplotlib is not installed" in (out / "evaluation.html").read_text()


# --- PIE-Bench (docs/evaluate.md, "Background figures (PIE-Bench)", "Figures that need a model") ---


def test_pie_bench_background_figures_outside_the_mask_and_the_models_not_computed(tmp_path, editor, monkeypatch):
    root, mask = pie_folder(tmp_path / "pie")
    calls, edit = [], editor.edit

    def spy(inv, target, **options):
        calls.append((target, options))
        return edit(inv, target, **options)

    monkeypatch.setattr(editor, "edit", spy)
    result = p2p_real.evaluate(editor, out=tmp_path / "eval", methods=["direct"], pie_bench=root, progress=False)
    ((target, options),) = calls  # PIE-Bench's P2P settings (SPEC.md section 5)
    assert target == "a dog sitting on a wall" and options["blend_words"] == (["cat"], ["dog"])
    assert (options["edit"], options["cross_replace_steps"], options["self_replace_steps"]) == ("refine", 0.4, 0.6)
    assert options["equalizer"] == {"dog": 2.0}
    (row,) = result.rows
    assert row["target"] == "a dog sitting on a wall" and row["edit_type"] == "0"
    assert row["bg_psnr"] == pytest.approx(10 * math.log10(1 / row["bg_mse"]), abs=1e-4)
    assert row["lpips"] is None and row["clip_whole"] is None and row["structure_distance"] is None
    assert "torchvision" in result.not_computed["lpips"] and "--metric-models" in result.not_computed["clip_whole"]
    text = (tmp_path / "eval" / "evaluation.txt").read_text()
    assert "| Method     | Structure Distance x10^3 | PSNR " in text and "| direct+P2P |" in text
    assert "not computed: lpips: LPIPS needs" in text


def test_a_case_that_fails_is_listed_and_the_others_go_on(tmp_path, editor):
    root, _ = pie_folder(tmp_path / "pie")
    path = root / "mapping_file.json"
    data = json.loads(path.read_text())
    data["001"] = {**data["000"], "blended_word": "cat horse"}  # 'horse' is not in the target
    path.write_text(json.dumps(data))
    result = p2p_real.evaluate(editor, out=tmp_path / "eval", methods=["ddim"], pie_bench=root, progress=False)
    assert [r["photo"] for r in result.rows] == ["000"]
    ((case, method, reason),) = result.failures
    assert (case, method) == ("001", "ddim") and "horse" in reason
    assert not row_path(tmp_path / "eval", "001", "ddim").exists()  # tried again by the next run
    assert "001 / ddim: " in (tmp_path / "eval" / "evaluation.html").read_text()


def test_background_psnr_per_edit_type():
    from p2p_real.evaluation.report import edit_type_lines

    rows = [
        {"photo": "a", "method": "ddim", "edit_type": "1", "bg_psnr": 20.0},
        {"photo": "b", "method": "ddim", "edit_type": "1", "bg_psnr": 30.0},
        {"photo": "c", "method": "ddim", "edit_type": "10", "bg_psnr": 15.0},
        {"photo": "c", "method": "direct", "edit_type": "10", "bg_psnr": None},
    ]
    lines = edit_type_lines(rows)
    assert lines[0] == "Background PSNR per edit type (cases: type 1: 2, type 10: 1)"
    assert [c.strip() for c in lines[3].strip("|").split("|")] == ["ddim", "25.00", "15.00"]
    assert [c.strip() for c in lines[4].strip("|").split("|")] == ["direct", "-", "-"]


def test_the_pie_table_scales_as_the_pnp_inversion_readme():
    entry = {
        "method": "direct",
        "structure_distance": 0.0123,
        "bg_psnr": 27.5,
        "lpips": None,
        "bg_mse": 0.0031,
        "bg_ssim": 0.845,
        "clip_whole": 25.0,
        "clip_edited": 22.1,
    }
    row = pie_table_lines([entry], {"lpips": "why"})[3]
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "direct+P2P",
        "12.30",
        "27.50",
        "-",
        "31.00",
        "84.50",
        "25.00",
        "22.10",
    ]


def test_model_figures_come_from_the_metric_models_the_edited_region_alone_for_clip_edited(tmp_path, editor):
    root, mask = pie_folder(tmp_path / "pie")
    seen = []

    def clip(image, text):
        seen.append(image.copy())
        return 30.0 if len(seen) == 1 else 20.0

    models = MetricModels(
        clip=clip,
        structure=lambda photo, edited: float(np.abs(photo - edited.astype(float)).mean()),
        reasons={"lpips": "no lpips here"},
    )
    result = p2p_real.evaluate(
        editor, out=tmp_path / "eval", methods=["ddim"], pie_bench=root, metric_models=models, progress=False
    )
    (row,) = result.rows
    assert row["clip_whole"] == 30.0 and row["clip_edited"] == 20.0 and row["structure_distance"] >= 0
    assert result.not_computed == {"lpips": "no lpips here"}
    whole, edited = seen
    border = rle_decode(rle_encode(mask), mask.shape, mark_border=True)
    assert not edited[~border].any() and np.array_equal(edited[border], whole[border])  # the region on black


def test_metric_models_from_a_folder_report_what_did_not_load(tmp_path):
    (tmp_path / "clip").mkdir()  # empty: no model
    models = p2p_real.evaluation.load_metric_models(tmp_path)
    assert models.clip is None and models.reasons["clip_whole"].startswith(f"{tmp_path / 'clip'} did not load")
    assert "no DINO model" in models.reasons["structure_distance"]
    with pytest.raises(ValueError, match="is not a folder"):
        p2p_real.evaluation.load_metric_models(tmp_path / "none")


def save_tiny_metric_models(folder):
    """A tiny random CLIP (with the test tokenizer) in folder/clip and a tiny ViT in folder/dino, saved offline."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    from p2p_real.testing import TEST_WORDS, build_clip_tokenizer

    torch.manual_seed(0)
    tokenizer = build_clip_tokenizer(TEST_WORDS)
    layers = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "max_position_embeddings": 77, **layers},
        vision_config={"image_size": 32, "patch_size": 8, **layers},
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(folder / "clip")
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder / "clip")
    ViTModel(ViTConfig(image_size=32, patch_size=8, **layers), add_pooling_layer=False).save_pretrained(folder / "dino")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder / "dino")


def test_metric_models_load_offline_from_a_folder_of_transformers_models(tmp_path):
    save_tiny_metric_models(tmp_path)
    models = p2p_real.evaluation.load_metric_models(tmp_path)
    assert models.reasons == {"lpips": p2p_real.evaluation.metric_models.LPIPS_REASON}
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    score = models.clip(image, "a red cat")
    assert math.isfinite(score) and 0 <= score <= 100
    assert models.structure(image, image) == pytest.approx(0, abs=1e-9)
    assert models.structure(image, 255 - image) > 0


# --- the command ---


def test_the_command_prints_the_tables_and_resumes(tmp_path, photos, tiny_model_dir, capsys, monkeypatch):
    import cli

    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", str(photos), "--model", str(tiny_model_dir), "--steps", "2", "--methods", "ddim", "-q"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "| ddim   | 2      |" in out and "2 rows measured, 0 skipped" in out
    assert (tmp_path / "p2p-eval" / "evaluation.html").is_file()
    assert cli.main(argv) == 0
    assert "0 rows measured, 2 skipped (finished)" in capsys.readouterr().out


def test_the_first_of_several_processes_loads_the_metric_models_once(tmp_path, photos, tiny_model_dir, monkeypatch):
    import cli
    import p2p_real.evaluation
    from p2p_real.batches import batch

    loads = []
    load = p2p_real.evaluation.load_metric_models
    monkeypatch.setattr(p2p_real.evaluation, "load_metric_models", lambda folder: loads.append(folder) or load(folder))
    monkeypatch.setattr(batch, "distributed", lambda: (None, 0, 2))  # the first of two processes, no accelerate
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()  # no clip/ or dino/: nothing loads, but the folder is read
    argv = ["evaluate", str(photos), "--model", str(tiny_model_dir), "--steps", "2", "--methods", "ddim", "-q"]
    assert cli.main([*argv, "--metric-models", "metrics"]) == 0
    assert loads == ["metrics"] and (tmp_path / "p2p-eval" / "evaluation.html").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give a FOLDER of photos or --pie-bench DIR"),
        (["nope"], "folder 'nope' not found"),
        (["--pie-bench", "."], "has no mapping_file.json"),
        (["photos", "--methods", "ddim,foo"], "'foo' is not one of ddim"),
        (["photos", "--metric-models", "none"], "--metric-models 'none' is not a folder"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(tmp_path, photos, capsys, monkeypatch, argv, message):
    import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", *argv]) in (1, 2)
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_command_refuses_a_mask_that_does_not_fit_before_loading_the_model(tmp_path, capsys):
    import cli

    pie_folder(tmp_path / "pie", runs=[0, 5, 7])
    assert cli.main(["evaluate", "--pie-bench", str(tmp_path / "pie"), "--model", str(tmp_path / "no-model")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("case '000' (000.png): the mask has 3 numbers: runs come in pairs (start, length)")
    assert len(err.splitlines()) == 1


# --- the toy-world PIE set (docs/evaluate.md, "The toy-world PIE set") ---


def test_the_toy_pie_set_is_pie_format_with_true_masks(tmp_path):
    from p2p_real.toyworld.pie import toy_pie_entries, write_toy_pie_set
    from p2p_real.toyworld.scenes import render

    mapping = write_toy_pie_set(tmp_path / "toy", count=3)
    cases = pie_cases(tmp_path / "toy")
    assert [c.edit_type for c in cases] == ["1", "6", "8"]  # shape, colour, background
    entries = toy_pie_entries(3)
    for case, (key, entry, rendered) in zip(cases, entries, strict=True):
        assert case.name == key and np.array_equal(np.asarray(Image.open(case.photo)), rendered.image)
        new = case.blend_words[1][0]
        assert f"[{new}]" in entry["editing_prompt"] and case.target == entry["editing_prompt"].replace(f"[{new}]", new)
        check_mask(case)
    masks = [rle_decode(case.mask_runs, (64, 64)) for case in cases]
    shape_scene, colour_scene, background_scene = (rendered for _, _, rendered in entries)
    swapped = render(shape_scene.scene.with_object(0, shape=cases[0].blend_words[1][0]), 64).objects[0].mask
    assert np.array_equal(masks[0], shape_scene.objects[0].mask | swapped)  # the old shape and the new one
    assert not np.array_equal(swapped, shape_scene.objects[0].mask)
    assert np.array_equal(masks[1], colour_scene.objects[0].mask)  # a colour swap: the object
    assert np.array_equal(masks[2], background_scene.background_mask)  # a background swap: the background
    with pytest.raises(OutputExistsError):
        write_toy_pie_set(tmp_path / "toy", count=3)
    assert mapping.name == "mapping_file.json"


def test_the_toy_pie_set_runs_end_to_end_on_the_toy_model(tmp_path, capsys, monkeypatch):
    import cli
    from p2p_real.toyworld.pie import write_toy_pie_set

    write_toy_pie_set(tmp_path / "toy", count=1)
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--pie-bench", "toy", "--model", "toy", "--steps", "2", "--methods", "direct", "-q"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "| direct+P2P |" in out and "1 rows measured" in out
    (row,) = json.loads((tmp_path / "p2p-eval" / "evaluation.json").read_text())["rows"]
    assert row["edit_type"] == "1" and row["bg_psnr"] > 0
