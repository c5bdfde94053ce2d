"""The README's examples as a test (issue 29, "Done means"): every fenced Python example runs, in order and in one
namespace as a reader would run them, on the offline models; every `p2p-real ...` command line of the README
parses with the real parser, and every `python -m` line of this project names a module (and parses, where its
parser can run alone). Only what cannot run here is substituted (`substitutions`): hub models become the toy
model or the tiny SDXL pipeline, 50 steps become a few; the photo is a scikit-image photo saved as photo.jpg."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

import cli

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_COMMAND = re.compile(r"`(p2p-real [^`]+)`")
STEPS = 3  # instead of the README's 50: the toy model's null-text inversion takes 46 s at 50 steps on 2 cores
SEPARATORS = {"&&", "||", ";", "|"}
FILE_SUFFIXES = {".jpg", ".png", ".heic", ".safetensors", ".ckpt", ".yaml"}


def fenced(lang: str) -> list[tuple[int, str]]:
    """The README's fenced blocks in `lang`, each with the line number of its first line of code."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) == lang]


def substitutions(sdxl_dir: Path) -> list[tuple[str, str]]:
    """What the examples name that cannot run here, and what runs instead (each must occur in the README)."""
    return [
        ('"stable-diffusion-v1-5/stable-diffusion-v1-5"', '"toy"'),
        ('"stabilityai/stable-diffusion-xl-base-1.0"', repr(str(sdxl_dir))),
        ("num_inference_steps=50", f"num_inference_steps={STEPS}"),
        ("p2p_real.Editor(pipe)", f"p2p_real.Editor(pipe, num_inference_steps={STEPS})"),
    ]


def runnable(code: str, swaps: list[tuple[str, str]]) -> str:
    """The example with each substitution applied where it occurs."""
    for old, new in swaps:
        code = code.replace(old, new)
    return code


def test_the_python_examples_run_on_the_offline_models(tmp_path, monkeypatch, tiny_sdxl_dir):
    blocks = fenced("python")
    assert len(blocks) >= 2, "the README's Python examples were not found (fenced ```python blocks)"
    swaps = substitutions(tiny_sdxl_dir)
    readme = "\n".join(code for _, code in blocks)
    unused = [old for old, _ in swaps if old not in readme]
    assert not unused, f"the README no longer names {unused}: update substitutions()"
    monkeypatch.chdir(tmp_path)
    Image.fromarray(skimage.data.chelsea()).save("photo.jpg")
    namespace: dict = {"__name__": "readme"}
    for line, code in blocks:  # tracebacks point at the README's own lines
        exec(compile("\n" * (line - 1) + runnable(code, swaps), str(README), "exec"), namespace)
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"cat.0.png", "cat.1.png", "cat.1.mask.png", "cat.grid.png", "cat.json"} <= written, written
    assert (tmp_path / "photo.inv.safetensors").is_file() and any((tmp_path / "inversions").iterdir())


def shell_lines(code: str) -> list[tuple[int, str]]:
    """The lines of a shell block, a line continued with a backslash joined to the next: (offset, line)."""
    joined: list[tuple[int, str]] = []
    first, pending = 0, ""
    for offset, line in enumerate(code.splitlines()):
        if not pending:
            first = offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append((first, pending + line))
        pending = ""
    return joined


def command_lines() -> list[tuple[int, list[str]]]:
    """Each `p2p-real` command of the README's bash blocks and inline code, as (line, its arguments)."""
    found = []
    for start, code in fenced("bash"):
        for offset, line in shell_lines(code):
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):  # `p2p-real`, `.venv/bin/p2p-real` or `$(which p2p-real)`
                if Path(word.rstrip(")")).name == "p2p-real":
                    args = words[i + 1 :]
                    ends = [j for j, w in enumerate(args) if w in SEPARATORS]
                    found.append((start + offset, args[: ends[0]] if ends else args))
    text = README.read_text()
    for m in INLINE_COMMAND.finditer(text):
        args = shlex.split(m.group(1))[1:]
        if len(args) > 1:  # a command with arguments, not a mention such as `p2p-real edit`
            found.append((text.count("\n", 0, m.start()) + 1, args))
    return found


COMMANDS = command_lines()
OWN_PACKAGES = ("p2p_real", "inversion", "masks", "benchmarks", "training", "tests")
PARSE_ONLY = {  # the modules whose command line can be parsed without running them
    "training.toyworld": "training.settings",
    "benchmarks.gpu": "benchmarks.gpu",
}


def module_lines() -> list[tuple[int, str, list[str]]]:
    """Each `python -m MODULE ...` of this project in the README's bash blocks, and in its inline code where it has
    arguments (not a mention such as `python -m training.toyworld`): (line, module, arguments)."""
    text = README.read_text()
    lines = [(start + offset, line) for start, code in fenced("bash") for offset, line in shell_lines(code)]
    for m in re.finditer(r"`(python3? -m [^`]+)`", text):
        if len(m.group(1).split()) > 3:
            lines.append((text.count("\n", 0, m.start()) + 1, m.group(1).replace("\n", " ")))
    found = []
    for number, line in lines:
        words = shlex.split(line, comments=True)
        for i, word in enumerate(words[:-2]):
            if Path(word).name.startswith("python") and words[i + 1] == "-m" and words[i + 2].startswith(OWN_PACKAGES):
                args = words[i + 3 :]
                ends = [j for j, w in enumerate(args) if w in SEPARATORS]
                found.append((number, words[i + 2], args[: ends[0]] if ends else args))
    return found


MODULES = module_lines()


def test_the_readme_has_command_lines_to_check():
    assert len(COMMANDS) >= 20, COMMANDS  # a change of the README's fences should not empty the check below
    assert {args[0] for _, args in COMMANDS} >= {"demo", "edit", "invert", "reconstruct", "generate", "batch", "ui"}


@pytest.mark.parametrize("args", [args for _, args in COMMANDS], ids=[f"README.md:{n}" for n, _ in COMMANDS])
def test_every_command_line_of_the_readme_parses(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for arg in args[1:]:  # the reader's files (the parser checks that a --lora exists), as empty files
        name = Path(arg.split(":")[0])
        if name.suffix.lower() in FILE_SUFFIXES:
            name.parent.mkdir(parents=True, exist_ok=True)
            name.touch()
    parsed = cli.build_parser().parse_args(args)  # a bad option or value raises cli.UsageError
    assert parsed.command == args[0] and callable(parsed.run)


def test_every_python_m_line_of_the_readme_names_a_module_and_parses(tmp_path, monkeypatch):
    assert {module for _, module, _ in MODULES} >= {"training.toyworld", "benchmarks.gpu", "benchmarks.toyworld"}
    monkeypatch.chdir(tmp_path)
    for number, module, args in MODULES:
        assert importlib.util.find_spec(module) is not None, f"README.md:{number}: no module {module}"
        if module in PARSE_ONLY:
            if "--teacher" in args:  # the teacher is a pipeline folder an earlier line trained
                for part in ("unet", "text_encoder"):
                    (tmp_path / args[args.index("--teacher") + 1] / part).mkdir(parents=True, exist_ok=True)
            importlib.import_module(PARSE_ONLY[module]).parse_args(args)  # a bad option: SystemExit(2)
