"""The second hostile hunt (issue 28): nothing followed, nothing served, nothing unbounded.

Each test names the promise of docs/reliability.md it shows ("Files from elsewhere", "Limits", "The page").
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image

import cli
from inversion.storage.no_follow import NotRegularFileError
from p2p_real.files.output_sets import lock_path, reserve
from tests.helpers import cli_args, quick

EDIT_FAST = ["-p", "a cat on a wall", "-t", "a dog on a wall", "--steps", "2", "--method", "ddim"]


def _photo(folder: Path) -> Path:
    path = folder / "scene.png"
    Image.new("RGB", (48, 40), (90, 140, 200)).save(path)
    return path


def _with_timeout(call, seconds: float = 10.0):
    """Run `call` in a thread; fail (instead of hanging the suite) if it does not return in time."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung (a FIFO or device was opened and waited on)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# ---------------------------------------------------------------------------------------------------------------
# 1. Lock files (and every output name) are never written through a link, FIFO or device.


def test_a_lock_file_that_is_a_link_to_a_users_file_is_refused_and_the_file_kept(tmp_path):
    users = tmp_path / "precious.txt"
    users.write_text("the user's own words")
    out = tmp_path / "out"
    out.mkdir()
    lock_path(out, "scene").symlink_to(users)
    with pytest.raises(NotRegularFileError, match="symbolic link"):
        reserve(out, "scene", [out / "scene.0.png"])
    assert users.read_text() == "the user's own words"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_lock_file_that_is_a_fifo_or_a_link_to_a_device_is_refused_at_once(tmp_path):
    os.mkfifo(lock_path(tmp_path, "fifo"))
    with pytest.raises(NotRegularFileError, match="FIFO"):
        _with_timeout(lambda: reserve(tmp_path, "fifo"))
    lock_path(tmp_path, "zero").symlink_to("/dev/zero")
    with pytest.raises(NotRegularFileError, match="symbolic link"):
        _with_timeout(lambda: reserve(tmp_path, "zero"))


def test_the_cli_refuses_a_linked_lock_file_in_one_line_and_leaves_the_target_alone(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    photo = _photo(tmp_path)
    users = tmp_path / "precious.txt"
    users.write_text("the user's own words")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".scene.p2p-lock").symlink_to(users)
    code = cli.main(["edit", str(photo), *EDIT_FAST, "--model", str(tiny_model_dir), "--out", "out", "-q"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "symbolic link" in err, err
    assert users.read_text() == "the user's own words"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".scene.p2p-lock"]


def test_a_dangling_link_at_an_output_name_is_found_before_any_work(tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo = _photo(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "scene.1.png").symlink_to(tmp_path / "nowhere.png")
    import p2p_real.editor

    def no_work(*args, **kwargs):
        raise AssertionError("the photo was inverted before the outputs were checked")

    monkeypatch.setattr(p2p_real.editor.Editor, "invert", no_work)
    code = cli.main(["edit", str(photo), *EDIT_FAST, "--model", str(tiny_model_dir), "--out", "out", "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "scene.1.png" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "nowhere.png").exists()


# ---------------------------------------------------------------------------------------------------------------
# 4. A recipe's 'out' (and the folders in it) never leads out of the recipe's folder through a link.


@pytest.mark.parametrize("link", ["results", "results/scene", "results/inversions"])
def test_a_recipes_out_does_not_leave_its_folder_through_a_link(tmp_path, tiny_model_dir, capsys, link):
    import json

    bundle, elsewhere = tmp_path / "bundle", tmp_path / "elsewhere"
    bundle.mkdir()
    elsewhere.mkdir()
    _photo(bundle)
    (bundle / link).parent.mkdir(parents=True, exist_ok=True)
    (bundle / link).symlink_to(elsewhere)
    recipe = bundle / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "model": str(tiny_model_dir),
                "out": "results",
                "photos": [
                    {
                        "photo": "scene.png",
                        "prompt": "a cat on a wall",
                        "steps": 2,
                        "method": "ddim",
                        "edits": [{"target": "a dog on a wall", "name": "e1"}],
                    }
                ],
            }
        )
    )
    code = cli.main(["batch", str(recipe), "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "symbolic link" in err and len(err.strip().splitlines()) == 1, err
    assert list(elsewhere.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# 3 and 11. The page serves only what it wrote for the asking session, frees it, and caps uploads.


def _page_session(page, tmp_path: Path, photo: Path, caption: str):
    """A new client session that inverts `photo` and edits it; returns (client, downloaded files)."""
    from gradio_client import Client, handle_file

    session = Client(page.url, verbose=False, download_files=str(tmp_path / "downloads"))
    session.submit(handle_file(str(photo)), caption, "negative-prompt", 2, api_name="/invert").result(timeout=300)
    target = caption.replace("circle", "square")
    result = session.submit(caption, target, [], [], 0.3, [], 1.0, "auto", 0.8, 0.6, api_name="/edit").result(
        timeout=300
    )
    return session, result[-2]


def test_the_page_serves_no_file_of_the_out_folder_only_copies_in_the_sessions_own_folder(offline_page, tmp_path):
    import urllib.error
    import urllib.request

    from tests.ui_server import scene_photo

    studio = offline_page.studio
    secret = studio.out / "secret.txt"
    secret.write_text("a file of the user's")
    photo, caption = scene_photo(tmp_path / "served.png")
    _, files = _page_session(offline_page, tmp_path, photo, caption)
    assert files and all(studio.out not in Path(f).parents for f in files)
    written = sorted(studio.edits.glob("served-*.json"))
    assert written
    for path in (secret, written[-1], *studio.out.glob("inversions/*.inv.safetensors")):
        url = f"{offline_page.url}gradio_api/file={path}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30).read()
        assert refused.value.code in (403, 404), url
    sessions = [p for p in studio.sessions.root.iterdir() if p.name.startswith("session-")]
    assert any((folder / written[-1].name).is_file() for folder in sessions)  # the copy offered for download


def test_a_page_sessions_state_and_folder_are_freed_and_uploads_are_capped(offline_page):
    from p2p_real.ui.sessions import MAX_UPLOAD_BYTES, SESSION_IDLE_S

    page, studio = offline_page.page, offline_page.studio
    states = [b for b in page.blocks.values() if type(b).__name__ == "State" and b.delete_callback == studio.forget]
    assert len(states) == 1 and states[0].time_to_live == SESSION_IDLE_S  # the workspace: photo, inversion, edit
    assert page.max_file_size == MAX_UPLOAD_BYTES
    from p2p_real.ui.studio import Workspace

    folder = studio.sessions.new()
    (folder / "x.png").write_bytes(b"x")
    ws = Workspace(Path("p.png"), None, None, "fresh", folder=folder)
    for state in states:
        state.delete_callback(ws)  # what Gradio calls when the tab closes or the session idles out
    assert not folder.exists()
    studio.forget(ws)  # twice is harmless; nothing outside the session folders is touched
    assert studio.out.exists() and studio.sessions.root.exists()


def test_a_photo_named_dot_png_is_inverted_and_edited(offline_page, tmp_path):
    from tests.ui_server import scene_photo

    photo, caption = scene_photo(tmp_path / "x.png")
    hidden = tmp_path / "up" / ".png"
    hidden.parent.mkdir()
    photo.rename(hidden)
    studio = offline_page.studio
    ws = studio.invert(hidden, caption, "negative-prompt", 2)
    from p2p_real.ui.choices import EditChoices

    view = studio.edit(ws, EditChoices(caption.replace("circle", "square"), (), (), 0.3, (), 1.0, "auto", 0.8, 0.6))
    from p2p_real.files.outputs import check_name

    assert check_name(ws.name) == "png" and any(p.name == "png-1.json" for p in view.files)
    studio.forget(ws)


# ---------------------------------------------------------------------------------------------------------------
# 2. YAML aliases are bounded; error messages quote at most a short excerpt.


def _alias_bomb(levels: int) -> str:
    """A recipe whose 'out' holds nested anchors: 10**levels values once its aliases are expanded."""
    anchors = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(1, levels):
        anchors.append(f"&a{k} [{', '.join([f'*a{k - 1}'] * 10)}]")
    return f"out: [{', '.join(anchors)}]\nphotos: [{{photo: p.png, prompt: a, edits: [{{target: b}}]}}]\n"


def test_a_yaml_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path):
    import time

    from p2p_real.batches.recipe import RecipeError, load_recipe

    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(9))  # 10**9 values once expanded, from 600 bytes
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="aliases expand to more than") as err:
        _with_timeout(lambda: load_recipe(path))
    assert time.perf_counter() - start < 5 and len(str(err.value)) < 300
    path.write_text("a: &a [1, *a]\nphotos: []\n")
    with pytest.raises(RecipeError, match="recursive"):
        load_recipe(path)
    path.write_text("d: &d {steps: 2}\nphotos: [{photo: p.png, edits: [{target: x}]}]\ndefaults: *d\n")
    with pytest.raises(RecipeError, match="unknown key 'd'"):  # a small alias still reads as YAML does
        load_recipe(path)


def test_a_huge_value_in_a_recipe_is_quoted_as_a_short_excerpt(tmp_path, capsys):
    import json

    path = tmp_path / "big.yaml"
    path.write_text(_alias_bomb(4))  # 10**4 values: allowed, but 'out' is a list
    code = cli.main(["batch", str(path)])
    err = capsys.readouterr().err
    assert code != 0 and "'out' must be a folder name" in err and len(err) < 400, err[:500]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"photos": [{"photo": "x" * 100_000, "prompt": "a", "edits": [{"target": "b"}]}]}))
    code = cli.main(["batch", str(bad)])
    err = capsys.readouterr().err
    assert code != 0 and "not found" in err and len(err) < 400, err[:500]


# ---------------------------------------------------------------------------------------------------------------
# 12. An inversion cache's name stays in its folder.


@pytest.mark.parametrize("name", ["../x", "/tmp/escaped", "a/b", ".hidden", "line\nbreak"])
def test_an_inversion_cache_name_cannot_leave_its_folder(tmp_path, name):
    from inversion.cache import InversionCache
    from inversion.settings import InversionSettings

    cache = InversionCache(tmp_path / "cache", keyed=False)
    with pytest.raises(ValueError, match="plain file name"):
        cache.path("photo.png", InversionSettings("a cat", "ddim", 2, 7.5), None, name)


def test_the_cache_names_a_hidden_photo_plainly(tmp_path):
    from inversion.cache import InversionCache, photo_name
    from inversion.settings import InversionSettings

    assert photo_name(".png") == "png" and photo_name("..") == "photo" and photo_name("a\nb.png") == "a b"
    path = InversionCache(tmp_path, keyed=False).path(tmp_path / ".png", InversionSettings("a", "ddim", 2, 7.5), None)
    assert path.parent == tmp_path and path.name == "png.inv.safetensors"


# ---------------------------------------------------------------------------------------------------------------
# 5 and 9. The feather and the step count are bounded, checked before anything is allocated.


@pytest.mark.parametrize("value", [1e308, 1e5, 0.6, float("nan")])
def test_the_feather_is_bounded_in_the_spec_the_cli_and_the_paste(value, tmp_path, capsys):
    import json

    import torch

    from masks.paste import MAX_FEATHER, MaskError, feathered_mask
    from p2p_real.spec import MAX_FEATHER as SPEC_MAX_FEATHER
    from p2p_real.spec import EditSpec

    assert SPEC_MAX_FEATHER == MAX_FEATHER
    with pytest.raises(ValueError, match="feather"):
        EditSpec(feather=value)
    with pytest.raises(MaskError, match="feather"):
        feathered_mask(torch.ones(1, 1, 4, 4), (8, 8), feather=value)
    photo = _photo(tmp_path)
    code = cli.main(
        [
            "edit",
            str(photo),
            "-p",
            "a",
            "-t",
            "b",
            "--spec",
            json.dumps({"feather": value}),
            "--model",
            str(tmp_path / "no-model"),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "feather" in err and len(err.strip().splitlines()) == 1, err


def test_a_huge_step_count_is_refused_before_the_model_loads_or_anything_is_allocated(tiny_pipe, capsys, monkeypatch):
    import p2p_real
    from inversion.validation import MAX_STEPS
    from p2p_real.commands import session

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before --steps was checked")

    monkeypatch.setattr(session, "open_session", no_model)
    for argv in (
        ["generate", "a cat", "--steps", "100000000"],
        ["generate", "a cat", "--steps", "5000"],
        ["edit", "x.png", "-p", "a", "-t", "b", "--steps", "5000"],
        ["demo", "--steps", "1001"],
    ):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code != 0 and f"at most {MAX_STEPS}" in err and len(err.strip().splitlines()) == 1, (argv, err)
    editor = p2p_real.Editor(tiny_pipe)
    with pytest.raises(ValueError, match="num_inference_steps must be at most"):
        editor.generate(["a cat", "a dog"], num_inference_steps=100_000_000, progress=False)
    with pytest.raises(ValueError, match="num_inference_steps must be at most"):
        p2p_real.Editor(tiny_pipe, num_inference_steps=10**9)


# ---------------------------------------------------------------------------------------------------------------
# 10. No abbreviations; `invert --out DIR` is a folder, as for every other command.


def test_invert_out_is_a_folder_and_no_option_is_abbreviated(tmp_path, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    photo = _photo(tmp_path)
    code = cli.main(cli_args("invert", photo, *quick(tiny_model_dir), "--out", "dir", "--no-report", "-q"))
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "dir").is_dir() and (tmp_path / "dir" / "scene.inv.safetensors").is_file()
    code = cli.main(["invert", str(photo), "-p", "a", "--out", "d", "--output", "x.inv.safetensors"])
    assert code != 0 and "not both" in capsys.readouterr().err
    for argv in (
        ["edit", str(photo), "-p", "a", "-t", "b", "--overw"],
        ["invert", str(photo), "-p", "a", "--outp", "x"],
        ["generate", "a", "--ste", "2"],
    ):
        code = cli.main(argv)
        assert code == 2 and "unrecognized arguments" in capsys.readouterr().err, argv


# ---------------------------------------------------------------------------------------------------------------
# 6. The working-size limit holds for sizes read from files: a model's configuration, an inversion's latents.


def test_a_model_configured_beyond_the_working_size_limit_is_refused_before_any_work(tiny_model_dir, tmp_path):
    import json
    import shutil

    import p2p_real
    from inversion.validation import MAX_WORKING_SIDE

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "unet" / "config.json").read_text())
    config["sample_size"] = 100_000
    (model / "unet" / "config.json").write_text(json.dumps(config))
    pipe = p2p_real.load_pipeline(str(model), device="cpu")
    with pytest.raises(ValueError, match=f"sample_size 100000.*over the limit of {MAX_WORKING_SIDE}"):
        p2p_real.Editor(pipe)


def test_an_inversion_whose_latents_exceed_the_working_size_limit_is_refused(tiny_pipe, tmp_path):
    import dataclasses

    import torch

    import p2p_real
    from inversion.artifact import ArtifactError

    inv = p2p_real.Editor(tiny_pipe).invert(
        _photo(tmp_path), "a cat", method="ddim", num_inference_steps=2, progress=False
    )
    factor = inv.vae_scale_factor
    rows = 2048 // factor + 1  # one latent row beyond 2048 pixels
    big = torch.zeros(1, inv.latent_T.shape[1], rows, 1)
    with pytest.raises(ArtifactError, match="over the limit of 2048"):
        dataclasses.replace(inv, latent_T=big, z0=big, size=(factor, rows * factor))


# ---------------------------------------------------------------------------------------------------------------
# 7 and 8. Outputs stay readable and colour-correct: no ICC profile over 1 MB, no CMYK profile in RGB outputs.


def _fake_icc(space: bytes, size: int) -> bytes:
    """Bytes shaped like an ICC profile for `space` (header: size, then the data colour space at 16-20)."""
    import random

    body = random.Random(0).randbytes(size - 128)  # incompressible, like a big LUT
    return size.to_bytes(4, "big") + b"none" + b"\x04\x30\x00\x00" + b"mntr" + space + b"XYZ " + bytes(100) + body


def _edit_and_save(pipe, photo: Path, out: Path) -> tuple[object, list[Path]]:
    import p2p_real
    from inversion import Inversion

    out.mkdir(exist_ok=True)
    editor = p2p_real.Editor(pipe)
    inv = editor.invert(photo, "a cat on a wall", method="ddim", num_inference_steps=2, progress=False)
    inv.save(out / "photo.inv.safetensors")
    loaded = Inversion.load(out / "photo.inv.safetensors")  # the inversion must reload
    result = editor.edit(loaded, "a dog on a wall", progress=False)
    return loaded, result.save(out, "photo")


def test_a_photo_with_an_icc_profile_over_1_mb_gives_readable_outputs_and_a_reloadable_inversion(tiny_pipe, tmp_path):
    photo = tmp_path / "big-profile.jpg"
    Image.new("RGB", (48, 40), (90, 140, 200)).save(photo, icc_profile=_fake_icc(b"RGB ", 1_500_000))
    from inversion.photos.metadata import photo_info

    inv, written = _edit_and_save(tiny_pipe, photo, tmp_path)
    assert inv.info is None or inv.info.icc_profile is None
    for path in written:
        if path.suffix == ".png":
            with Image.open(path) as img:
                img.load()  # Pillow refuses iCCP chunks over 1 MB: the output must stay readable
                assert "icc_profile" not in img.info
    with Image.open(photo) as img:
        assert "over 1,048,576 bytes" in photo_info(img).note and photo_info(img).icc_profile is None


def test_a_cmyk_photos_profile_is_not_embedded_in_the_rgb_outputs(tiny_pipe, tmp_path):
    photo = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (48, 40), (40, 10, 0, 20)).save(photo, icc_profile=_fake_icc(b"CMYK", 4000))
    rgb = tmp_path / "rgb.jpg"
    Image.new("RGB", (48, 40), (90, 140, 200)).save(rgb, icc_profile=_fake_icc(b"RGB ", 4000))
    _, written = _edit_and_save(tiny_pipe, photo, tmp_path / "a")
    for path in written:
        if path.suffix == ".png" and ".mask" not in path.name:
            with Image.open(path) as img:
                assert img.mode == "RGB" and (img.info.get("icc_profile") or b"")[16:20] != b"CMYK", path.name
    _, written = _edit_and_save(tiny_pipe, rgb, tmp_path / "b")  # an RGB profile is still carried
    with Image.open(next(p for p in written if p.name == "photo.1.png")) as img:
        assert img.info.get("icc_profile", b"")[16:20] == b"RGB "


def test_an_unreadable_upload_is_a_message_naming_the_problem(offline_page, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a picture")
    session = Client(offline_page.url, verbose=False, download_files=str(tmp_path / "downloads"))
    with pytest.raises(AppError) as err:
        session.submit(handle_file(str(bad)), "a cat", "negative-prompt", 2, api_name="/invert").result(timeout=300)
    assert str(err.value) not in ("", "None") and "image" in str(err.value).lower(), repr(err.value)


# ---------------------------------------------------------------------------------------------------------------
# 13. The smaller items.


class _Payload:
    """Stands for what a hostile pickle would carry: an object that is not a tensor."""


@pytest.mark.parametrize(("name", "expected"), [("x" * 250, "is too long"), ("a\nb", "line breaks")])
def test_a_long_or_multiline_name_is_refused_naming_the_name(name, expected, capsys):
    code = cli.main(["generate", "a cat", "--name", name])
    err = capsys.readouterr().err
    assert code != 0 and "--name" in err and expected in err and len(err.strip().splitlines()) == 1, err


def test_a_port_beyond_65535_is_a_usage_error_before_the_model_loads(capsys):
    code = cli.main(["ui", "--port", "70000"])
    assert code == 2 and "70000 is not a port" in capsys.readouterr().err


def test_numpy_and_torch_scalars_are_accepted_as_settings(tiny_pipe):
    import numpy as np
    import torch

    import p2p_real
    from p2p_real.spec import EditSpec

    spec = EditSpec(
        cross_replace_steps=np.float32(0.5),
        self_replace_steps=torch.tensor(0.25),
        blend_threshold=np.float64(0.3),
        blend_pool=np.int64(1),
        feather=torch.tensor(0.02),
    )
    assert spec.cross_replace_steps == 0.5 and spec.self_replace_steps == 0.25 and spec.feather == pytest.approx(0.02)
    res = p2p_real.Editor(tiny_pipe).generate(
        ["a cat", "a dog"],
        num_inference_steps=np.int64(2),
        guidance_scale=np.float32(7.5),
        generator=0,
        progress=False,
        output_type="latent",
    )
    assert res.images is not None
    with pytest.raises(ValueError, match="whole number"):
        EditSpec(blend_pool=np.float32(1.5))


def test_duplicate_blend_words_are_kept_once():
    from p2p_real.spec import EditSpec

    spec = EditSpec(blend_words=(["cat"] * 100_000, ["dog", "dog"]))
    assert spec.blend_words == (("cat",), ("dog",))


def test_a_lora_scale_is_bounded_and_a_pickled_lora_error_gives_no_unsafe_advice(tmp_path, capsys):
    import torch

    from p2p_real.models.adapters import LoraFile, _read_weights, parse_lora
    from p2p_real.models.loading import torch_loads_pickles_safely

    with pytest.raises(ValueError, match="scale must be <= 10"):
        parse_lora("style.safetensors:1e30")
    with pytest.raises(ValueError, match="scale must be a finite number"):
        LoraFile(Path("style.safetensors"), float("inf"))
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"x")
    code = cli.main(["generate", "a cat", "--lora", f"{lora}:1e30"])
    assert code == 2 and "scale" in capsys.readouterr().err
    if not torch_loads_pickles_safely():
        pytest.skip("pickles are refused outright on this torch")
    pickled = tmp_path / "lora.bin"
    torch.save({"w": _Payload()}, pickled)
    with pytest.raises(ValueError) as err:
        _read_weights(pickled, "LoRA")
    assert "weights_only=False" not in str(err.value) and "safetensors" in str(err.value)


def test_a_linked_photo_names_the_outputs_after_the_link(tmp_path, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = _photo(tmp_path)
    (tmp_path / "holiday.png").symlink_to(target)
    code = cli.main(cli_args("invert", "holiday.png", *quick(tiny_model_dir), "--no-report", "-q"))
    assert code == 0, capsys.readouterr().err
    assert [p.name for p in (tmp_path / "p2p-out").iterdir()] == ["holiday.inv.safetensors"]


def test_library_log_lines_reach_the_terminal_as_one_line():
    import logging

    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    from p2p_real.commands import session

    session.setup_libraries(debug=False, quiet=True)
    handlers = [
        *diffusers_logging.get_logger("diffusers").handlers,
        *transformers_logging.get_logger("transformers").handlers,
        logging.lastResort,
    ]
    assert len(handlers) >= 3
    for handler in handlers:  # what each handler that writes to the terminal would print
        record = logging.LogRecord(
            "diffusers.x", logging.ERROR, __file__, 1, "first line\n%s\n\nthird", ("second line",), None
        )
        assert handler.filter(record)
        assert handler.format(record).splitlines() == [handler.format(record)], handler
        assert "first line second line third" in handler.format(record)


def test_wrong_argument_types_are_value_errors_naming_the_argument(tiny_pipe, tmp_path):
    import p2p_real

    editor = p2p_real.Editor(tiny_pipe)
    inv = editor.invert(_photo(tmp_path), "a cat", method="ddim", num_inference_steps=2, progress=False)
    with pytest.raises(ValueError, match="targets must be a prompt or a non-empty list"):
        editor.edit(inv, 5, progress=False)
    with pytest.raises(ValueError, match="spec must be an EditSpec"):
        editor.edit(inv, "a dog", spec="x", progress=False)
    with pytest.raises(ValueError, match="spec must be an EditSpec"):
        editor.generate(["a cat"], spec={"edit": "refine"}, num_inference_steps=2, progress=False)
    with pytest.raises(ValueError, match="path must be a file name"):
        inv.save(5)
    result = editor.edit(inv, "a dog", progress=False)
    with pytest.raises(ValueError, match="name must be a file name"):
        result.save(tmp_path / "o", 5)
    for call in (
        lambda: editor.edit(inv, "a dog", callback_on_step_end="print", progress=False),
        lambda: editor.generate(["a cat"], callback_on_step_end=3, num_inference_steps=2, progress=False),
        lambda: editor.invert(
            _photo(tmp_path), "a cat", method="ddim", num_inference_steps=2, callback_on_step_end=[], progress=False
        ),
    ):
        with pytest.raises(ValueError, match="callback_on_step_end must be a function"):
            call()


def test_an_inversion_of_another_vae_factor_is_refused_naming_the_factor(tiny_pipe, tmp_path):
    import dataclasses

    import p2p_real
    from inversion.artifact import ArtifactError

    editor = p2p_real.Editor(tiny_pipe)
    inv = editor.invert(_photo(tmp_path), "a cat", method="ddim", num_inference_steps=2, progress=False)
    other = dataclasses.replace(inv, vae_scale_factor=inv.vae_scale_factor * 2, size=(inv.size[0] * 2, inv.size[1] * 2))
    with pytest.raises(ArtifactError, match="VAE of factor"):
        editor.reconstruct(other, progress=False)
