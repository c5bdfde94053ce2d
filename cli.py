"""`p2p-real`: edit real photos with Prompt-to-Prompt from the command line (a thin layer over p2p_real).

Heavy libraries (torch, diffusers, p2p_real) are imported inside the command functions only, so that
`p2p-real --help` answers at once. Every user error is one line on stderr and a non-zero exit status;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

PROG = "p2p-real"
DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # == p2p_real.DEFAULT_MODEL (a test checks)
MODEL_ENV = "P2P_REAL_MODEL"
DEFAULT_OUT = "p2p-out"
METHODS = ("null-text", "ddim", "negative-prompt", "direct")
EDIT_KINDS = ("auto", "replace", "refine", "reweight")
MASK_MODES = ("replace", "intersect")
DTYPES = ("auto", "float32", "fp32", "float16", "fp16", "bfloat16", "bf16")
INVERSION_SUFFIX = ".inv.safetensors"
DEFAULT_METHOD = "null-text"
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.5
GRID_HEIGHT = 320
ATTENTION_HEIGHT = 192
ATTENTION_METHOD = "negative-prompt"  # attention maps of a photo need a faithful replay, not NTI's precision
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

Window = float | tuple[float, float]
WindowEntry = tuple[str | None, Window]  # (None, window) is the default; (word, window) a word's own
BlendPair = tuple[str, tuple[str, ...]]  # (source word, target word(s): one shared or one per target)
Reweight = tuple[str, tuple[float, ...]]  # (word, factor(s): one shared or one per target)


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


class UsageError(Exception):
    """Bad command-line arguments: printed as one line, exit status 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, so that batch recipes can name the culprit)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


# ---------------------------------------------------------------------------------------------------------------
# Argument types: each parses one token or raises ArgumentTypeError with a message naming the problem.


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_value(text: str) -> int:
    """A seed: a whole number in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {value}")
    return value


def guidance_value(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], got {text}")
    return value


def window(text: str) -> Window:
    """A fraction of the steps ('0.8') or a START:END pair of fractions ('0.1:0.8')."""
    if ":" not in text:
        return fraction(text)
    start_text, _, end_text = text.partition(":")
    start, end = fraction(start_text), fraction(end_text)
    if start > end:
        raise argparse.ArgumentTypeError(f"START:END needs START <= END, got {text}")
    return (start, end)


def window_entry(text: str) -> WindowEntry:
    """A window for every word ('0.8', '0.1:0.8') or for one word of the targets ('dog=0.4')."""
    if "=" not in text:
        return (None, window(text))
    word, _, value = text.partition("=")
    if not word.strip():
        raise argparse.ArgumentTypeError(f"WORD=WINDOW needs a word, got {text!r}")
    return (word.strip(), window(value))


def size_value(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, both positive multiples of 8."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 512x384, got {text!r}")
    width, height = int(match[1]), int(match[2])
    if width < 8 or height < 8 or width % 8 or height % 8:
        raise argparse.ArgumentTypeError(f"width and height must be positive multiples of 8, got {text}")
    return (width, height)


def blend_pair(text: str) -> BlendPair:
    """SOURCE:TARGET words of a local blend; TARGET may list one word per target prompt (dog,lion)."""
    if text.count(":") > 1:
        raise argparse.ArgumentTypeError(f"use SOURCE:TARGET (one colon), got {text!r}")
    source, _, target = text.partition(":") if ":" in text else (text, ":", text)
    targets = tuple(t.strip() for t in target.split(","))
    if not source.strip() and not any(targets):
        raise argparse.ArgumentTypeError(f"{text!r} names no word")
    return (source.strip(), targets)


def reweight_entry(text: str) -> Reweight:
    """WORD=FACTOR, or WORD=F1,F2,... with one factor per target prompt."""
    word, sep, values = text.partition("=")
    if not sep or not word.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"use WORD=FACTOR such as fluffy=2, got {text!r}")
    return (word.strip(), tuple(_number(v) for v in values.split(",")))


def format_window(value: Window) -> str:
    """The command-line spelling of a window."""
    return f"{value[0]!r}:{value[1]!r}" if isinstance(value, tuple) else repr(value)


def _json_window(value: Window) -> float | list[float]:
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------------------------------------------
# The edit settings shared by `edit`, `generate` and `batch`.


@dataclass
class EditOptions:
    """Prompt-to-Prompt settings of one edit, as parsed from the command line."""

    edit: str = "auto"
    cross_replace: list[WindowEntry] = field(default_factory=lambda: [(None, 0.8)])
    self_replace: Window = 0.6
    self_replace_max_res: float = 0.5
    blend: list[BlendPair] = field(default_factory=list)
    subtract: list[BlendPair] = field(default_factory=list)
    blend_threshold: float = 0.3
    blend_start: float = 0.2
    reweight: list[Reweight] = field(default_factory=list)

    def check(self, n_targets: int) -> None:
        """Raise CliError where per-target lists do not match the number of targets."""
        for option, pairs in (("--blend", self.blend), ("--subtract", self.subtract)):
            for source, targets in pairs:
                if len(targets) not in (1, n_targets):
                    raise CliError(
                        f"{option} {source}:{','.join(targets)} lists {len(targets)} target words for "
                        f"{n_targets} target prompts (give one word, or one per target)"
                    )
        for word, values in self.reweight:
            if len(values) not in (1, n_targets):
                raise CliError(
                    f"--reweight {word}=... gives {len(values)} factors for {n_targets} target prompts "
                    "(give one factor, or one per target)"
                )
        if self.subtract and not self.blend:
            raise CliError("--subtract needs --blend: it removes words from the local-blend mask")

    def cross_window(self) -> Any:
        """cross_replace_steps for the API: one window, or {"default_": window, word: window}."""
        default: Window = 0.8
        words: dict[str, Window] = {}
        for word, value in self.cross_replace:
            if word is None:
                default = value
            else:
                words[word] = value
        return {"default_": default, **words} if words else default

    def rows(self, pairs: list[BlendPair], n_targets: int) -> list[list[str]] | None:
        """Blend words per prompt row (source, then each target), or None without pairs."""
        if not pairs:
            return None
        rows = [[source for source, _ in pairs if source]]
        for j in range(n_targets):
            rows.append([t[j] if len(t) > 1 else t[0] for _, t in pairs if (t[j] if len(t) > 1 else t[0])])
        return rows

    def equalizer(self) -> dict[str, float | list[float]] | None:
        """The API's equalizer: {word: factor or factors per target}."""
        if not self.reweight:
            return None
        return {word: values[0] if len(values) == 1 else list(values) for word, values in self.reweight}

    def api_kwargs(self, n_targets: int) -> dict[str, Any]:
        """Keyword arguments of Editor.edit / Editor.generate."""
        return {
            "edit": self.edit,
            "cross_replace_steps": self.cross_window(),
            "self_replace_steps": self.self_replace,
            "self_replace_max_res": self.self_replace_max_res,
            "blend_words": self.rows(self.blend, n_targets),
            "subtract_words": self.rows(self.subtract, n_targets),
            "blend_threshold": self.blend_threshold,
            "blend_start": self.blend_start,
            "equalizer": self.equalizer(),
        }

    def argv(self) -> list[str]:
        """The options spelled out in full, for the reproduction command."""
        argv = ["--edit", self.edit]
        for word, value in self.cross_replace:
            argv += ["--cross-replace", format_window(value) if word is None else f"{word}={format_window(value)}"]
        argv += ["--self-replace", format_window(self.self_replace)]
        argv += ["--self-replace-max-res", repr(self.self_replace_max_res)]
        for option, pairs in (("--blend", self.blend), ("--subtract", self.subtract)):
            for source, targets in pairs:
                argv += [option, f"{source}:{','.join(targets)}"]
        argv += ["--blend-threshold", repr(self.blend_threshold), "--blend-start", repr(self.blend_start)]
        for word, values in self.reweight:
            argv += ["--reweight", f"{word}={','.join(repr(v) for v in values)}"]
        return argv

    def parameters(self) -> dict[str, Any]:
        """The settings as plain JSON values."""
        cross = self.cross_window()
        return {
            "edit": self.edit,
            "cross_replace": (
                {k: _json_window(v) for k, v in cross.items()} if isinstance(cross, dict) else _json_window(cross)
            ),
            "self_replace": _json_window(self.self_replace),
            "self_replace_max_res": self.self_replace_max_res,
            "blend": [f"{s}:{','.join(t)}" for s, t in self.blend],
            "subtract": [f"{s}:{','.join(t)}" for s, t in self.subtract],
            "blend_threshold": self.blend_threshold,
            "blend_start": self.blend_start,
            "reweight": {word: list(values) for word, values in self.reweight},
        }


def edit_options(args: argparse.Namespace, n_targets: int) -> EditOptions:
    """EditOptions from parsed arguments, checked against the number of target prompts."""
    options = EditOptions(
        edit=args.edit,
        cross_replace=args.cross_replace or [(None, 0.8)],
        self_replace=args.self_replace,
        self_replace_max_res=args.self_replace_max_res,
        blend=args.blend or [],
        subtract=args.subtract or [],
        blend_threshold=args.blend_threshold,
        blend_start=args.blend_start,
        reweight=args.reweight or [],
    )
    options.check(n_targets)
    return options


# ---------------------------------------------------------------------------------------------------------------
# Inputs, outputs and files.


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    """The path of an existing file, or a CliError naming it."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CliError(f"{what} {str(path)!r} not found")
    if not p.is_file():
        raise CliError(f"{what} {str(path)!r} is not a file")
    return p.resolve()


def check_images(photo: Path | None, mask: Path | None = None) -> None:
    """Read the photo (and mask) before loading the model, so that a bad file fails at once."""
    if mask is not None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(mask) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise CliError(f"mask {str(mask)!r} is not a readable image ({reason})") from exc
    if photo is not None:
        from inversion.image import read_rgb

        read_rgb(photo)


def is_artifact(path: str | os.PathLike) -> bool:
    """Whether a path names a saved inversion (a .safetensors file) rather than a photo."""
    return str(path).lower().endswith(".safetensors")


def artifact_stem(path: Path) -> str:
    """'cat.inv.safetensors' -> 'cat'."""
    name = path.name
    for suffix in (INVERSION_SUFFIX, ".safetensors"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "photo"
    return path.stem


def slug(text: str, limit: int = 48) -> str:
    """A file-name-safe version of a prompt: 'A cat, on a wall!' -> 'a-cat-on-a-wall'."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "prompt"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_outputs(paths: Sequence[Path], overwrite: bool, inputs: Sequence[Path | None]) -> None:
    """Refuse, before any heavy work, to write over an input, or over an existing output without --overwrite."""
    protected = {p.resolve() for p in inputs if p is not None}
    for path in paths:
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise CliError(f"cannot write {path}: {parent} is a file, not a folder")
        if path.resolve() in protected:
            raise CliError(f"refusing to write {path} over an input file; choose another --out or --name")
        if path.is_dir():
            raise CliError(f"cannot write {path}: it is a folder")
        if path.exists() and not overwrite:
            raise CliError(f"{path} exists; pass --overwrite to replace it, or choose another --out or --name")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file in the same folder, then rename over `path` (never a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_png(path: Path, image: Any, text: dict[str, str]) -> Path:
    """Save a PIL image as PNG with text chunks (the parameters that reproduce it), atomically."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def png_text(parameters: dict[str, Any], **extra: str) -> dict[str, str]:
    """PNG text chunks: the reproducible parameters as JSON, plus a few readable fields."""
    return {"parameters": json.dumps(parameters, sort_keys=True, ensure_ascii=False), **extra,
            "Software": f"{PROG} {package_version()}"}


def package_version(name: str = "p2p-real") -> str:
    """An installed distribution's version, or 'not installed'."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import platform

    names = ("p2p-real", "torch", "diffusers", "transformers", "safetensors", "numpy", "pillow")
    return {"python": platform.python_version(), **{n: package_version(n) for n in names}}


def sidecar(command: str, argv: list[str], parameters: dict[str, Any], outputs: dict[str, Any],
            **extra: Any) -> dict[str, Any]:
    """The JSON sidecar: how to reproduce the outputs (argv, parameters), what was written, and where it ran."""
    reproduce = [PROG, *argv]
    return {
        "p2p_real": package_version(),
        "command": command,
        "argv": argv,
        "reproduce": shlex.join(reproduce) + " --out DIR",
        "parameters": parameters,
        "outputs": outputs,
        **extra,
        "versions": versions(),
    }


# ---------------------------------------------------------------------------------------------------------------
# The model session: heavy imports happen here, once per command.


@dataclass
class Session:
    """A loaded model and how the command talks to the user."""

    editor: Any
    model: str  # as it goes into argv: a hub id, or an absolute local path
    device: str  # as given ("auto", "cpu", ...)
    dtype: str
    quiet: bool
    runtime: dict[str, Any]

    @property
    def progress(self) -> bool:
        return not self.quiet


def info(message: str, quiet: bool) -> None:
    """A status line on stderr when it is a terminal, unless --quiet (logs and pipes get only errors)."""
    if not quiet and sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


def setup_libraries(debug: bool, quiet: bool) -> None:
    """Silence library chatter (warnings, loading bars) unless --debug; hub download bars stay unless --quiet."""
    if not debug:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        warnings.filterwarnings("ignore")
    if quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    if not debug:
        diffusers_logging.set_verbosity_error()
        transformers_logging.set_verbosity_error()


def toy_model_dir() -> Path:
    """Where the shipped toy-world model lives (found without importing torch)."""
    import importlib.util

    spec = importlib.util.find_spec("p2p_real")
    return Path(next(iter(spec.submodule_search_locations))) / "toyworld" / "model"


def resolve_model(model: str | None) -> str:
    """--model, else $P2P_REAL_MODEL, else the documented hub id; "toy" is the shipped toy-world model;
    local paths become absolute."""
    text = model if model is not None else os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if text == "toy":
        if not (toy_model_dir() / "model_index.json").is_file():
            raise CliError(f"the toy-world model is not installed in {toy_model_dir()} "
                           "(train it with python -m p2p_real.toyworld.train)")
        return str(toy_model_dir())
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


def open_session(args: argparse.Namespace, device: str | None = None) -> Session:
    """Import the heavy libraries and load the model once."""
    setup_libraries(args.debug, args.quiet)
    import torch

    import p2p_real

    model = resolve_model(args.model)
    device = device or args.device
    info(f"loading {model} (device {device}, dtype {args.dtype})", args.quiet)
    start = time.perf_counter()
    try:
        pipe = p2p_real.load_pipeline(model, device=device, dtype=args.dtype)
    except p2p_real.ModelLoadError as exc:
        raise CliError(f"{exc} (--model DIR or --model FILE)") from exc
    editor = p2p_real.Editor(pipe)
    runtime = {
        "device": str(editor.device),
        "dtype": str(editor.dtype).removeprefix("torch."),
        "load_s": round(time.perf_counter() - start, 3),
        "threads": torch.get_num_threads(),  # float results can depend on it
    }
    return Session(editor, model, device, args.dtype, args.quiet, runtime)


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (the edit loop itself is deterministic)."""
    import torch

    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------------
# Where an inversion comes from: a photo to invert, or a saved artifact.


@dataclass
class InversionSource:
    """A photo (inverted on the spot) or a saved inversion, with the settings the user asked for."""

    photo: Path | None
    artifact: Path | None
    prompt: str | None
    method: str | None  # None: the artifact's, or DEFAULT_METHOD
    steps: int | None
    guidance: float | None
    size: tuple[int, int] | None
    square: bool

    @property
    def name(self) -> str:
        """Default output name: the photo's stem, else the artifact's."""
        if self.photo is not None:
            return self.photo.stem
        return artifact_stem(self.artifact) if self.artifact is not None else "photo"

    @property
    def inputs(self) -> list[Path | None]:
        return [self.photo, self.artifact]

    def resolved(self) -> tuple[str, int, float]:
        """(method, steps, guidance) for a fresh inversion."""
        return (
            self.method or DEFAULT_METHOD,
            self.steps or DEFAULT_STEPS,
            DEFAULT_GUIDANCE if self.guidance is None else self.guidance,
        )

    def argv(self, prompt: str, method: str, steps: int, guidance: float) -> list[str]:
        """The input and inversion options spelled out in full."""
        argv = [str(self.photo)] if self.photo is not None else []
        if self.artifact is not None:
            argv += ["--inversion", str(self.artifact)]
        argv += ["--prompt", prompt, "--method", method, "--steps", str(steps), "--guidance", repr(guidance)]
        if self.size is not None:
            argv += ["--size", f"{self.size[0]}x{self.size[1]}"]
        if self.square:
            argv.append("--square")
        return argv

    def parameters(self, prompt: str, method: str, steps: int, guidance: float) -> dict[str, Any]:
        """Inputs as file names and content hashes (never absolute paths), and the inversion settings."""
        return {
            "photo": None if self.photo is None else self.photo.name,
            "photo_sha256": None if self.photo is None else file_sha256(self.photo),
            "inversion": None if self.artifact is None else self.artifact.name,
            "inversion_sha256": None if self.artifact is None else file_sha256(self.artifact),
            "prompt": prompt,
            "method": method,
            "steps": steps,
            "guidance": guidance,
            "size": None if self.size is None else list(self.size),
            "square": self.square,
        }


def inversion_source(args: argparse.Namespace, need_prompt: bool = True) -> InversionSource:
    """Read INPUT / --inversion / --prompt and the inversion options; check that the files exist."""
    photo = artifact = None
    if args.input is not None:
        if is_artifact(args.input):
            artifact = _existing_file(args.input, "inversion")
        else:
            photo = _existing_file(args.input, "photo")
    if getattr(args, "inversion", None) is not None:
        if artifact is not None:
            raise CliError("give the inversion once: as INPUT or with --inversion, not both")
        artifact = _existing_file(args.inversion, "inversion")
    if photo is None and artifact is None:
        raise CliError("give a PHOTO to invert, or a saved inversion (INPUT.inv.safetensors or --inversion FILE)")
    if artifact is None and need_prompt and not (args.prompt or "").strip():
        raise CliError("--prompt is required to invert a photo: describe the photo, e.g. --prompt 'a cat on a wall'")
    return InversionSource(
        photo, artifact, args.prompt, args.method, args.steps, args.guidance, args.size, args.square
    )


def load_artifact(session: Session, source: InversionSource) -> Any:
    """Load a saved inversion and check it against the model, the photo and the options given."""
    from inversion.artifact import ArtifactError, Inversion
    from inversion.fingerprint import pipeline_fingerprint, scheduler_fingerprint

    inv = Inversion.load(source.artifact)
    name = source.artifact.name
    editor = session.editor
    try:
        inv.check_compatible(
            pipeline_fingerprint(editor.pipe), scheduler_fingerprint(editor.scheduler), inv.num_inference_steps
        )
    except ArtifactError as exc:
        raise CliError(f"{name} was made with another model or scheduler than {session.model}: {exc}") from exc
    asked = {"--prompt": (source.prompt, inv.prompt), "--method": (source.method, inv.method),
             "--steps": (source.steps, inv.num_inference_steps), "--guidance": (source.guidance, inv.guidance_scale)}
    for option, (given, stored) in asked.items():
        if given is not None and given != stored:
            raise CliError(
                f"{name} was inverted with {option} {stored!r}, not {given!r}: drop {option} or invert again"
            )
    if source.size is not None and tuple(source.size) != tuple(inv.size):
        asked_size = f"{source.size[0]}x{source.size[1]}"
        raise CliError(f"{name} was inverted at {inv.size[0]}x{inv.size[1]}, not at --size {asked_size}")
    if source.photo is not None:
        from inversion.image import pixel_sha256, read_rgb

        pixels, _ = read_rgb(source.photo)
        if pixel_sha256(pixels) != inv.image_sha256:
            raise CliError(f"{name} was made from another photo than {source.photo.name}")
    return inv


def invert_photo(session: Session, source: InversionSource, prompt: str) -> Any:
    """Invert the photo with the source's settings (progress bars unless --quiet)."""
    method, steps, guidance = source.resolved()
    info(f"inverting {source.photo.name} ({method}, {steps} steps)", session.quiet)
    return session.editor.invert(
        str(source.photo), prompt, method=method, num_inference_steps=steps, guidance_scale=guidance,
        progress=session.progress, size=source.size, square=source.square,
    )


CLI_NAMES = {"edit": "--edit", "cross_replace_steps": "--cross-replace", "self_replace_steps": "--self-replace",
             "self_replace_max_res": "--self-replace-max-res", "blend_words": "--blend", "subtract_words": "--subtract",
             "blend_threshold": "--blend-threshold", "blend_start": "--blend-start", "equalizer": "--reweight",
             "mask_mode": "--mask-mode"}


def check_words(editor: Any, prompts: list[str], options: EditOptions, steps: int) -> None:
    """Check prompts and every word of --blend/--subtract/--reweight/--cross-replace before the slow part."""
    from p2p_real.spec import EditSpec

    given = {k: v for k, v in options.api_kwargs(len(prompts) - 1).items() if v is not None}
    editor.check(prompts, EditSpec(**given, names=CLI_NAMES), steps)


# ---------------------------------------------------------------------------------------------------------------
# edit


@dataclass
class EditJob:
    """One `edit`: what to invert (or load), the targets, the P2P options and where the files go."""

    source: InversionSource
    targets: list[str]
    options: EditOptions
    mask: Path | None
    mask_mode: str
    seed: int
    out: Path
    name: str
    keep_inversion: bool = True  # write NAME.inv.safetensors when the photo is inverted (not in batches)

    @property
    def writes_masks(self) -> bool:
        return bool(self.options.blend) or self.mask is not None

    def paths(self) -> EditPaths:
        """Every file this edit writes."""
        stem = self.out / self.name
        n = len(self.targets)
        return EditPaths(
            inversion=(
                self.out / f"{self.name}{INVERSION_SUFFIX}"
                if self.keep_inversion and self.source.artifact is None else None
            ),
            images=[Path(f"{stem}.{k}.png") for k in range(n + 1)],
            masks=[Path(f"{stem}.{k}.mask.png") for k in range(1, n + 1)] if self.writes_masks else [],
            grid=Path(f"{stem}.grid.png"),
            sidecar=Path(f"{stem}.json"),
        )

    @property
    def inputs(self) -> list[Path | None]:
        return [*self.source.inputs, self.mask]

    def parameters(self, prompt: str, method: str, steps: int, guidance: float, session_model: str,
                   device: str, dtype: str) -> dict[str, Any]:
        """Everything that determines the pixels (no output paths, no absolute input paths)."""
        return {
            "command": "edit",
            **self.source.parameters(prompt, method, steps, guidance),
            "targets": self.targets,
            **self.options.parameters(),
            "mask": None if self.mask is None else self.mask.name,
            "mask_sha256": None if self.mask is None else file_sha256(self.mask),
            "mask_mode": self.mask_mode,
            "seed": self.seed,
            "model": session_model,
            "device": device,
            "dtype": dtype,
        }

    def argv(self, prompt: str, method: str, steps: int, guidance: float, model: str, device: str,
             dtype: str) -> list[str]:
        """The `edit` command that reproduces this edit (add --out DIR)."""
        argv = ["edit", *self.source.argv(prompt, method, steps, guidance)]
        for target in self.targets:
            argv += ["--target", target]
        argv += self.options.argv()
        if self.mask is not None:
            argv += ["--mask", str(self.mask), "--mask-mode", self.mask_mode]
        return [*argv, "--seed", str(self.seed), "--model", model, "--device", device, "--dtype", dtype]


@dataclass
class EditPaths:
    """The files of one edit."""

    inversion: Path | None
    images: list[Path]  # 0: the reconstruction, then one per target, at the photo's resolution
    masks: list[Path]
    grid: Path
    sidecar: Path

    def all(self) -> list[Path]:
        return [*([self.inversion] if self.inversion else []), *self.images, *self.masks, self.grid, self.sidecar]


def edit_job(args: argparse.Namespace) -> EditJob:
    """An EditJob from `edit` arguments, checked without loading anything heavy."""
    source = inversion_source(args)
    targets = [t for t in args.target]
    if not all(t.strip() for t in targets):
        raise CliError("--target must not be empty")
    options = edit_options(args, len(targets))
    mask = None if args.mask is None else _existing_file(args.mask, "mask")
    if args.mask_mode == "intersect" and not options.blend:
        raise CliError("--mask-mode intersect needs --blend: there is no attention mask to intersect with")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out!r} is a file, not a folder")
    name = args.name or source.name
    return EditJob(source, targets, options, mask, args.mask_mode, args.seed, out, name)


def run_edit(session: Session, job: EditJob, inv: Any) -> Any:
    """Edit the inverted photo: row 0 is its reconstruction, then one row per target."""
    seed_everything(job.seed)
    info(f"editing {len(job.targets)} target(s)", session.quiet)
    return session.editor.edit(
        inv, job.targets, **job.options.api_kwargs(len(job.targets)),
        mask=None if job.mask is None else str(job.mask), mask_mode=job.mask_mode, progress=session.progress,
    )


def write_edit(job: EditJob, inv: Any, result: Any, parameters: dict[str, Any], argv: list[str],
               extra: dict[str, Any], save_inversion: bool) -> list[Path]:
    """Write the inversion (if new), the images, the masks, the grid, and the sidecar last."""
    from masks.visualize import grid_height, labelled_grid, mask_overlay

    paths = job.paths()
    job.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if save_inversion and paths.inversion is not None:
        written.append(Path(inv.save(paths.inversion)))
    prompts = [inv.prompt, *job.targets]
    for k, (path, image) in enumerate(zip(paths.images, result.images)):
        text = png_text(parameters, source_prompt=inv.prompt, prompt=prompts[k], row=str(k))
        written.append(save_png(path, image, text))
    masks = list(result.masks or [])[: len(paths.masks)]
    for k, (path, mask) in enumerate(zip(paths.masks, masks), start=1):
        written.append(save_png(path, mask, png_text(parameters, prompt=prompts[k], row=str(k))))
    rows = [[(inv.original, "photo"), (result.images[0], "reconstruction")]
            + [(img, f"{k}: {p}") for k, (img, p) in enumerate(zip(result.images[1:], job.targets), start=1)]]
    if masks:
        rows.append([None, None] + [(mask_overlay(img, m), f"mask {k}") for k, (img, m) in
                                    enumerate(zip(result.images[1:], masks), start=1)])
    grid = labelled_grid(rows, grid_height(result.images, GRID_HEIGHT))
    written.append(save_png(paths.grid, grid, png_text(parameters)))
    outputs = {
        "inversion": paths.inversion.name if paths.inversion else None,
        "images": [p.name for p in paths.images],
        "masks": [p.name for p in paths.masks[: len(masks)]],
        "grid": paths.grid.name,
    }
    written.append(write_json(paths.sidecar, sidecar("edit", argv, parameters, outputs, **extra)))
    return written


def working_area(session: Session, source: InversionSource) -> tuple[tuple[int, int], tuple[int, ...]]:
    """(size, box) that inverting the photo with these options uses, as inversion.invert computes them."""
    from inversion.image import load_image
    from inversion.vae import vae_scale_factor

    pipe = session.editor.pipe
    factor = vae_scale_factor(pipe.vae)
    side = pipe.unet.config.sample_size * factor
    loaded = load_image(
        source.photo, size=source.size, square=source.square, model_pixels=side * side, multiple=math.lcm(8, factor)
    )
    return tuple(loaded.size), tuple(loaded.box)


def saved_inversion(session: Session, path: Path, source: InversionSource) -> tuple[Any | None, str]:
    """(the inversion saved at `path`, "") if it was made from this photo with these settings on this model,
    else (None, why not)."""
    method, steps, guidance = source.resolved()
    try:
        inv = load_artifact(session, InversionSource(source.photo, path, source.prompt, method, steps, guidance,
                                                     None, False))
    except (CliError, ValueError) as exc:
        return None, one_line(exc)
    if (tuple(inv.size), tuple(inv.box)) != working_area(session, source):
        return None, f"{path.name} covers another part or size of the photo"
    return inv, ""


def prepare_inversion(
    session: Session,
    source: InversionSource,
    check: Callable[[str, int], None],
    saved: Path | None = None,
    overwrite: bool = False,
) -> tuple[Any, str]:
    """The inversion to edit and where it came from: "loaded" (given), "reused" (`saved`, an earlier result of
    the same photo and settings, unless --overwrite) or "fresh". `check(prompt, steps)` runs before inverting."""
    if source.artifact is not None:
        inv = load_artifact(session, source)
        check(inv.prompt, inv.num_inference_steps)
        return inv, "loaded"
    _, steps, _ = source.resolved()
    check(source.prompt, steps)
    if saved is not None and saved.exists() and not overwrite:
        inv, why = saved_inversion(session, saved, source)
        if inv is None:
            raise CliError(f"{saved} exists but does not fit ({why}); pass --overwrite to replace it, "
                           "or choose another --out or --name")
        return inv, "reused"
    return invert_photo(session, source, source.prompt), "fresh"


def cmd_edit(args: argparse.Namespace) -> int:
    """p2p-real edit."""
    job = edit_job(args)
    paths = job.paths()
    saved = paths.inversion  # an inversion left there by `invert` or an earlier edit is reused if it fits
    check_outputs([p for p in paths.all() if p != saved], args.overwrite, job.inputs)
    check_outputs([saved] if saved else [], True, job.inputs)
    check_images(job.source.photo, job.mask)
    session = open_session(args)
    timing: dict[str, float] = {}
    start = time.perf_counter()
    inv, origin = prepare_inversion(
        session, job.source,
        lambda prompt, steps: check_words(session.editor, [prompt, *job.targets], job.options, steps),
        saved, args.overwrite,
    )
    timing["invert_s"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    result = run_edit(session, job, inv)
    timing["edit_s"] = round(time.perf_counter() - start, 3)
    settings = (inv.prompt, inv.method, inv.num_inference_steps, inv.guidance_scale)
    parameters = job.parameters(*settings, session.model, session.device, session.dtype)
    argv = job.argv(*settings, session.model, session.device, session.dtype)
    extra = {"runtime": {**session.runtime, **timing}, "model_fingerprint": inv.model_id}
    written = write_edit(job, inv, result, parameters, argv, extra, save_inversion=origin == "fresh")
    if origin == "reused" and not args.quiet:
        print(f"reused {saved}")
    report_written(written, args.quiet)
    return 0


def report_written(paths: Sequence[Path], quiet: bool) -> None:
    """List the files written, on stdout (unless --quiet)."""
    if not quiet:
        for path in paths:
            print(f"wrote {path}")


# ---------------------------------------------------------------------------------------------------------------
# invert and reconstruct


def default_inversion_path(source: InversionSource) -> Path:
    return Path(DEFAULT_OUT) / f"{source.name}{INVERSION_SUFFIX}"


def cmd_invert(args: argparse.Namespace) -> int:
    """p2p-real invert."""
    source = inversion_source(args)
    if source.artifact is not None:
        raise CliError("invert takes a photo, not an inversion (use `p2p-real reconstruct` to check a saved one)")
    output = Path(args.output).expanduser() if args.output else default_inversion_path(source)
    check_outputs([output], args.overwrite, source.inputs)
    check_images(source.photo)
    session = open_session(args)
    check_words(session.editor, [source.prompt], EditOptions(), source.resolved()[1])
    seed_everything(args.seed)
    inv = invert_photo(session, source, source.prompt)
    output.parent.mkdir(parents=True, exist_ok=True)
    inv.save(output)
    report_written([output], args.quiet)
    if not args.no_report:
        reconstruction = session.editor.reconstruct(inv, progress=session.progress)
        print(reconstruction.report())
    return 0


def recon_paths(out: Path, name: str) -> list[Path]:
    """The reconstruction image, its side-by-side grid and its sidecar."""
    return [out / f"{name}.recon.png", out / f"{name}.recon.grid.png", out / f"{name}.recon.json"]


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """p2p-real reconstruct."""
    from_artifact = args.input is not None and is_artifact(args.input)
    source = inversion_source(args, need_prompt=not from_artifact)
    out = Path(args.out).expanduser()
    paths = recon_paths(out, args.name or source.name)
    check_outputs(paths, args.overwrite, source.inputs)
    check_images(source.photo)
    session = open_session(args)
    seed_everything(args.seed)
    inv, _ = prepare_inversion(
        session, source, lambda prompt, steps: check_words(session.editor, [prompt], EditOptions(), steps)
    )
    rec = session.editor.reconstruct(inv, progress=session.progress)
    print(rec.report())
    from masks.visualize import grid_height, labelled_grid

    settings = (inv.prompt, inv.method, inv.num_inference_steps, inv.guidance_scale)
    parameters = {"command": "reconstruct", **source.parameters(*settings), "seed": args.seed,
                  "model": session.model, "device": session.device, "dtype": session.dtype}
    argv = ["reconstruct", *source.argv(*settings), "--seed", str(args.seed), "--model", session.model,
            "--device", session.device, "--dtype", session.dtype]
    metrics = {k: round(float(getattr(rec, k)), 6) for k in ("psnr", "ssim", "latent_error", "vae_psnr", "vae_ssim")}
    rows = [[(rec.photo, "photo (working size)"),
             (rec.vae_image, f"VAE only: {rec.vae_psnr:.2f} dB"),
             (rec.image, f"{inv.method}: {rec.psnr:.2f} dB, SSIM {rec.ssim:.3f}")]]
    written = [
        save_png(paths[0], rec.image, png_text(parameters, prompt=inv.prompt)),
        save_png(paths[1], labelled_grid(rows, grid_height([rec.photo], GRID_HEIGHT)), png_text(parameters)),
    ]
    outputs = {"image": paths[0].name, "grid": paths[1].name}
    written.append(write_json(paths[2], sidecar("reconstruct", argv, parameters, outputs, metrics=metrics,
                                                runtime=session.runtime)))
    report_written(written, args.quiet)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# attention and generate


def attention_rows(images: list[Any], prompts: list[str], attention: Any) -> list[list[tuple[Any, str]]]:
    """One grid row per prompt: the image, then each word's heat map over it."""
    from masks.visualize import word_heatmaps

    return [[(image, prompt), *word_heatmaps(image, attention.per_word(row))]
            for row, (image, prompt) in enumerate(zip(images, prompts))]


def crop_box(image: Any, box: tuple[int, int, int, int]) -> Any:
    """The part of a photo-resolution image the model worked on (where the maps are)."""
    from masks.visualize import to_rgb

    return to_rgb(image).crop(tuple(box))


def cmd_attention(args: argparse.Namespace) -> int:
    """p2p-real attention."""
    targets = list(args.target or [])
    from_photo = args.input is not None or args.inversion is not None
    if from_photo and args.method is None and args.inversion is None and not is_artifact(args.input or ""):
        args.method = ATTENTION_METHOD
    source = inversion_source(args) if from_photo else None
    if source is None and not (args.prompt or "").strip():
        raise CliError("give a PHOTO (or a saved inversion) and/or --prompt: there is nothing to look at")
    name = args.name or (source.name if source else slug(args.prompt))
    out = Path(args.out).expanduser()
    paths = [out / f"{name}.attention.png", out / f"{name}.attention.npz", out / f"{name}.attention.json"]
    check_outputs(paths, args.overwrite, source.inputs if source else [])
    check_images(source.photo if source else None)
    session = open_session(args)
    options = EditOptions(self_replace=0.4, self_replace_max_res=0.25) if source is None else EditOptions()
    seed_everything(args.seed)
    if source is not None:
        inv, _ = prepare_inversion(
            session, source, lambda prompt, steps: check_words(session.editor, [prompt, *targets], options, steps)
        )
        result = session.editor.edit(inv, targets or [inv.prompt], progress=session.progress)
        prompts = [inv.prompt, *targets]
        images = [crop_box(img, inv.box) for img in [inv.original, *result.images[1 : len(prompts)]]]
        settings = (inv.prompt, inv.method, inv.num_inference_steps, inv.guidance_scale)
        parameters = {"command": "attention", **source.parameters(*settings)}
        argv = ["attention", *source.argv(*settings)]
    else:
        prompts = [args.prompt, *targets]
        steps = args.steps or DEFAULT_STEPS
        guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
        check_words(session.editor, prompts, options, steps)
        width, height = args.size or (None, None)
        result = session.editor.generate(
            prompts, num_inference_steps=steps, guidance_scale=guidance, generator=args.seed,
            height=height, width=width, progress=session.progress,
        )
        images = result.images
        parameters = {"command": "attention", "prompt": args.prompt, "steps": steps, "guidance": guidance,
                      "size": None if args.size is None else list(args.size)}
        argv = ["attention", "--prompt", args.prompt, "--steps", str(steps), "--guidance", repr(guidance)]
        if args.size:
            argv += ["--size", f"{args.size[0]}x{args.size[1]}"]
    for target in targets:
        argv += ["--target", target]
    parameters.update(targets=targets, seed=args.seed, model=session.model, device=session.device, dtype=session.dtype)
    argv += ["--seed", str(args.seed), "--model", session.model, "--device", session.device, "--dtype", session.dtype]
    return write_attention(paths, images, prompts, result.attention, parameters, argv, session, args.quiet)


def write_attention(paths: list[Path], images: list[Any], prompts: list[str], attention: Any,
                    parameters: dict[str, Any], argv: list[str], session: Session, quiet: bool) -> int:
    """The heat-map grid, the maps per word (.npz) and the sidecar."""
    import numpy as np

    from masks.visualize import grid_height, labelled_grid

    if attention is None:
        raise CliError("the model produced no cross-attention maps")
    grid = labelled_grid(attention_rows(images, prompts, attention), grid_height(images, ATTENTION_HEIGHT))
    arrays = {f"row{row}_{k:02d}_{slug(word, 24)}": np.asarray(values, dtype=np.float32)
              for row in range(len(prompts)) for k, (word, values) in enumerate(attention.per_word(row))}
    written = [save_png(paths[0], grid, png_text(parameters))]

    def save_npz(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    written.append(atomic_write(paths[1], save_npz))
    words = [[word for word, _ in attention.per_word(row)] for row in range(len(prompts))]
    outputs = {"grid": paths[0].name, "maps": paths[1].name}
    written.append(write_json(paths[2], sidecar("attention", argv, parameters, outputs, words=words,
                                                runtime=session.runtime)))
    report_written(written, quiet)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """p2p-real generate."""
    prompts = list(args.prompts)
    if not all(p.strip() for p in prompts):
        raise CliError("prompts must not be empty")
    options = edit_options(args, len(prompts) - 1)
    name = args.name or slug(prompts[0])
    out = Path(args.out).expanduser()
    stem = out / name
    images = [Path(f"{stem}.{k}.png") for k in range(len(prompts))]
    masks = [Path(f"{stem}.{k}.mask.png") for k in range(1, len(prompts))] if options.blend else []
    grid, json_path = Path(f"{stem}.grid.png"), Path(f"{stem}.json")
    check_outputs([*images, *masks, grid, json_path], args.overwrite, [])
    session = open_session(args)
    steps = args.steps or DEFAULT_STEPS
    guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
    check_words(session.editor, prompts, options, steps)
    width, height = args.size or (None, None)
    seed_everything(args.seed)
    result = session.editor.generate(
        prompts, **options.api_kwargs(len(prompts) - 1), num_inference_steps=steps, guidance_scale=guidance,
        generator=args.seed, height=height, width=width, progress=session.progress,
    )
    parameters = {"command": "generate", "prompts": prompts, **options.parameters(), "steps": steps,
                  "guidance": guidance, "size": None if args.size is None else list(args.size), "seed": args.seed,
                  "model": session.model, "device": session.device, "dtype": session.dtype}
    argv = ["generate", *prompts, *options.argv(), "--steps", str(steps), "--guidance", repr(guidance)]
    if args.size:
        argv += ["--size", f"{args.size[0]}x{args.size[1]}"]
    argv += ["--seed", str(args.seed), "--model", session.model, "--device", session.device, "--dtype", session.dtype]
    from masks.visualize import grid_height, labelled_grid, mask_overlay

    written = [save_png(p, img, png_text(parameters, prompt=prompts[k], row=str(k)))
               for k, (p, img) in enumerate(zip(images, result.images))]
    result_masks = list(result.masks or [])[: len(masks)]
    written += [save_png(p, m, png_text(parameters, row=str(k)))
                for k, (p, m) in enumerate(zip(masks, result_masks), start=1)]
    rows = [[(img, f"{k}: {p}") for k, (img, p) in enumerate(zip(result.images, prompts))]]
    if result_masks:
        rows.append([None] + [(mask_overlay(img, m), f"mask {k}")
                              for k, (img, m) in enumerate(zip(result.images[1:], result_masks), start=1)])
    grid_image = labelled_grid(rows, grid_height(result.images, GRID_HEIGHT))
    written.append(save_png(grid, grid_image, png_text(parameters)))
    outputs = {"images": [p.name for p in images], "masks": [p.name for p in masks[: len(result_masks)]],
               "grid": grid.name}
    written.append(write_json(json_path, sidecar("generate", argv, parameters, outputs, runtime=session.runtime)))
    report_written(written, args.quiet)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """p2p-real demo: the toy-world scene inverted and edited three ways, as one grid."""
    out = Path(args.out).expanduser()
    grid, photo, json_path = out / "demo.png", out / "demo.photo.png", out / "demo.json"
    check_outputs([grid, photo, json_path], args.overwrite, [])
    if args.model is None:
        args.model = "toy"
    session = open_session(args)
    session.editor.num_inference_steps = args.steps
    from p2p_real.toyworld.demo import run_demo

    start = time.perf_counter()
    result = run_demo(session.editor, progress=session.progress)
    parameters = {"command": "demo", "model": session.model, "device": session.device, "dtype": session.dtype,
                  "steps": args.steps}
    written = [
        save_png(grid, result.grid, png_text(parameters)),
        save_png(photo, result.photo, png_text(parameters, prompt=result.info["caption"])),
    ]
    runtime = {**session.runtime, "demo_s": round(time.perf_counter() - start, 2)}
    argv = ["demo", "--model", session.model, "--device", session.device, "--dtype", session.dtype,
            "--steps", str(args.steps)]
    outputs = {"grid": grid.name, "photo": photo.name, **result.info}
    written.append(write_json(json_path, sidecar("demo", argv, parameters, outputs, runtime=runtime)))
    report_written(written, args.quiet)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# batch

RECIPE_KEYS = {"model", "device", "dtype", "out", "seed", "defaults", "photos", "edits"}
PHOTO_KEYS = {"photo", "prompt", "name", "method", "steps", "guidance", "size", "square", "edits"}
EDIT_KEYS = {"target", "targets", "name", "edit", "cross_replace", "self_replace", "self_replace_max_res", "blend",
             "subtract", "blend_threshold", "blend_start", "mask", "mask_mode", "reweight", "seed"}
_REPEATED = {"target", "targets", "blend", "subtract", "reweight", "cross_replace"}


@dataclass
class BatchJob:
    """One (photo, edit) pair of a recipe."""

    where: str  # "photos[0].edits[1]", for messages
    photo_name: str
    edit_name: str
    job: EditJob
    parameters: dict[str, Any]
    status: str = "to do"  # to do | skipped (finished before) | done | failed: ...
    seconds: float = 0.0
    process: int = 0


def load_recipe(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML recipe (YAML needs pyyaml: pip install 'p2p-real[batch]')."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise CliError(f"{path.name}: YAML recipes need pyyaml (pip install 'p2p-real[batch]'), "
                           "or write the recipe as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"{path.name}: not valid YAML ({' '.join(str(exc).split())})") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path.name}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise CliError(f"{path.name}: a recipe must be a mapping with a 'photos' list")
    _check_keys(data, RECIPE_KEYS, path.name)
    photos = data.get("photos")
    if not isinstance(photos, list) or not photos or not all(isinstance(p, dict) for p in photos):
        raise CliError(f"{path.name}: 'photos' must be a non-empty list of mappings (photo, prompt, edits)")
    return data


def _check_keys(mapping: dict[str, Any], allowed: set[str], where: str = "") -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise CliError(f"{prefix}unknown key {unknown[0]!r} (expected one of {', '.join(sorted(allowed))})")


def _tokens(key: str, value: Any, base: Path) -> list[str]:
    """A recipe value as command-line tokens of option --key (see the batch help for the forms accepted)."""
    option = "--" + key.replace("_", "-")
    if key == "targets":
        option = "--target"
    if key == "square":
        return [option] if value is True else []
    if key == "mask" and isinstance(value, str):
        return [option, str((base / value).expanduser())]
    if key == "size" and isinstance(value, list):
        value = "x".join(str(v) for v in value)
    if key in ("cross_replace", "self_replace") and isinstance(value, list) and len(value) == 2 \
            and all(isinstance(v, (int, float)) for v in value):
        value = f"{value[0]}:{value[1]}"
    if isinstance(value, dict) and key in ("reweight", "cross_replace", "blend", "subtract"):
        value = _mapping_entries(key, value)
    if isinstance(value, list) and key in _REPEATED:
        return [t for v in value for t in (option, str(v))]
    if isinstance(value, (dict, list)) or value is None:
        raise CliError(f"'{key}' cannot be {json.dumps(value)}")
    return [option, str(value)]


def _mapping_entries(key: str, mapping: dict[str, Any]) -> list[str]:
    """{word: value} -> option values: 'word=v' (reweight, cross_replace) or 'src:tgt' (blend, subtract)."""
    sep = ":" if key in ("blend", "subtract") else "="
    joiner = ":" if key == "cross_replace" else ","
    entries = []
    for word, value in mapping.items():
        text = joiner.join(str(v) for v in value) if isinstance(value, list) else str(value)
        entries.append(text if word == "default_" else f"{word}{sep}{text}")
    return entries


def _recipe_name(value: Any, fallback: str) -> str:
    name = fallback if value is None else str(value)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise CliError(f"name {name!r} cannot be a file name")
    return name


def batch_jobs(recipe: dict[str, Any], recipe_path: Path, out: Path, edit_parser: Parser,
               model: str, device: str, dtype: str) -> list[BatchJob]:
    """Expand photos x edits into jobs, each parsed exactly like an `edit` command line."""
    base = recipe_path.parent
    defaults = recipe.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise CliError(f"{recipe_path.name}: 'defaults' must be a mapping")
    _check_keys(defaults, (PHOTO_KEYS | EDIT_KEYS) - {"photo", "prompt", "name", "edits", "target", "targets"},
                f"{recipe_path.name}: defaults")
    shared_edits = recipe.get("edits") or []
    jobs: list[BatchJob] = []
    photo_names: set[str] = set()
    for i, photo in enumerate(recipe["photos"]):
        where = f"{recipe_path.name}: photos[{i}]"
        try:
            jobs += _photo_jobs(photo, i, defaults, shared_edits, recipe, base, out, edit_parser,
                                model, device, dtype, photo_names)
        except UsageError as exc:
            raise CliError(f"{where}: {exc}") from exc
        except CliError as exc:
            raise CliError(exc.args[0] if str(exc).startswith(recipe_path.name) else f"{where}: {exc}") from exc
    return jobs


def _photo_jobs(photo: dict[str, Any], index: int, defaults: dict[str, Any], shared_edits: list[Any],
                recipe: dict[str, Any], base: Path, out: Path, edit_parser: Parser, model: str, device: str,
                dtype: str, photo_names: set[str]) -> list[BatchJob]:
    """The jobs of one photo entry: its own edits, then the recipe's shared ones."""
    _check_keys(photo, PHOTO_KEYS | (EDIT_KEYS - {"target", "targets"}))
    for key in ("photo", "prompt"):
        if not isinstance(photo.get(key), str) or not photo[key].strip():
            raise CliError(f"'{key}' is required (a string)")
    photo_path = (base / photo["photo"]).expanduser()
    photo_name = _recipe_name(photo.get("name"), Path(photo["photo"]).stem)
    if photo_name in photo_names:
        raise CliError(f"two photos are named {photo_name!r}; give one of them a 'name'")
    photo_names.add(photo_name)
    edits = list(photo.get("edits") or []) + list(shared_edits)
    if not edits or not all(isinstance(e, dict) for e in edits):
        raise CliError("needs a non-empty list of 'edits' (mappings with a 'target')")
    jobs, edit_names = [], set()
    for k, entry in enumerate(edits):
        _check_keys(entry, EDIT_KEYS, f"edits[{k}]")
        settings = {"seed": recipe.get("seed", 0), **defaults,
                    **{key: v for key, v in photo.items() if key not in ("photo", "prompt", "name", "edits")},
                    **{key: v for key, v in entry.items() if key != "name"}}
        targets = settings.pop("targets", None) or settings.pop("target", None)
        settings.pop("target", None)
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            raise CliError(f"edits[{k}]: 'target' (or 'targets') must be a prompt or a list of prompts")
        targets = [t.replace("{prompt}", photo["prompt"]) for t in targets]
        edit_name = _recipe_name(entry.get("name"), f"{k + 1:02d}-{slug(targets[0], 40)}")
        if edit_name in edit_names:
            raise CliError(f"edits[{k}]: two edits are named {edit_name!r}; give one of them a 'name'")
        edit_names.add(edit_name)
        argv = [str(photo_path), "--prompt", photo["prompt"], *_tokens("targets", targets, base)]
        for key, value in settings.items():
            argv += _tokens(key, value, base)
        try:
            args = edit_parser.parse_args([*argv, "--out", str(out / photo_name), "--name", edit_name])
        except UsageError as exc:
            raise CliError(f"edits[{k}]: {exc}") from exc
        job = edit_job(args)
        job.keep_inversion = False
        method, steps, guidance = job.source.resolved()
        parameters = job.parameters(photo["prompt"], method, steps, guidance, model, device, dtype)
        jobs.append(BatchJob(f"photos[{index}].edits[{k}]", photo_name, edit_name, job, parameters))
    return jobs


def finished(job: BatchJob, overwrite: bool) -> bool:
    """Whether the job's sidecar shows it done with these parameters; a changed job needs --overwrite."""
    path = job.job.paths().sidecar
    if not path.exists():
        return False
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("parameters")
    except (OSError, ValueError, AttributeError):
        stored = None
    if stored == json.loads(json.dumps(job.parameters)):
        return True
    if not overwrite:
        raise CliError(f"{path} holds another edit (its parameters differ); pass --overwrite to redo it, "
                       "or give the edit another 'name'")
    return False


def inversion_cache(out: Path, job: BatchJob) -> Path:
    """Where the photo's inversion is cached: keyed by photo content, prompt, settings and model."""
    p = job.parameters
    key = json.dumps([p["photo_sha256"], p["prompt"], p["method"], p["steps"], p["guidance"], p["size"],
                      p["square"], p["model"], p["dtype"]])
    return out / "inversions" / f"{job.photo_name}.{hashlib.sha256(key.encode()).hexdigest()[:12]}{INVERSION_SUFFIX}"


def cached_inversion(session: Session, path: Path, job: BatchJob) -> Any:
    """The cached inversion if it matches the photo, settings and model, else a fresh one (saved there)."""
    source = job.job.source
    if path.exists():
        inv, why = saved_inversion(session, path, source)
        if inv is not None:
            return inv
        info(f"{path.name}: cached inversion unusable ({why}), inverting again", session.quiet)
    inv = invert_photo(session, source, source.prompt)
    path.parent.mkdir(parents=True, exist_ok=True)
    inv.save(path)
    return inv


def plan(jobs: list[BatchJob], n_processes: int) -> dict[str, int]:
    """Assign photos to processes (a photo's edits stay together, so its inversion is made once), balanced."""
    pending: dict[str, int] = {}
    for job in jobs:
        if job.status == "to do":
            pending[job.photo_name] = pending.get(job.photo_name, 0) + 1
    load = [0] * n_processes
    owner: dict[str, int] = {}
    for name, count in sorted(pending.items(), key=lambda item: (-item[1], item[0])):
        rank = min(range(n_processes), key=lambda r: (load[r], r))
        owner[name] = rank
        load[rank] += count
    return owner


def distributed() -> tuple[Any, int, int]:
    """(accelerate state or None, process index, number of processes) from `accelerate launch` or torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None, 0, 1
    try:
        from accelerate import PartialState
    except ImportError:  # launched by torchrun without accelerate: split by the environment, no barrier
        return None, int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
    import torch

    state = PartialState(cpu=not torch.cuda.is_available())  # without GPUs: processes talk over gloo
    return state, state.process_index, state.num_processes


def cmd_batch(args: argparse.Namespace) -> int:
    """p2p-real batch."""
    recipe_path = _existing_file(args.recipe, "recipe")
    recipe = load_recipe(recipe_path)
    out = Path(args.out).expanduser() if args.out else recipe_path.parent / str(recipe.get("out", DEFAULT_OUT))
    for option, fallback in (("model", None), ("device", "auto"), ("dtype", "auto")):
        if getattr(args, option) is None:
            setattr(args, option, recipe.get(option, fallback))
    if args.model is not None and "model" in recipe and args.model == recipe["model"]:
        local = recipe_path.parent / str(args.model)  # a local model in the recipe is relative to the recipe
        args.model = str(local) if local.exists() else args.model
    model = resolve_model(args.model)
    jobs = batch_jobs(recipe, recipe_path, out, args.edit_parser, model, args.device, args.dtype)
    for job in jobs:
        check_outputs(job.job.paths().all(), True, job.job.inputs)
        if finished(job, args.overwrite):
            job.status = "skipped"
    if args.dry_run:
        print_summary(jobs, 0.0)
        return 0
    state, rank, n_processes = distributed()
    owner = plan(jobs, n_processes)
    pending = [job for job in jobs if job.status == "to do"]
    mine = [job for job in pending if owner[job.photo_name] == rank]
    start = time.perf_counter()
    for pair in dict.fromkeys((job.job.source.photo, job.job.mask) for job in pending):
        check_images(*pair)
    if pending:
        device = str(state.device) if state is not None and args.device == "auto" else None
        session = open_session(args, device)
        for job in pending:  # every process checks every job, so that all stop together on a bad word
            try:
                steps = job.job.source.resolved()[1]
                check_words(session.editor, [job.job.source.prompt, *job.job.targets], job.job.options, steps)
            except ValueError as exc:
                raise CliError(f"{recipe_path.name}: {job.where} ({job.photo_name}/{job.edit_name}): {exc}") from exc
        run_batch(session, mine, out, rank, args.debug)
    elapsed = time.perf_counter() - start
    if state is not None and n_processes > 1:
        from accelerate.utils import gather_object

        state.wait_for_everyone()
        reports = gather_object([(j.where, j.status, j.seconds, j.process) for j in mine])
        by_where = {where: rest for where, *rest in reports}
        for job in jobs:
            if job.where in by_where:
                job.status, job.seconds, job.process = by_where[job.where]
        if state.is_main_process:
            print_summary(jobs, elapsed)
    elif n_processes > 1:  # launched without accelerate: each process reports its own work
        ids = {id(job) for job in mine}
        print_summary([j for j in jobs if id(j) in ids or (rank == 0 and j.status == "skipped")], elapsed)
    else:
        print_summary(jobs, elapsed)
    return EXIT_ERROR if any(j.status.startswith("failed") for j in jobs) else 0


def run_batch(session: Session, jobs: list[BatchJob], out: Path, rank: int, debug: bool) -> None:
    """Run this process's jobs photo by photo: one inversion per photo, reused by its edits."""
    inversions: dict[str, Any] = {}
    for n, job in enumerate(jobs, start=1):
        info(f"[{n}/{len(jobs)}] {job.photo_name} / {job.edit_name}", session.quiet)
        start = time.perf_counter()
        try:
            if job.photo_name not in inversions:
                inversions[job.photo_name] = cached_inversion(session, inversion_cache(out, job), job)
            inv = inversions[job.photo_name]
            result = run_edit(session, job.job, inv)
            p = job.parameters
            argv = job.job.argv(inv.prompt, inv.method, inv.num_inference_steps, inv.guidance_scale,
                                p["model"], p["device"], p["dtype"])
            extra = {"runtime": {**session.runtime, "edit_s": round(time.perf_counter() - start, 3)},
                     "model_fingerprint": inv.model_id, "process": rank}
            write_edit(job.job, inv, result, job.parameters, argv, extra, save_inversion=False)
            job.status = "done"
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if debug:
                raise
            job.status = f"failed: {one_line(exc)}"
            print(f"{PROG}: error: {job.photo_name}/{job.edit_name}: {one_line(exc)}", file=sys.stderr)
        job.seconds = round(time.perf_counter() - start, 2)
        job.process = rank


def print_summary(jobs: list[BatchJob], seconds: float) -> None:
    """A table of every job: photo, edit, status, seconds, process; then the totals."""
    header = ("photo", "edit", "status", "seconds", "process")
    table = [header] + [(j.photo_name, j.edit_name, j.status, f"{j.seconds:.1f}", str(j.process)) for j in jobs]
    widths = [max(len(row[c]) for row in table) for c in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    counts = {s: sum(j.status.split(":")[0] == s for j in jobs) for s in ("done", "skipped", "failed", "to do")}
    print(f"{counts['done']} done, {counts['skipped']} skipped (finished before), {counts['failed']} failed, "
          f"{counts['to do']} to do, in {seconds:.1f} s")


# ---------------------------------------------------------------------------------------------------------------
# env


def auto_device() -> tuple[str, str]:
    """(device, dtype) that --device auto / --dtype auto pick: the rule of p2p_real.load_pipeline, without
    importing diffusers (a test checks that both agree)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", "float16"
    mps = getattr(torch.backends, "mps", None)
    return ("mps" if mps is not None and mps.is_available() else "cpu"), "float32"


def cmd_env(args: argparse.Namespace) -> int:
    """p2p-real env: what a bug report needs (imports torch and huggingface_hub, not the model code)."""
    import platform

    import huggingface_hub
    import torch

    device, dtype = auto_device()
    model = resolve_model(None)
    cached = model if Path(model).exists() else huggingface_hub.try_to_load_from_cache(model, "model_index.json")
    cuda = torch.cuda.is_available()
    report = {
        **versions(),
        "accelerate": package_version("accelerate"),
        "pyyaml": package_version("pyyaml"),
        "platform": f"{platform.system()} {platform.machine()}",
        "cuda": f"{torch.version.cuda} ({torch.cuda.device_count()} device(s))" if cuda else "not available",
        "gpu": torch.cuda.get_device_name(0) if cuda else "none",
        "device (auto)": device,
        "dtype (auto)": dtype,
        "threads": str(torch.get_num_threads()),
        "default model": model,
        "default model cached": "yes" if isinstance(cached, str) else "no",
        "model cache": str(huggingface_hub.constants.HF_HUB_CACHE),
        "offline": "yes" if huggingface_hub.constants.HF_HUB_OFFLINE else "no",
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key.ljust(width)}  {value}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# The parser


def add_model_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("model")
    group.add_argument("--model", metavar="ID|DIR|FILE", default=None,
                       help=f"hub id, local diffusers folder, .safetensors/.ckpt file, or 'toy' for the shipped "
                            f"toy-world model (default: ${MODEL_ENV}, else {DEFAULT_MODEL}; demo: toy)")
    group.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    group.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: float16 on CUDA, else float32")


def add_run_options(p: argparse.ArgumentParser, overwrite: bool = True) -> None:
    group = p.add_argument_group("run")
    if overwrite:
        group.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines")
    group.add_argument("--debug", action="store_true", help="show tracebacks and library warnings")


def add_output_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("output")
    group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
    group.add_argument("--name", help="file name stem of the outputs (default: the photo's stem)")


def add_inversion_options(p: argparse.ArgumentParser, method_help: str) -> None:
    group = p.add_argument_group("inversion")
    group.add_argument("-p", "--prompt", help="caption of the photo (the source prompt)")
    group.add_argument("--method", choices=METHODS, default=None, help=method_help)
    group.add_argument("--steps", type=positive_int, default=None, help=f"DDIM steps (default: {DEFAULT_STEPS})")
    group.add_argument("--guidance", type=guidance_value, default=None,
                       help=f"classifier-free guidance scale (default: {DEFAULT_GUIDANCE})")
    group.add_argument("--size", type=size_value, default=None, metavar="WxH",
                       help="working size (default: the photo's aspect ratio at the model's pixel count)")
    group.add_argument("--square", action="store_true", help="centre-crop a square working image")
    group.add_argument("--seed", type=seed_value, default=0, help="random seed (default: 0)")


def add_edit_options(p: argparse.ArgumentParser, self_default: float, max_res_default: float) -> None:
    group = p.add_argument_group("Prompt-to-Prompt")
    group.add_argument("--edit", choices=EDIT_KINDS, default="auto",
                       help="replace (word swap), refine (add words), reweight, or auto (default)")
    group.add_argument("--cross-replace", type=window_entry, action="append", metavar="F|A:B|WORD=F",
                       help="cross-attention injection: fraction of the steps, a START:END range, or a word's own "
                            "window (repeatable; default 0.8)")
    group.add_argument("--self-replace", type=window, default=self_default, metavar="F|A:B",
                       help=f"self-attention injection window (default {self_default})")
    group.add_argument("--self-replace-max-res", type=fraction, default=max_res_default, metavar="F",
                       help=f"inject self-attention only in layers up to this fraction of the latent side "
                            f"(default {max_res_default})")
    group.add_argument("--blend", type=blend_pair, action="append", metavar="SRC:TGT",
                       help="local blend: edit only where SRC (source prompt) and TGT (target prompt) attend; "
                            "TGT may list one word per target (cat:dog,lion); SRC alone uses the same word in "
                            "both; quote phrases ('red car:blue truck'); repeatable")
    group.add_argument("--subtract", type=blend_pair, action="append", metavar="SRC:TGT",
                       help="remove these words' regions from the local-blend mask (repeatable)")
    group.add_argument("--blend-threshold", type=fraction, default=0.3, metavar="F",
                       help="local-blend mask threshold (default 0.3)")
    group.add_argument("--blend-start", type=fraction, default=0.2, metavar="F",
                       help="start local blend after this fraction of the steps (default 0.2)")
    group.add_argument("--reweight", type=reweight_entry, action="append", metavar="WORD=F",
                       help="scale a target word's attention, e.g. fluffy=2 (or fluffy=2,0.5 per target; repeatable)")


EDIT_EPILOG = f"""\
examples:
  {PROG} edit cat.jpg -p "a cat sitting on a wall" -t "a dog sitting on a wall" --blend cat:dog
  {PROG} edit cat.jpg -p "a cat sitting on a wall" -t "a fluffy cat sitting on a wall" --reweight fluffy=2
  {PROG} edit p2p-out/cat.inv.safetensors -t "a lion sitting on a wall" --blend cat:lion --name lion

outputs (in --out, NAME = the photo's stem or --name):
  NAME.inv.safetensors   the inversion (reuse it as INPUT or --inversion to edit again without inverting)
  NAME.0.png             the reconstruction, NAME.1.png ... one edit per --target, at the photo's resolution
  NAME.K.mask.png        the edit masks (with --blend or --mask)
  NAME.grid.png          photo | reconstruction | edits, masks below
  NAME.json              parameters and the command that reproduces the images (also in the PNG text chunks)
"""

BATCH_EPILOG = f"""\
recipe (JSON, or YAML with pip install 'p2p-real[batch]'); paths are relative to the recipe:
  {{"model": "...", "out": "results", "defaults": {{"method": "null-text", "steps": 50}},
   "photos": [{{"photo": "cat.jpg", "prompt": "a cat sitting on a wall",
               "edits": [{{"target": "a dog sitting on a wall", "blend": "cat:dog"}},
                         {{"target": "a fluffy cat sitting on a wall", "reweight": {{"fluffy": 2}}}}]}}],
   "edits": [{{"target": "{{prompt}} at night"}}]}}
  photo keys: photo, prompt, name, method, steps, guidance, size, square, edits (and any edit key as a default)
  edit keys: target(s), name, edit, cross_replace, self_replace, self_replace_max_res, blend, subtract,
             blend_threshold, blend_start, mask, mask_mode, reweight, seed ('edits' at the top level apply to
             every photo; {{prompt}} stands for the photo's prompt)
outputs: OUT/PHOTO/EDIT.* as for `{PROG} edit`, inversions cached in OUT/inversions/.
Run it again to resume: finished edits are skipped. Under `accelerate launch` the photos are split across
the processes (each output is written by one process).
"""


class Command(NamedTuple):
    """A subcommand: its name, one-line help, argument builder and runner."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    epilog: str = ""


def edit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", metavar="PHOTO", help="the photo, or a saved inversion (.safetensors)")
    p.add_argument("-t", "--target", action="append", required=True, help="target prompt (repeatable)")
    p.add_argument("--inversion", metavar="FILE", help="reuse a saved inversion of the photo")
    add_inversion_options(p, f"inversion method (default: {DEFAULT_METHOD})")
    add_edit_options(p, self_default=0.6, max_res_default=0.5)
    group = p.add_argument_group("user mask")
    group.add_argument("--mask", metavar="FILE", help="mask image of the photo (white = edit)")
    group.add_argument("--mask-mode", choices=MASK_MODES, default="replace",
                       help="replace the attention mask, or intersect with it (needs --blend)")
    add_output_options(p)
    add_model_options(p)
    add_run_options(p)


def invert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="PHOTO", help="the photo to invert")
    add_inversion_options(p, f"inversion method (default: {DEFAULT_METHOD})")
    p.add_argument("-o", "--output", metavar="FILE",
                   help=f"inversion file (default: {DEFAULT_OUT}/PHOTO{INVERSION_SUFFIX})")
    p.add_argument("--no-report", action="store_true", help="skip the reconstruction report")
    add_model_options(p)
    add_run_options(p)


def reconstruct_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="PHOTO|INVERSION", help="a photo (inverted first) or a saved inversion")
    add_inversion_options(p, f"inversion method for a photo (default: {DEFAULT_METHOD})")
    add_output_options(p)
    add_model_options(p)
    add_run_options(p)


def attention_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", metavar="PHOTO|INVERSION",
                   help="a photo or saved inversion; without one, generate from --prompt and --seed")
    p.add_argument("-t", "--target", action="append", help="also show the maps of a target prompt (repeatable)")
    p.add_argument("--inversion", metavar="FILE", help="reuse a saved inversion of the photo")
    add_inversion_options(p, f"inversion method for a photo (default: {ATTENTION_METHOD}, fast)")
    add_output_options(p)
    add_model_options(p)
    add_run_options(p)


def generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="the source prompt, then target prompts")
    add_edit_options(p, self_default=0.4, max_res_default=0.25)
    group = p.add_argument_group("sampling")
    group.add_argument("--steps", type=positive_int, default=None, help=f"DDIM steps (default: {DEFAULT_STEPS})")
    group.add_argument("--guidance", type=guidance_value, default=None,
                       help=f"classifier-free guidance scale (default: {DEFAULT_GUIDANCE})")
    group.add_argument("--seed", type=seed_value, default=0, help="seed of the shared starting noise (default: 0)")
    group.add_argument("--size", type=size_value, default=None, metavar="WxH",
                       help="image size (default: the model's)")
    add_output_options(p)
    add_model_options(p)
    add_run_options(p)


def batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", metavar="RECIPE", help="JSON or YAML recipe: photos x edits")
    p.add_argument("--out", metavar="DIR",
                   help=f"output folder (default: the recipe's 'out', else {DEFAULT_OUT}, next to the recipe)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs and what is finished, load nothing")
    add_model_options(p)
    p.set_defaults(device=None, dtype=None)
    add_run_options(p)


def env_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(quiet=True)


def demo_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("output")
    group.add_argument("--out", default="p2p-demo", metavar="DIR", help="output folder (default: p2p-demo)")
    group.add_argument("--steps", type=positive_int, default=50, help="DDIM steps (default: 50)")
    add_model_options(p)
    p.set_defaults(model=None)
    add_run_options(p)


COMMANDS: list[Command] = [
    Command("edit", "edit a photo: invert it, then apply Prompt-to-Prompt edits", edit_arguments, cmd_edit,
            EDIT_EPILOG),
    Command("invert", "invert a photo and save the inversion; print the reconstruction report",
            invert_arguments, cmd_invert),
    Command("reconstruct", "reconstruct a photo (or saved inversion): report and side-by-side image",
            reconstruct_arguments, cmd_reconstruct),
    Command("attention", "per-word cross-attention heat maps of a photo or a prompt", attention_arguments,
            cmd_attention),
    Command("generate", "synthetic Prompt-to-Prompt: a source prompt and its edits from one seed",
            generate_arguments, cmd_generate),
    Command("batch", "run a recipe of photos x edits (resumable; splits under accelerate launch)",
            batch_arguments, cmd_batch, BATCH_EPILOG),
    Command("env", "versions, device, dtype and model cache, for bug reports", env_arguments, cmd_env),
    Command("demo", "offline demo on the shipped toy-world model: invert a scene, swap, refine, reweight",
            demo_arguments, cmd_demo),
]


def build_parser() -> Parser:
    """The `p2p-real` parser with one subparser per entry of COMMANDS."""
    parser = Parser(prog=PROG, description="Prompt-to-Prompt editing of real photos (null-text inversion).")
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help, epilog=command.epilog or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
        if command.name == "edit":
            edit_parser = p
    parser.set_defaults(edit_parser=edit_parser)
    return parser


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message with whitespace collapsed (the type for unexpected ones)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror.lower()}"
    else:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, (CliError, ValueError, OSError)):
            text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run `p2p-real` with `argv` (default: sys.argv[1:]); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as exc:
        print(f"{exc.prog}: error: {' '.join(str(exc).split())} (see {exc.prog} --help)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (finished outputs are kept; run the same command again to resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if "--debug" in argv:  # as given: the arguments may not have parsed
            raise
        hint = "" if isinstance(exc, (CliError, ValueError, OSError)) else " (run with --debug for the traceback)"
        print(f"{PROG}: error: {one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
