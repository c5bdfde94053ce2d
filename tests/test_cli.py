"""The `p2p-real` command (docs/design.md §9), run as users run it: the installed console script in a
subprocess, offline, against the tiny model saved to a folder. Independent commands run concurrently to keep
the suite fast."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cli
from p2p_real.defaults import DEFAULT_MODEL
from tests.helpers import (
    BIN,
    CAT,
    DOG,
    SCRIPT,
    TIMEOUT,
    cli_args,
    cli_env,
    draw_mask,
    draw_photo,
    ok,
    png_parameters,
    run_cli,
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_model_dir):
    """A workspace: photos, a mask, the model folder and an empty HF cache."""
    root = tmp_path_factory.mktemp("cli")
    draw_photo(root / "photo.png")
    draw_photo(root / "photo2.png", sun=(200, 60, 60))
    draw_mask(root / "mask.png")
    (root / "home").mkdir()
    return {"root": root, "model": str(tiny_model_dir), "home": root / "home"}


@pytest.fixture(scope="module")
def runs(ws):
    """Every command once through the console script. Independent chains run concurrently; within a chain a
    command consumes the previous one's output (the edit reproduced from its sidecar, the inversion
    reconstructed)."""
    root, model, home = ws["root"], ws["model"], ws["home"]
    common = ["--steps", "3", "--model", model]
    options = ["--blend", "cat:dog,cat", "--reweight", "red=2", "--method", "ddim", *common, "--out", "out/edit"]
    edit = cli_args("edit", "photo.png", *options, targets=[DOG, "a cat on a red wall"])
    invert = cli_args(
        "invert", "photo.png", "--method", "negative-prompt", *common, "-o", "out/inv/photo.inv.safetensors", "-q"
    )
    generating = [*common, "--out", "out/gen", "-q"]

    def edit_then_reproduce() -> dict:
        first = run_cli(edit, root, home)
        if first.returncode != 0:
            return {"edit": first}
        argv = json.loads((root / "out/edit/photo.json").read_text())["argv"]
        # the sidecar names a model outside the working folder by its name only: say where it is
        assert argv[argv.index("--model") + 1] == Path(model).name
        return {
            "edit": first,
            "reproduce": run_cli([*argv, "--model", model, "--out", "out/edit-again", "-q"], root, home),
        }

    def invert_then_reconstruct() -> dict:
        first = run_cli(invert, root, home)
        second = ["reconstruct", "out/inv/photo.inv.safetensors", "--model", model, "--out", "out/rec", "-q"]
        return {"invert": first, "reconstruct": run_cli(second, root, home)}

    def single(name: str, args: list[str]) -> Callable[[], dict]:
        return lambda: {name: run_cli(args, root, home)}

    chains = [
        edit_then_reproduce,
        invert_then_reconstruct,
        single("generate", ["generate", CAT, DOG, "--blend", "cat:dog", "--size", "64x48", "--seed", "7", *generating]),
        single("attention", cli_args("attention", "photo.png", *common, "--out", "out/att", "-q", targets=[DOG])),
        single("env", ["env", "--json"]),
    ]
    with ThreadPoolExecutor(max_workers=len(chains)) as pool:
        results: dict = {}
        for future in [pool.submit(chain) for chain in chains]:
            results.update(future.result())
    return results


# --- help, version, defaults -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_help_answers_without_importing_torch():
    heavy = ("torch", "diffusers", "transformers", "numpy", "PIL", "p2p_real.editor", "inversion.artifact")
    code = (
        "import sys, cli\n"
        "for argv in (['--help'], *([c, '--help'] for c in cli.COMMANDS)):\n"
        "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        assert e.code == 0, argv\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert time.perf_counter() - start < 5
    result = subprocess.run([*SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("edit", "invert", "reconstruct", "attention", "generate", "batch", "env"):
        assert command in result.stdout


@pytest.mark.slow
def test_version_and_default_model_match_the_library():
    import p2p_real

    edit_help = subprocess.run([*SCRIPT, "edit", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert p2p_real.DEFAULT_MODEL in "".join(edit_help.split())  # the library's constant (argparse wraps it)
    result = subprocess.run([*SCRIPT, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"p2p-real {p2p_real.__version__}"


def test_the_toy_model_opens_with_its_own_attention_resolution():
    """`--model toy` (and the demo) edit with the toy model's finer attention maps; other models keep the default."""
    import argparse

    from p2p_real.commands import session
    from p2p_real.defaults import DEFAULT_ATTENTION_RES
    from p2p_real.toyworld.model import ATTENTION_RES

    args = argparse.Namespace(model="toy", device="cpu", dtype="auto", debug=True, quiet=True)
    assert session.open_session(args).editor.attention_res == ATTENTION_RES != DEFAULT_ATTENTION_RES
    assert session.toy_editor_options("/models/sd15") == {}


# --- option syntax -----------------------------------------------------------------------------------------------


def test_blend_syntax_gives_source_and_target_words_per_row():
    from p2p_real.notation import pair_rows, parse_pair

    assert parse_pair("cat:dog") == ("cat", ("dog",))
    assert parse_pair("cat") == ("cat", ("cat",))
    assert parse_pair("red car:blue truck") == ("red car", ("blue truck",))
    rows = pair_rows([parse_pair("cat:dog,lion"), parse_pair("hat:")], 2, "--blend")
    assert rows == [["cat", "hat"], ["dog"], ["lion"]]


def test_windows_and_reweights_map_to_the_spec():
    from p2p_real.commands.options import spec_from_args, spec_json

    argv = [
        "generate",
        "a",
        "b",
        "c",
        "--cross-replace",
        "0.1:0.7",
        "--cross-replace",
        "dog=0.4",
        "--reweight",
        "fluffy=2",
        "--reweight",
        "big=1.5,0.5",
    ]
    spec = spec_from_args(cli.build_parser().parse_args(argv), 2, synthetic=True)
    assert spec.cross_replace_steps == {"default_": (0.1, 0.7), "dog": 0.4}
    assert spec.equalizer == {"fluffy": 2.0, "big": (1.5, 0.5)}
    assert spec.blend_words is None and spec.self_replace_steps == 0.4  # the defaults of generated images
    parsed = cli.build_parser().parse_args(["generate", "a", "b", "c", "--spec", spec_json(spec)])
    assert spec_from_args(parsed, 2, synthetic=True) == spec  # --spec JSON gives the settings back exactly


# --- the commands ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_edit_writes_edits_at_photo_resolution_masks_grid_and_parameters(runs, ws):
    ok(runs["edit"])
    out = ws["root"] / "out/edit"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "photo.0.png",
        "photo.1.mask.png",
        "photo.1.png",
        "photo.2.mask.png",
        "photo.2.png",
        "photo.grid.png",
        "photo.inv.safetensors",
        "photo.json",
    ]
    for k in range(3):
        assert Image.open(out / f"photo.{k}.png").size == (56, 40)
    assert Image.open(out / "photo.1.mask.png").size == (56, 40)
    sidecar = json.loads((out / "photo.json").read_text())
    assert sidecar["parameters"]["targets"] == ["a dog on a wall", "a cat on a red wall"]
    assert sidecar["parameters"]["spec"]["blend_words"] == [["cat"], ["dog"], ["cat"]]
    assert sidecar["parameters"]["spec"]["equalizer"] == {"red": 2.0}
    assert sidecar["parameters"]["photo"] == "photo.png" and "/" not in json.dumps(sidecar["parameters"]["photo"])
    assert png_parameters(out / "photo.1.png") == sidecar["parameters"]
    with Image.open(out / "photo.2.png") as img:
        assert img.text["prompt"] == "a cat on a red wall" and img.text["source_prompt"] == "a cat on a wall"
    assert sidecar["outputs"]["images"] == ["photo.0.png", "photo.1.png", "photo.2.png"]
    assert "wrote out/edit/photo.json" in runs["edit"].stdout
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_the_sidecar_reproduces_byte_identical_images(runs, ws):
    ok(runs["edit"])
    ok(runs["reproduce"])  # the sidecar's argv, run again into another folder
    first, again = ws["root"] / "out/edit", ws["root"] / "out/edit-again"
    for name in ("photo.0.png", "photo.1.png", "photo.2.png", "photo.1.mask.png", "photo.2.mask.png", "photo.grid.png"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    from inversion.artifact import Inversion

    a, b = Inversion.load(first / "photo.inv.safetensors"), Inversion.load(again / "photo.inv.safetensors")
    assert a.latent_T.equal(b.latent_T) and a.z0.equal(b.z0)


@pytest.mark.slow
def test_the_python_api_writes_what_the_edit_command_writes(runs, ws, tmp_path):
    """What `p2p-real edit` does (the runs fixture: check the words, invert or reuse, edit, save) in a few
    public calls: the same files, byte for byte; the sidecars differ only by what the command adds."""
    ok(runs["edit"])
    import p2p_real
    from inversion import InversionCache

    targets = ["a dog on a wall", "a cat on a red wall"]
    editor = p2p_real.Editor(p2p_real.load_pipeline(ws["model"]))
    spec = p2p_real.EditSpec(blend_words=[["cat"], ["dog"], ["cat"]], equalizer={"red": 2.0})
    editor.check(["a cat on a wall", *targets], spec, num_inference_steps=3)
    inv = editor.invert(
        ws["root"] / "photo.png",
        "a cat on a wall",
        method="ddim",
        num_inference_steps=3,
        cache=InversionCache(tmp_path, keyed=False),
    )
    editor.edit(inv, targets, spec=spec).save(tmp_path, "photo")

    command = ws["root"] / "out/edit"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in command.iterdir())
    for path in command.glob("*.png"):
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name
    # safetensors orders a file's metadata differently in each process: compare the inversions' content
    (cli_meta, cli_tensors), (api_meta, api_tensors) = (
        read_safetensors(folder / "photo.inv.safetensors") for folder in (command, tmp_path)
    )
    assert cli_meta == api_meta and cli_tensors.keys() == api_tensors.keys()
    assert all(torch.equal(cli_tensors[k], api_tensors[k]) for k in cli_tensors)
    cli_sidecar = json.loads((command / "photo.json").read_text())
    for key in ("argv", "reproduce", "runtime"):  # the command line's own additions
        del cli_sidecar[key]
    assert cli_sidecar == json.loads((tmp_path / "photo.json").read_text())


def read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        return dict(handle.metadata()), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


@pytest.mark.slow
def test_invert_saves_the_artifact_and_prints_the_reconstruction_report(runs, ws):
    ok(runs["invert"])
    from inversion.artifact import Inversion

    inv = Inversion.load(ws["root"] / "out/inv/photo.inv.safetensors")
    assert inv.prompt == "a cat on a wall" and inv.method == "negative-prompt" and inv.num_inference_steps == 3
    assert "PSNR" in runs["invert"].stdout and "VAE ceiling" in runs["invert"].stdout
    assert "\nverdict         " in runs["invert"].stdout  # good / fair / poor, in plain words
    assert runs["invert"].stderr == ""  # --quiet: no bars, no status lines


@pytest.mark.slow
def test_reconstruct_of_a_saved_inversion_writes_report_and_side_by_side(runs, ws):
    ok(runs["reconstruct"])
    out = ws["root"] / "out/rec"
    assert sorted(p.name for p in out.iterdir()) == ["photo.recon.grid.png", "photo.recon.json", "photo.recon.png"]
    report = json.loads((out / "photo.recon.json").read_text())
    assert set(report["metrics"]) == {"psnr", "ssim", "latent_error", "vae_psnr", "vae_ssim", "verdict"}
    assert f"verdict         {report['metrics']['verdict']}: " in runs["reconstruct"].stdout
    assert f"PSNR            {report['metrics']['psnr']:.2f} dB" in runs["reconstruct"].stdout
    grid = Image.open(out / "photo.recon.grid.png")
    assert grid.width > 3 * grid.height // 2  # three images side by side


@pytest.mark.slow
def test_attention_writes_per_word_heat_maps(runs, ws):
    ok(runs["attention"])
    out = ws["root"] / "out/att"
    meta = json.loads((out / "photo.attention.json").read_text())
    assert meta["words"] == [["a", "cat", "on", "a", "wall"], ["a", "dog", "on", "a", "wall"]]
    maps = np.load(out / "photo.attention.npz")
    assert "row0_01_cat" in maps and "row1_01_dog" in maps and maps["row0_01_cat"].ndim == 2
    assert meta["parameters"]["method"] == "direct"  # the default for a photo
    grid = Image.open(out / "photo.attention.png")
    assert grid.width > 2 * grid.height  # rows of six cells: the image and one map per word


@pytest.mark.slow
def test_generate_writes_source_edit_mask_and_grid_from_a_seed(runs, ws):
    ok(runs["generate"])
    out = ws["root"] / "out/gen"
    assert sorted(p.name for p in out.iterdir()) == [
        "a-cat-on-a-wall.0.png",
        "a-cat-on-a-wall.1.mask.png",
        "a-cat-on-a-wall.1.png",
        "a-cat-on-a-wall.grid.png",
        "a-cat-on-a-wall.json",
    ]
    assert Image.open(out / "a-cat-on-a-wall.1.png").size == (64, 48)
    assert png_parameters(out / "a-cat-on-a-wall.0.png")["seed"] == 7


def test_generate_is_deterministic_in_process(ws, tmp_path, capsys):
    argv = [
        "generate",
        "a cat on a wall",
        "a dog on a wall",
        "--steps",
        "2",
        "--size",
        "32x32",
        "--model",
        ws["model"],
        "-q",
    ]
    assert cli.main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "b")]) == 0
    for k in (0, 1):
        name = f"a-cat-on-a-wall.{k}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.slow
def test_env_reports_versions_device_and_cache(runs, ws):
    report = json.loads(ok(runs["env"]).stdout)
    assert report["device (auto)"] == "cpu" and report["dtype (auto)"] == "float32"
    assert report["model cache"].startswith(str(ws["home"]))
    assert report["default model"] == DEFAULT_MODEL and report["default model cached"] == "no"
    assert report["offline"] == "yes" and report["torch"] != "not installed"


@pytest.mark.slow
def test_env_picks_the_device_and_dtype_load_pipeline_picks(runs):
    from p2p_real.models.loading import resolve_device, resolve_dtype

    report = json.loads(ok(runs["env"]).stdout)
    device = resolve_device("auto")
    dtype = str(resolve_dtype("auto", device)).removeprefix("torch.")
    assert (report["device (auto)"], report["dtype (auto)"]) == (device.type, dtype)


@pytest.mark.slow
def test_edit_of_a_saved_inversion_with_a_user_mask_in_process(runs, ws, capsys):
    ok(runs["invert"])
    root = ws["root"]
    argv = [
        "edit",
        str(root / "photo.png"),
        "--inversion",
        str(root / "out/inv/photo.inv.safetensors"),
        "-t",
        "a dog on a wall",
        "--blend",
        "cat:dog",
        "--mask",
        str(root / "mask.png"),
        "--mask-mode",
        "intersect",
        "--model",
        ws["model"],
        "--out",
        str(root / "out/mask"),
        "-q",
    ]
    assert cli.main(argv) == 0
    out = root / "out/mask"
    assert not (out / "photo.inv.safetensors").exists()  # the inversion was reused, not written again
    mask = np.asarray(Image.open(out / "photo.1.mask.png"))
    assert mask.shape == (40, 56) and mask[:, :8].max() == 0  # intersected with the user's rectangle
    edit, photo = np.asarray(Image.open(out / "photo.1.png")), np.asarray(Image.open(root / "photo.png"))
    assert (edit[:, :8] == photo[:, :8]).all()  # outside the mask the pixels are the photo's own
    sidecar = json.loads((out / "photo.json").read_text())
    assert sidecar["parameters"]["inversion"] == "photo.inv.safetensors"
    assert sidecar["parameters"]["spec"]["mask_mode"] == "intersect"
    assert cli.main(argv) == 1  # the outputs exist now
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0


@pytest.mark.slow
def test_edit_reuses_the_inversion_invert_left_in_the_folder(runs, ws, capsys):
    ok(runs["invert"])
    root = ws["root"]
    out = root / "out/reuse"
    out.mkdir()
    saved = out / "photo.inv.safetensors"
    saved.write_bytes((root / "out/inv/photo.inv.safetensors").read_bytes())
    stamp = saved.stat().st_mtime_ns
    argv = [
        "edit",
        str(root / "photo.png"),
        "-p",
        "a cat on a wall",
        "-t",
        "a dog on a wall",
        "--method",
        "negative-prompt",
        "--model",
        ws["model"],
        "--out",
        str(out),
    ]
    assert cli.main([*argv, "--steps", "3"]) == 0
    assert f"reused {saved}" in capsys.readouterr().out
    assert saved.stat().st_mtime_ns == stamp and (out / "photo.1.png").exists()
    for path in out.iterdir():
        if path != saved:
            path.unlink()
    assert cli.main([*argv, "--steps", "2"]) == 1  # made with 3 steps: not reused, not replaced
    assert "exists but does not fit" in capsys.readouterr().err
    assert sorted(out.iterdir()) == [saved]
    assert cli.main([*argv, "--steps", "2", "--overwrite"]) == 0
    assert saved.stat().st_mtime_ns != stamp


# --- batch -------------------------------------------------------------------------------------------------------


def write_recipe(root: Path, model: str) -> Path:
    recipe = {
        "model": model,
        "out": "batch-out",
        "defaults": {"method": "ddim", "steps": 4},
        "photos": [
            {
                "photo": "photo.png",
                "prompt": "a cat on a wall",
                "name": "first",
                "edits": [{"target": "a dog on a wall", "blend": "cat:dog"}],
            },
            {
                "photo": "photo2.png",
                "prompt": "a cat on a wall",
                "name": "second",
                "edits": [{"target": "a cat on a green wall", "reweight": {"green": 2}, "name": "green"}],
            },
        ],
        "edits": [{"target": "{prompt} in the sky", "cross_replace": {"default_": 0.6, "sky": [0.0, 0.4]}}],
    }
    path = root / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_prefix() -> list[str]:
    """`accelerate launch` on two processes (on CPU-only machines --multi_gpu is the multi-process launcher)."""
    launcher = BIN / "accelerate"
    # accelerate is in the test extra: without it the two-process half of the batch test would not run
    assert launcher.exists() and (BIN / "p2p-real").exists(), "pip install -e '.[test]' (accelerate, p2p-real)"
    return [
        str(launcher),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(BIN / "p2p-real"),
    ]


@pytest.mark.slow
def test_batch_resumes_after_an_interruption_and_splits_across_processes(ws):
    root = ws["root"]
    recipe = write_recipe(root, ws["model"])
    out = root / "batch-out"
    sidecars = [
        out / "first/01-a-dog-on-a-wall.json",
        out / "first/02-a-cat-on-a-wall-in-the-sky.json",
        out / "second/green.json",
        out / "second/02-a-cat-on-a-wall-in-the-sky.json",
    ]
    proc = subprocess.Popen(
        [*SCRIPT, "batch", str(recipe), "-q"],
        cwd=root,
        env=cli_env(ws["home"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT
    while not any(p.exists() for p in sidecars) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    done_first = [p for p in sidecars if p.exists()]
    assert done_first, stderr
    if proc.returncode != 0:  # interrupted mid-way, as intended
        assert proc.returncode == 130 and "interrupted" in stderr and len(stderr.strip().splitlines()) == 1
    assert not list(out.rglob(".*.tmp"))  # no partial files
    # finished files only: an interrupted output set may leave its lock file, which the next run takes over
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and not p.name.endswith(".p2p-lock")}

    prefix = accelerate_prefix()
    resumed = ok(run_cli(["batch", str(recipe), "-q"], root, ws["home"], prefix))
    assert all(p.exists() for p in sidecars)
    for path, stamp in stamps.items():  # finished work is not redone, cached inversions are reused
        assert path.stat().st_mtime_ns == stamp, path
    summary = resumed.stdout
    assert f"{4 - len(done_first)} done, {len(done_first)} skipped" in summary
    rows = [line.split()[:3] for line in summary.splitlines()]
    for p in sidecars:  # every job once in the table
        status = "skipped" if p in done_first else "done"
        assert rows.count([p.parent.name, p.stem, status]) == 1, summary
    processes = {json.loads(p.read_text())["process"] for p in sidecars if p not in done_first}
    remaining_photos = {p.parent.name for p in sidecars if p not in done_first}
    if len(remaining_photos) == 2:
        assert processes == {0, 1}  # both processes worked, each output written by one of them
    assert len(list(out.glob("inversions/*.inv.safetensors"))) == 2

    again = ok(run_cli(["batch", str(recipe)], root, ws["home"], [sys.executable, "-X", "importtime", "-m", "cli"]))
    assert "0 done, 4 skipped" in again.stdout
    assert "torch" not in {line.split("|")[-1].strip() for line in again.stderr.splitlines()}  # nothing loaded


def test_batch_yaml_recipe_with_shared_edits_dry_run(ws, tmp_path, capsys):
    (tmp_path / "photo.png").write_bytes((ws["root"] / "photo.png").read_bytes())
    (tmp_path / "recipe.yaml").write_text(
        "out: results\n"
        "photos:\n"
        "  - photo: photo.png\n"
        "    prompt: a cat on a wall\n"
        "    edits:\n"
        "      - {target: a dog on a wall, blend: {cat: dog}, cross_replace: [0.1, 0.8]}\n"
        "edits:\n"
        "  - target: '{prompt} in the sky'\n"
        "    name: sky\n"
    )
    assert cli.main(["batch", str(tmp_path / "recipe.yaml"), "--dry-run", "--model", ws["model"]]) == 0
    table = capsys.readouterr().out
    assert "photo  01-a-dog-on-a-wall  to do" in table and "photo  sky" in table
    assert not (tmp_path / "results").exists()
