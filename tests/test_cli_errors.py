"""Bad inputs to `p2p-real` and to the API: each gives ONE line on stderr (or one ValueError), a non-zero exit
status and no file.

One table. Cases that fail while parsing or checking files never import torch, so they all run through the
real console script; of those that need the model, a few run through the script too (in parallel) and the rest
call cli.main in this process, which already has torch loaded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
    ("blend pool negative", [*EDIT, "--blend-pool", "-1"], "argument --blend-pool: must be at least 0", "script", ()),
    ("blend with two colons", [*EDIT, "--blend", "a:b:c"], "one colon", "script", ()),
    ("blend without words", [*EDIT, "--blend", ":"], "names no word", "script", ()),
    ("blend words per target", [*EDIT, "--blend", "cat:dog,lion,tiger"], "3 target words for 1", "script", ()),
    ("reweight without factor", [*EDIT, "--reweight", "fluffy"], "use WORD=FACTOR", "script", ()),
    ("reweight not a number", [*EDIT, "--reweight", "fluffy=lots"], "'lots' is not a number", "script", ()),
    ("reweight infinite", [*EDIT, "--reweight", "fluffy=inf"], "not a finite number", "script", ()),
    ("unknown mask mode", [*EDIT, "--mask-mode", "union"], "invalid choice: 'union'", "script", ()),
    ("intersect without blend", [*EDIT, "--mask", "{mask}", "--mask-mode", "intersect"], "needs --blend", "script", ()),
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
    (
        "output over the photo",
        ["invert", "{photo}", "-p", "a cat", "-o", "{photo}", "--overwrite"],
        "over an input file",
        "script",
        (),
    ),
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
    (
        "batch bad number",
        ["batch", "{recipe_bad_steps}"],
        "photos[0]: steps: 'many' is not a whole number",
        "script",
        (),
    ),
    ("batch missing photo", ["batch", "{recipe_ghost}"], "photos[0]: photo", "script", ()),
    ("batch changed edit", ["batch", "{recipe_ok}"], "e.json holds another edit", "script", ()),
    # Outputs stay inside the output folder and never replace a user's file.
    ("edit name with folders", [*EDIT, "--name", "../x"], "--name '../x' must be a plain file name", "script", ()),
    ("edit name absolute", [*EDIT, "--name", "/tmp/x"], "--name '/tmp/x' must be a plain file name", "script", ()),
    (
        "generate hidden name",
        ["generate", "a cat", "--name", ".x"],
        "--name '.x' must be a plain file name",
        "script",
        (),
    ),
    (
        "reconstruct name with folders",
        ["reconstruct", "{inv}", "--name", "a/b"],
        "must be a plain file name",
        "script",
        (),
    ),
    (
        "batch out absolute",
        ["batch", "{recipe_out_absolute}"],
        "'out' must be a folder inside the recipe's folder",
        "script",
        (),
    ),
    ("batch out above the recipe", ["batch", "{recipe_out_up}"], "not '../escaped'", "script", ()),
    (
        "batch name with folders",
        ["batch", "{recipe_name_up}"],
        "edits[0]: name '../x' must be a plain file name",
        "script",
        (),
    ),
    (
        "batch photo name with folders",
        ["batch", "{recipe_photo_name_up}"],
        "photos[0]: name 'a/b' must be a plain",
        "script",
        (),
    ),
    (
        "batch over a user's file",
        ["batch", "{recipe_user_file}"],
        "user-out/photo/e.0.png exists; pass --overwrite",
        "script",
        (),
    ),
    (
        "batch inversion that is not one",
        ["batch", "{recipe_bad_inversion}"],
        "is not a readable inversion",
        "script",
        (),
    ),
    # These need the model.
    (
        "default model offline",
        ["edit", "{photo}", "-p", "a cat on a wall", "-t", "a dog on a wall", "--steps", "2"],
        "--model",
        "script",
        (),
    ),
    ("corrupt photo", ["edit", "{corrupt}", "-p", "a", "-t", "b", *FAST], "not an image", "main", ()),
    (
        "inversion for another model",
        ["edit", "{inv_other_model}", "-t", "a dog on a wall", *FAST[-2:]],
        "another model",
        "script",
        (),
    ),
    ("word not in prompt", [*EDIT, "--blend", "cow:dog", *FAST], "--blend: word 'cow' is not in prompt", "main", ()),
    ("empty photo file", ["edit", "{empty}", "-p", "a", "-t", "b", *FAST], "empty file", "main", ()),
    ("reweight word in no target", [*EDIT, "--reweight", "fluffy=2", *FAST], "--reweight word 'fluffy'", "main", ()),
    (
        "replace with misaligned words",
        [*EDIT[:-1], "a big dog on a wall", "--edit", "replace", *FAST],
        "replace",
        "main",
        (),
    ),
    ("cross-replace word in no target", [*EDIT, "--cross-replace", "lion=0.3", *FAST], "'lion'", "main", ()),
    ("prompt too long", ["edit", "{photo}", "-p", "a cat " * 50, "-t", "a dog", *FAST], "tokens", "main", ()),
    ("corrupt inversion", ["edit", "{broken_inv}", "-t", "a dog", *FAST[-2:]], "not a safetensors file", "main", ()),
    (
        "inversion with another prompt",
        ["edit", "{inv}", "-p", "a dog on a wall", "-t", "a cat", *FAST[-2:]],
        "was inverted with --prompt",
        "main",
        (),
    ),
    (
        "inversion with other steps",
        ["edit", "{inv}", "-t", "a dog on a wall", "--steps", "9", *FAST[-2:]],
        "--steps 2, not 9",
        "main",
        (),
    ),
    (
        "inversion of another photo",
        ["edit", "{photo2}", "--inversion", "{inv}", "-t", "a dog on a wall", *FAST[-2:]],
        "another photo",
        "main",
        (),
    ),
    ("model path missing", [*EDIT, "--model", "{inputs}/no-model"], "does not exist", "main", ()),
    ("model folder not a pipeline", [*EDIT, "--model", "{inputs}"], "model_index.json", "main", ()),
    ("model file not a checkpoint", [*EDIT, "--model", "{photo}"], "not a checkpoint", "main", ()),
    ("device without CUDA", [*EDIT, "--device", "cuda", "--model", "{model}"], "CUDA is not available", "main", ()),
    (
        "half precision on CPU",
        [*EDIT, "--device", "cpu", "--dtype", "float16", "--model", "{model}"],
        "needs a CUDA device",
        "main",
        (),
    ),
    (
        "batch word not in prompt",
        ["batch", "{recipe_cow}"],
        "photos[0].edits[0] (photo/01-a-dog-on-a-wall)",
        "main",
        (),
    ),
    (
        "generate word not in prompt",
        ["generate", "a cat", "a dog", "--blend", "cow:dog", *FAST[-2:]],
        "'cow' is not in prompt",
        "main",
        (),
    ),
    # Limits and numbers that used to end in an OOM kill, a NaN image or an internal error.
    ("size too large", [*EDIT, "--size", "4096x4096"], "at most 2048 pixels", "script", ()),
    ("generate size too large", ["generate", "a cat", "--size", "8x65536"], "at most 2048 pixels", "script", ()),
    ("reweight huge", [*EDIT, "--reweight", "dog=1e30", *FAST], "--reweight['dog'] must be in [-10, 10]", "main", ()),
    ("reweight beyond float32", [*EDIT, "--reweight", "dog=1e39", *FAST], "must be in [-10, 10]", "main", ()),
    ("guidance that overflows", [*EDIT, "--guidance", "1e30", "-q", *FAST], "NaN or infinite values", "main", ()),
    ("device meta", [*EDIT, "--device", "meta", "--model", "{model}"], "device 'meta' cannot run a model", "main", ()),
    # The second hostile hunt (issue 28): bounds checked before anything is allocated or loaded.
    ("steps beyond the limit", [*EDIT, "--steps", "5000"], "must be at most 1000", "script", ()),
    ("generate: steps huge", ["generate", "a cat", "--steps", "100000000"], "must be at most 1000", "script", ()),
    ("feather huge", [*EDIT, "--spec", '{{"feather": 1e308}}'], "feather must be <= 0.5", "script", ()),
    ("name too long", [*EDIT, "--name", "x" * 250], "is too long", "script", ()),
    ("name with a line break", [*EDIT, "--name", "a\nb"], "no line breaks", "script", ()),
    ("ui port beyond 65535", ["ui", "--port", "70000"], "70000 is not a port", "script", ()),
    ("abbreviated option", [*EDIT, "--overw"], "unrecognized arguments: --overw", "script", ()),
    (
        "invert --out and --output",
        ["invert", "{photo}", "-p", "a", "--out", "d", "-o", "x.inv.safetensors"],
        "not both",
        "script",
        (),
    ),
    ("lora scale huge", [*EDIT, "--lora", "{photo}:1e30"], "scale must be <= 10", "script", ()),
    ("batch YAML alias bomb", ["batch", "{recipe_yaml_alias_bomb}"], "aliases expand to more than", "script", ()),
]

DEFAULT_MODEL_CASE = next(i for i, case in enumerate(CASES) if case[0] == "default model offline")
# What a failing case may leave, in its own folder: an edit that fails after its inversion finished keeps the
# inversion (saved at once, so that a failed or interrupted edit does not lose minutes of work), nothing else.
LEAVES = {"guidance that overflows": ("p2p-out/photo.inv.safetensors",)}


def write_recipes(inputs: Path, photo: Path, model: Path) -> dict[str, Path]:
    edit = {"target": "a dog on a wall"}
    recipes = {
        "recipe_json_error": '{"photos": [',
        "recipe_yaml_error": "photos: [unclosed\n  - x: : :\n",
        "recipe_yaml_alias_bomb": "out: [&a0 [x, x, x, x, x, x, x, x, x, x], "
        + ", ".join(f"&a{k} [{', '.join([f'*a{k - 1}'] * 10)}]" for k in range(1, 9))
        + "]\nphotos: [{photo: p.png}]\n",
        "recipe_no_photos": json.dumps({"photos": []}),
        "recipe_typo": json.dumps({"photos": [{"photo": str(photo), "prompt": "a cat", "edits": [{"taget": "x"}]}]}),
        "recipe_bad_steps": json.dumps(
            {"photos": [{"photo": str(photo), "prompt": "a cat", "steps": "many", "edits": [edit]}]}
        ),
        "recipe_ghost": json.dumps({"photos": [{"photo": "ghost.png", "prompt": "a cat", "edits": [edit]}]}),
        "recipe_ok": json.dumps(
            {
                "out": "batch-out",
                "photos": [{"photo": str(photo), "prompt": "a cat on a wall", "edits": [{**edit, "name": "e"}]}],
            }
        ),
        "recipe_cow": json.dumps(
            {
                "model": str(model),
                "photos": [
                    {
                        "photo": str(photo),
                        "prompt": "a cat on a wall",
                        "steps": 2,
                        "edits": [{**edit, "blend": "cow:dog"}],
                    }
                ],
            }
        ),
    }
    named = {"photo": str(photo), "prompt": "a cat on a wall"}
    recipes.update(
        {
            "recipe_out_absolute": json.dumps(
                {"out": str(inputs / "elsewhere"), "photos": [{**named, "edits": [edit]}]}
            ),
            "recipe_out_up": json.dumps({"out": "../escaped", "photos": [{**named, "edits": [edit]}]}),
            "recipe_name_up": json.dumps({"photos": [{**named, "edits": [{**edit, "name": "../x"}]}]}),
            "recipe_photo_name_up": json.dumps({"photos": [{**named, "name": "a/b", "edits": [edit]}]}),
            "recipe_user_file": json.dumps(
                {"out": "user-out", "photos": [{**named, "edits": [{**edit, "name": "e"}]}]}
            ),
            "recipe_bad_inversion": json.dumps({"photos": [{"photo": "broken.inv.safetensors", "edits": [edit]}]}),
        }
    )
    finished = inputs / "batch-out" / "photo" / "e.json"  # recipe_ok's edit, finished with other parameters
    finished.parent.mkdir(parents=True)
    finished.write_text(json.dumps({"parameters": {"targets": ["something else"]}}))
    users = inputs / "user-out" / "photo" / "e.0.png"  # a file of the user's where recipe_user_file would write
    users.parent.mkdir(parents=True)
    users.write_bytes(b"the user's own picture")
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
    inv = p2p_real.Editor(tiny_pipe).invert(
        photo, "a cat on a wall", method="ddim", num_inference_steps=2, progress=False
    )
    inv.save(folder / "photo.inv.safetensors")
    dataclasses.replace(inv, model_id="0" * 64).save(folder / "other.inv.safetensors")
    values = {
        "photo": photo,
        "photo2": photo2,
        "mask": folder / "mask.png",
        "corrupt": folder / "corrupt.png",
        "empty": folder / "empty.png",
        "broken_inv": folder / "broken.inv.safetensors",
        "inv": folder / "photo.inv.safetensors",
        "inv_other_model": folder / "other.inv.safetensors",
        "inputs": folder,
        "model": tiny_model_dir,
        **write_recipes(folder, photo, tiny_model_dir),
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


@pytest.mark.slow
def test_bad_inputs_give_one_line_a_nonzero_exit_and_no_file(inputs, capsys, monkeypatch):
    root, values = inputs
    assert len(CASES) >= 30 and sum(how == "script" for _, _, _, how, _ in CASES) >= 30
    folders = [prepare(root, i, create) for i, (*_, create) in enumerate(CASES)]
    before = snapshot(root)
    argvs = [[arg.format(**values) for arg in argv] for _, argv, *_ in CASES]
    scripted = sorted(
        (i for i, case in enumerate(CASES) if case[3] == "script"),
        key=lambda i: "--model" not in CASES[i][1] and i != DEFAULT_MODEL_CASE,
    )  # the slow ones (loading the model) first
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {i: pool.submit(run_script, argvs[i], folders[i], root / "home") for i in scripted}
        results = {
            i: run_main(argvs[i], folders[i], capsys, monkeypatch) for i, case in enumerate(CASES) if case[3] == "main"
        }
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
    kept = [str(folders[i].relative_to(root)) for i, (name, *_) in enumerate(CASES) if name in LEAVES]
    for i, (name, *_) in enumerate(CASES):
        if name in LEAVES:  # exactly what it may leave
            left = {str(p.relative_to(folders[i])) for p in folders[i].rglob("*") if p.is_file()}
            assert left == set(LEAVES[name]), f"{name}: {left}"

    def outside_kept(snap: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        return {p: s for p, s in snap.items() if not any(p == k or p.startswith(f"{k}/") for k in kept)}

    assert outside_kept(snapshot(root)) == outside_kept(before)  # not a single file written, not even a temporary one


def test_debug_shows_the_traceback(inputs, capsys, monkeypatch):
    root, values = inputs
    with pytest.raises(cli.CliError, match="not found"):
        cli.main(["edit", "nope.png", "-p", "a", "-t", "b", "--debug"])
    code = cli.main(["edit", "nope.png", "-p", "a", "-t", "b"])
    assert code == 1 and capsys.readouterr().err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------------------
# The same promise through the Python API: a ValueError (or subclass) naming the bad input, nothing written, the
# pipeline left as it was.


@dataclasses.dataclass
class Api:
    """What the API cases call: an editor on the tiny model, an inversion, and the shared input files."""

    editor: Any
    inv: Any
    files: dict[str, str]
    folder: Path

    def generate(self, prompts: list[str] | None = None, **kwargs: Any) -> Any:
        prompts = ["a cat on a wall", "a dog on a wall"] if prompts is None else prompts
        return self.editor.generate(prompts, **{"num_inference_steps": 2, "generator": 0, "progress": False, **kwargs})

    def edit(self, targets: Any = "a dog on a wall", inv: Any = None, **kwargs: Any) -> Any:
        return self.editor.edit(self.inv if inv is None else inv, targets, progress=False, **kwargs)

    def invert(self, image: Any = None, prompt: str = "a cat on a wall", **kwargs: Any) -> Any:
        image = self.files["photo"] if image is None else image
        return self.editor.invert(
            image, prompt, **{"method": "ddim", "num_inference_steps": 2, "progress": False, **kwargs}
        )

    def other_model(self) -> Any:
        return dataclasses.replace(self.inv, model_id="0" * 64)


def _load(model: str, **kwargs: Any) -> Any:
    import p2p_real

    return p2p_real.load_pipeline(model, **{"device": "cpu", **kwargs})


def _inversion(path: str, **kwargs: Any) -> Any:
    from inversion import Inversion

    return Inversion.load(path, **kwargs)


def _editor(pipe: Any, **kwargs: Any) -> Any:
    import p2p_real

    return p2p_real.Editor(pipe, **kwargs)


# (name, call, expected part of the message)
API_CASES: list[tuple[str, Callable[[Api], Any], str]] = [
    ("load_pipeline: empty model", lambda a: _load("  "), "model is empty"),
    ("load_pipeline: missing path", lambda a: _load("./no/such/model"), "does not exist"),
    ("load_pipeline: folder without pipeline", lambda a: _load(a.files["inputs"]), "model_index.json"),
    ("load_pipeline: photo as model", lambda a: _load(a.files["photo"]), "not a checkpoint"),
    ("load_pipeline: broken safetensors", lambda a: _load(a.files["broken_inv"]), "broken.inv.safetensors"),
    ("load_pipeline: device meta", lambda a: _load(a.files["model"], device="meta"), "cannot run a model"),
    ("load_pipeline: unknown device", lambda a: _load(a.files["model"], device="tpu0"), "not a torch device"),
    ("load_pipeline: half precision on CPU", lambda a: _load(a.files["model"], dtype="float16"), "needs a CUDA"),
    ("load_pipeline: unknown dtype", lambda a: _load(a.files["model"], dtype="int8"), "dtype 'int8'"),
    ("Editor: not a pipeline", lambda a: _editor(object()), "not a Stable Diffusion pipeline"),
    ("Editor: zero steps", lambda a: _editor(a.editor.pipe, num_inference_steps=0), "num_inference_steps"),
    ("Editor: NaN guidance", lambda a: _editor(a.editor.pipe, guidance_scale=float("nan")), "guidance_scale"),
    ("generate: no prompts", lambda a: a.generate([]), "non-empty list"),
    ("generate: empty target", lambda a: a.generate(["a cat on a wall", ""]), "must not be empty"),
    ("generate: blank source", lambda a: a.generate([" ", "a dog on a wall"]), "must not be empty"),
    ("generate: prompt not a string", lambda a: a.generate(["a cat", 7]), "non-empty list of strings"),
    ("generate: prompt too long", lambda a: a.generate(["a cat", "a dog " * 50]), "tokens"),
    ("generate: huge reweight", lambda a: a.generate(equalizer={"dog": 1e30}), "must be in [-10, 10]"),
    ("generate: reweight beyond float32", lambda a: a.generate(equalizer={"dog": 1e39}), "must be in [-10, 10]"),
    ("generate: infinite reweight", lambda a: a.generate(equalizer={"dog": float("inf")}), "finite number"),
    ("generate: reweight list too long", lambda a: a.generate(equalizer={"dog": [1.0, 2.0]}), "2 values for 1"),
    ("generate: reweight word in no target", lambda a: a.generate(equalizer={"cow": 2.0}), "'cow'"),
    ("generate: reweight without equalizer", lambda a: a.generate(edit="reweight"), "needs an equalizer"),
    ("generate: unknown edit", lambda a: a.generate(edit="swap"), "edit must be one of"),
    (
        "generate: replace with other word counts",
        lambda a: a.generate(["a cat", "a big dog"], edit="replace"),
        "same number of words",
    ),
    ("generate: height too large", lambda a: a.generate(height=4096), "up to 2048"),
    ("generate: width not a multiple of 8", lambda a: a.generate(width=12), "multiple of 8"),
    ("generate: guidance that overflows", lambda a: a.generate(guidance_scale=1e30), "NaN or infinite values"),
    (
        "generate: start latent that overflows",
        lambda a: a.generate(latents=__import__("torch").full((1, 4, 32, 32), 3e38)),
        "NaN or infinite values",
    ),
    (
        "generate: NaN start latent",
        lambda a: a.generate(latents=__import__("torch").full((1, 4, 32, 32), float("nan"))),
        "NaN",
    ),
    ("generate: blend word not in prompt", lambda a: a.generate(blend_words=(["cow"], ["dog"])), "'cow'"),
    (
        "generate: subtract without blend",
        lambda a: a.generate(subtract_words=(["wall"], ["wall"])),
        "subtract_words needs blend_words",
    ),
    ("generate: window word in no target", lambda a: a.generate(cross_replace_steps={"lion": 0.3}), "'lion'"),
    ("generate: window above 1", lambda a: a.generate(cross_replace_steps=1.5), "cross_replace_steps"),
    ("generate: self-injection limit zero", lambda a: a.generate(self_replace_max_res=0), "self_replace_max_res"),
    (
        "generate: blend threshold above 1",
        lambda a: a.generate(blend_words=(["cat"], ["dog"]), blend_threshold=2),
        "blend_threshold",
    ),
    (
        "generate: negative blend pool",
        lambda a: a.generate(blend_words=(["cat"], ["dog"]), blend_pool=-1),
        "blend_pool must be at least 0",
    ),
    ("edit: blend pool not a whole number", lambda a: a.edit(blend_pool=1.5), "blend_pool must be a whole number"),
    ("generate: unknown output type", lambda a: a.generate(output_type="jpeg"), "output_type"),
    ("generate: generator not a generator", lambda a: a.generate(generator="seed"), "generator"),
    ("invert: unknown method", lambda a: a.invert(method="magic"), "method must be one of"),
    ("invert: missing photo", lambda a: a.invert("/nonexistent/photo.png"), "file not found"),
    ("invert: corrupt photo", lambda a: a.invert(a.files["corrupt"]), "not an image"),
    ("invert: empty photo file", lambda a: a.invert(a.files["empty"]), "empty file"),
    ("invert: NaN array", lambda a: a.invert(__import__("numpy").full((16, 16, 3), float("nan"))), "NaN"),
    ("invert: size too large", lambda a: a.invert(size=(4096, 4096)), "at most 2048 pixels per side"),
    ("invert: size not a multiple of 8", lambda a: a.invert(size=(30, 40)), "multiples of 8"),
    ("invert: prompt too long", lambda a: a.invert(prompt="a cat " * 50), "tokens"),
    ("invert: zero steps", lambda a: a.invert(num_inference_steps=0), "num_inference_steps"),
    ("invert: negative guidance", lambda a: a.invert(guidance_scale=-1), "guidance_scale"),
    ("edit: not an inversion", lambda a: a.edit(inv="photo.jpg"), "expected an Inversion"),
    ("edit: empty target", lambda a: a.edit([""]), "must not be empty"),
    ("edit: no targets", lambda a: a.edit([]), "non-empty list"),
    ("edit: huge reweight", lambda a: a.edit(equalizer={"dog": -1e9}), "must be in [-10, 10]"),
    ("edit: blend word not in prompt", lambda a: a.edit(blend_words=(["dog"], ["dog"])), "'dog' is not in prompt"),
    ("edit: missing mask", lambda a: a.edit(mask="/nonexistent/mask.png"), "mask file not found"),
    ("edit: corrupt mask", lambda a: a.edit(mask=a.files["corrupt"]), "not an image"),
    ("edit: unknown mask mode", lambda a: a.edit(mask=a.files["mask"], mask_mode="union"), "mask_mode"),
    (
        "edit: intersect without blend",
        lambda a: a.edit(mask=a.files["mask"], mask_mode="intersect"),
        "needs blend_words",
    ),
    ("edit: inversion of another model", lambda a: a.edit(inv=a.other_model()), "not compatible"),
    ("reconstruct: not an inversion", lambda a: a.editor.reconstruct("photo.inv.safetensors"), "expected an Inversion"),
    (
        "reconstruct: inversion of another model",
        lambda a: a.editor.reconstruct(a.other_model(), progress=False),
        "model fingerprint",
    ),
    ("Inversion.load: missing file", lambda a: _inversion(str(a.folder / "none.inv.safetensors")), "file not found"),
    ("Inversion.load: a folder", lambda a: _inversion(a.files["inputs"]), "not a file"),
    ("Inversion.load: not safetensors", lambda a: _inversion(a.files["broken_inv"]), "not a safetensors file"),
    ("Inversion.load: a photo", lambda a: _inversion(a.files["photo"]), "not a safetensors file"),
    (
        "Inversion.load: photo over the pixel limit",
        lambda a: _inversion(a.files["inv"], max_pixels=100),
        "exceeds the limit of 100",
    ),
    (
        "Inversion.save: into a folder that is missing",
        lambda a: a.inv.save(a.folder / "missing" / "x.inv.safetensors"),
        "does not exist",
    ),
    ("Inversion.save: onto a folder", lambda a: a.inv.save(a.folder), "is a folder"),
    (
        "Editor: steps beyond the limit",
        lambda a: _editor(a.editor.pipe, num_inference_steps=10**8),
        "must be at most 1000",
    ),
    ("generate: steps beyond the limit", lambda a: a.generate(num_inference_steps=100_000_000), "at most 1000"),
    ("edit: feather huge", lambda a: a.edit(feather=1e308), "feather must be <= 0.5"),
    ("edit: feather NaN", lambda a: a.edit(feather=float("nan")), "feather must be a finite number"),
]


@pytest.fixture(scope="module")
def api(inputs, tiny_pipe) -> Api:
    import p2p_real
    from inversion import Inversion

    root, files = inputs
    folder = root / "api"
    folder.mkdir()
    return Api(p2p_real.Editor(tiny_pipe), Inversion.load(files["inv"]), files, folder)


def test_there_are_at_least_100_bad_inputs_across_cli_batch_and_api():
    batch = sum(argv[:1] == ["batch"] for _, argv, *_ in CASES)
    assert len(CASES) + len(API_CASES) >= 100 and batch >= 9 and len(API_CASES) >= 50
    assert len({name for name, *_ in CASES}) == len(CASES)
    assert len({name for name, *_ in API_CASES}) == len(API_CASES)


@pytest.mark.parametrize(("name", "call", "expected"), API_CASES, ids=[case[0] for case in API_CASES])
def test_bad_api_inputs_raise_a_value_error_naming_them_and_write_nothing(api, tiny_pipe, name, call, expected):
    root = api.folder.parent
    before, processors = snapshot(root), dict(tiny_pipe.unet.attn_processors)
    with pytest.raises(ValueError) as err:
        call(api)
    assert expected in str(err.value), f"{name}: {err.value}"
    assert snapshot(root) == before  # not a single file written, not even a temporary one
    assert all(tiny_pipe.unet.attn_processors[k] is v for k, v in processors.items())


def test_the_cli_size_limit_is_the_librarys():
    import argparse

    from inversion.photos.image import MAX_WORKING_SIDE
    from p2p_real.commands.options import size_value

    assert size_value(f"{MAX_WORKING_SIDE}x8") == (MAX_WORKING_SIDE, 8)
    with pytest.raises(argparse.ArgumentTypeError, match=f"at most {MAX_WORKING_SIDE} pixels"):
        size_value(f"8x{MAX_WORKING_SIDE + 8}")
