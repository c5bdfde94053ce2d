"""Bad inputs to `p2p-real`: each gives ONE line on stderr, a non-zero exit status and no file.

One table. Cases that fail while parsing or checking files never import torch, so they all run through the
real console script; of those that need the model, a few run through the script too (in parallel) and the rest
call cli.main in this process, which already has torch loaded.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

import cli
from tests.helpers import run_cli

EDIT = ["edit", "{photo}", "-p", "a cat on a wall", "-t", "a dog on a wall"]
FAST = ["--steps", "2", "--method", "ddim", "--model", "{model}"]

# (name, argv, expected part of the message, how: "script" = console script, "main" = in-process, files to
# create in the case's folder first)
CASES: list[tuple[str, list[str], str, str, tuple[str, ...]]] = [
    ("no command", [], "required: COMMAND", "script", ()),
    ("unknown command", ["frobnicate"], "invalid choice", "script", ()),
    ("unknown option", [*EDIT, "--frobnicate"], "unrecognized arguments", "script", ()),
    ("edit without target", ["edit", "{photo}", "-p", "a cat"], "--target", "script", ()),
    ("edit without input", ["edit", "-t", "a dog"], "give a PHOTO", "script", ()),
    ("edit without prompt", ["edit", "{photo}", "-t", "a dog"], "--prompt is required", "script", ()),
    ("missing photo", ["edit", "nope.png", "-p", "a", "-t", "b"], "'nope.png' not found", "script", ()),
    ("photo is a folder", ["edit", "{inputs}", "-p", "a", "-t", "b"], "is not a file", "script", ()),
    ("steps zero", [*EDIT, "--steps", "0"], "argument --steps: must be at least 1", "script", ()),
    ("steps not a number", [*EDIT, "--steps", "ten"], "'ten' is not a whole number", "script", ()),
    ("guidance nan", [*EDIT, "--guidance", "nan"], "'nan' is not a finite number", "script", ()),
    ("guidance negative", [*EDIT, "--guidance", "-1"], "must be >= 0", "script", ()),
    ("cross-replace above 1", [*EDIT, "--cross-replace", "1.5"], "fraction in [0, 1]", "script", ()),
    ("cross-replace reversed", [*EDIT, "--cross-replace", "0.9:0.2"], "START <= END", "script", ()),
    ("self-replace not a number", [*EDIT, "--self-replace", "lots"], "'lots' is not a number", "script", ()),
    ("blend with two colons", [*EDIT, "--blend", "a:b:c"], "one colon", "script", ()),
    ("blend without words", [*EDIT, "--blend", ":"], "names no word", "script", ()),
    ("blend words per target", [*EDIT, "--blend", "cat:dog,lion,tiger"], "3 target words for 1", "script", ()),
    ("reweight without factor", [*EDIT, "--reweight", "fluffy"], "use WORD=FACTOR", "script", ()),
    ("reweight not a number", [*EDIT, "--reweight", "fluffy=lots"], "'lots' is not a number", "script", ()),
    ("reweight infinite", [*EDIT, "--reweight", "fluffy=inf"], "not a finite number", "script", ()),
    ("unknown mask mode", [*EDIT, "--mask-mode", "union"], "invalid choice: 'union'", "script", ()),
    ("intersect without blend", [*EDIT, "--mask", "{mask}", "--mask-mode", "intersect"], "needs --blend",
     "script", ()),
    ("subtract without blend", [*EDIT, "--subtract", "wall"], "--subtract needs --blend", "script", ()),
    ("missing mask", [*EDIT, "--mask", "nomask.png"], "mask 'nomask.png' not found", "script", ()),
    ("unreadable mask", [*EDIT, "--mask", "{corrupt}"], "is not a readable image", "script", ()),
    ("unknown method", [*EDIT, "--method", "magic"], "invalid choice: 'magic'", "script", ()),
    ("unknown dtype", [*EDIT, "--dtype", "float8"], "invalid choice: 'float8'", "script", ()),
    ("size not a multiple of 8", [*EDIT, "--size", "30x40"], "multiples of 8", "script", ()),
    ("size garbled", [*EDIT, "--size", "big"], "WIDTHxHEIGHT", "script", ()),
    ("negative seed", [*EDIT, "--seed", "-3"], "must be in [0, 2**63)", "script", ()),
    ("missing inversion", ["edit", "--inversion", "none.inv.safetensors", "-t", "a"], "not found", "script", ()),
    ("inversion twice", ["edit", "{inv}", "--inversion", "{inv}", "-t", "a"], "not both", "script", ()),
    ("output exists", EDIT, "p2p-out/photo.0.png exists; pass --overwrite", "script", ("p2p-out/photo.0.png",)),
    ("out is a file", [*EDIT, "--out", "taken"], "is a file, not a folder", "script", ("taken",)),
    ("output over the photo", ["invert", "{photo}", "-p", "a cat", "-o", "{photo}", "--overwrite"],
     "over an input file", "script", ()),
    ("invert an inversion", ["invert", "{inv}", "-p", "a cat"], "invert takes a photo", "script", ()),
    ("reconstruct without prompt", ["reconstruct", "{photo}"], "--prompt is required", "script", ()),
    ("attention of nothing", ["attention"], "nothing to look at", "script", ()),
    ("generate without prompts", ["generate"], "PROMPT", "script", ()),
    ("generate empty prompt", ["generate", " "], "prompts must not be empty", "script", ()),
    ("batch without recipe", ["batch", "none.json"], "recipe 'none.json' not found", "script", ()),
    ("batch bad JSON", ["batch", "{recipe_json_error}"], "not valid JSON: Expecting", "script", ()),
    ("batch bad YAML", ["batch", "{recipe_yaml_error}"], "not valid YAML", "script", ()),
    ("batch without photos", ["batch", "{recipe_no_photos}"], "'photos' must be a non-empty list", "script", ()),
    ("batch unknown key", ["batch", "{recipe_typo}"], "edits[0]: unknown key 'taget'", "script", ()),
    ("batch bad number", ["batch", "{recipe_bad_steps}"], "photos[0]: steps: 'many' is not a whole number", "script",
     ()),
    ("batch missing photo", ["batch", "{recipe_ghost}"], "photos[0]: photo", "script", ()),
    ("batch changed edit", ["batch", "{recipe_ok}"], "e.json holds another edit", "script", ()),
    # These need the model.
    ("default model offline", ["edit", "{photo}", "-p", "a cat on a wall", "-t", "a dog on a wall", "--steps", "2"],
     "--model", "script", ()),
    ("corrupt photo", ["edit", "{corrupt}", "-p", "a", "-t", "b", *FAST], "not an image", "main", ()),
    ("inversion for another model", ["edit", "{inv_other_model}", "-t", "a dog on a wall", *FAST[-2:]],
     "another model", "script", ()),
    ("word not in prompt", [*EDIT, "--blend", "cow:dog", *FAST], "--blend: word 'cow' is not in prompt", "main", ()),
    ("empty photo file", ["edit", "{empty}", "-p", "a", "-t", "b", *FAST], "empty file", "main", ()),
    ("reweight word in no target", [*EDIT, "--reweight", "fluffy=2", *FAST], "--reweight word 'fluffy'", "main",
     ()),
    ("replace with misaligned words", [*EDIT[:-1], "a big dog on a wall", "--edit", "replace", *FAST], "replace",
     "main", ()),
    ("cross-replace word in no target", [*EDIT, "--cross-replace", "lion=0.3", *FAST], "'lion'", "main", ()),
    ("prompt too long", ["edit", "{photo}", "-p", "a cat " * 50, "-t", "a dog", *FAST], "tokens", "main", ()),
    ("corrupt inversion", ["edit", "{broken_inv}", "-t", "a dog", *FAST[-2:]], "not a safetensors file", "main",
     ()),
    ("inversion with another prompt", ["edit", "{inv}", "-p", "a dog on a wall", "-t", "a cat", *FAST[-2:]],
     "was inverted with --prompt", "main", ()),
    ("inversion with other steps", ["edit", "{inv}", "-t", "a dog on a wall", "--steps", "9", *FAST[-2:]],
     "--steps 2, not 9", "main", ()),
    ("inversion of another photo", ["edit", "{photo2}", "--inversion", "{inv}", "-t", "a dog on a wall",
                                    *FAST[-2:]], "another photo", "main", ()),
    ("model path missing", [*EDIT, "--model", "{inputs}/no-model"], "does not exist", "main", ()),
    ("model folder not a pipeline", [*EDIT, "--model", "{inputs}"], "model_index.json", "main", ()),
    ("model file not a checkpoint", [*EDIT, "--model", "{photo}"], "not a checkpoint", "main", ()),
    ("device without CUDA", [*EDIT, "--device", "cuda", "--model", "{model}"], "CUDA is not available", "main", ()),
    ("half precision on CPU", [*EDIT, "--device", "cpu", "--dtype", "float16", "--model", "{model}"],
     "needs a CUDA device", "main", ()),
    ("batch word not in prompt", ["batch", "{recipe_cow}"], "photos[0].edits[0] (photo/01-a-dog-on-a-wall)",
     "main", ()),
    ("generate word not in prompt", ["generate", "a cat", "a dog", "--blend", "cow:dog", *FAST[-2:]],
     "'cow' is not in prompt", "main", ()),
]

DEFAULT_MODEL_CASE = next(i for i, case in enumerate(CASES) if case[0] == "default model offline")


def write_recipes(inputs: Path, photo: Path, model: Path) -> dict[str, Path]:
    edit = {"target": "a dog on a wall"}
    recipes = {
        "recipe_json_error": '{"photos": [',
        "recipe_yaml_error": "photos: [unclosed\n  - x: : :\n",
        "recipe_no_photos": json.dumps({"photos": []}),
        "recipe_typo": json.dumps({"photos": [{"photo": str(photo), "prompt": "a cat", "edits": [{"taget": "x"}]}]}),
        "recipe_bad_steps": json.dumps({"photos": [{"photo": str(photo), "prompt": "a cat", "steps": "many",
                                                    "edits": [edit]}]}),
        "recipe_ghost": json.dumps({"photos": [{"photo": "ghost.png", "prompt": "a cat", "edits": [edit]}]}),
        "recipe_ok": json.dumps({"out": "batch-out", "photos": [{"photo": str(photo), "prompt": "a cat on a wall",
                                                                 "edits": [{**edit, "name": "e"}]}]}),
        "recipe_cow": json.dumps({"model": str(model), "photos": [{
            "photo": str(photo), "prompt": "a cat on a wall", "steps": 2, "edits": [{**edit, "blend": "cow:dog"}]}]}),
    }
    finished = inputs / "batch-out" / "photo" / "e.json"  # recipe_ok's edit, finished with other parameters
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps({"parameters": {"targets": ["something else"]}}))
    paths = {}
    for name, text in recipes.items():
        paths[name] = inputs / (name + (".yaml" if "yaml" in name else ".json"))
        paths[name].write_text(text)
    return paths


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model_dir, tiny_pipe):
    """Good and bad input files, shared (read-only) by every case."""
    import p2p_real

    root = tmp_path_factory.mktemp("bad-inputs")
    folder = root / "inputs"
    folder.mkdir()
    photo, photo2 = folder / "photo.png", folder / "photo2.png"
    Image.new("RGB", (48, 40), (90, 140, 200)).save(photo)
    Image.new("RGB", (48, 40), (200, 40, 40)).save(photo2)
    Image.new("L", (48, 40), 255).save(folder / "mask.png")
    (folder / "corrupt.png").write_bytes(b"this is not a png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "broken.inv.safetensors").write_bytes(b"\x00" * 64)
    inv = p2p_real.Editor(tiny_pipe).invert(photo, "a cat on a wall", method="ddim", num_inference_steps=2,
                                             progress=False)
    inv.save(folder / "photo.inv.safetensors")
    dataclasses.replace(inv, model_id="0" * 64).save(folder / "other.inv.safetensors")
    values = {
        "photo": photo, "photo2": photo2, "mask": folder / "mask.png", "corrupt": folder / "corrupt.png",
        "empty": folder / "empty.png", "broken_inv": folder / "broken.inv.safetensors",
        "inv": folder / "photo.inv.safetensors", "inv_other_model": folder / "other.inv.safetensors",
        "inputs": folder, "model": tiny_model_dir, **write_recipes(folder, photo, tiny_model_dir),
    }
    (root / "home").mkdir()
    return root, {k: str(v) for k, v in values.items()}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def prepare(root: Path, index: int, create: tuple[str, ...]) -> Path:
    """The case's own working folder, with the files the case needs to find there."""
    folder = root / "cases" / f"{index:02d}"
    folder.mkdir(parents=True)
    for name in create:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".json"):
            path.write_text(json.dumps({"parameters": {"something": "else"}}))
        else:
            path.write_bytes(b"an earlier result")
    return folder


def run_script(argv: list[str], cwd: Path, home: Path) -> tuple[int, str]:
    result = run_cli(argv, cwd, home)
    return result.returncode, result.stderr


def run_main(argv: list[str], cwd: Path, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_bad_inputs_give_one_line_a_nonzero_exit_and_no_file(inputs, capsys, monkeypatch):
    root, values = inputs
    assert len(CASES) >= 30 and sum(how == "script" for _, _, _, how, _ in CASES) >= 30
    folders = [prepare(root, i, create) for i, (*_, create) in enumerate(CASES)]
    before = snapshot(root)
    argvs = [[arg.format(**values) for arg in argv] for _, argv, *_ in CASES]
    scripted = sorted((i for i, case in enumerate(CASES) if case[3] == "script"), key=lambda i: "--model" not in
                      CASES[i][1] and i != DEFAULT_MODEL_CASE)  # the slow ones (loading the model) first
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {i: pool.submit(run_script, argvs[i], folders[i], root / "home") for i in scripted}
        results = {i: run_main(argvs[i], folders[i], capsys, monkeypatch)
                   for i, case in enumerate(CASES) if case[3] == "main"}
        results.update({i: future.result() for i, future in futures.items()})
    problems = []
    for i, (name, _, expected, how, _) in enumerate(CASES):
        code, stderr = results[i]
        lines = [line for line in stderr.splitlines() if line.strip()]
        if code == 0 or len(lines) != 1 or not lines[0].startswith("p2p-real") or expected not in lines[0]:
            problems.append(f"{name} ({how}): exit {code}, stderr:\n{stderr}")
        elif "Traceback" in stderr:
            problems.append(f"{name}: traceback")
    assert not problems, "\n\n".join(problems)
    assert snapshot(root) == before  # not a single file written, not even a temporary one


def test_debug_shows_the_traceback(inputs, capsys, monkeypatch):
    root, values = inputs
    with pytest.raises(cli.CliError, match="not found"):
        cli.main(["edit", "nope.png", "-p", "a", "-t", "b", "--debug"])
    code = cli.main(["edit", "nope.png", "-p", "a", "-t", "b"])
    assert code == 1 and capsys.readouterr().err.count("\n") == 1
