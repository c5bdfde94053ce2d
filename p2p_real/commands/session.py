"""What the commands do around the library: read and check inputs and outputs, load the model once,
talk to the user (status lines, the files written) and describe the run for the sidecar."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2p_real.commands.options import MODEL_ENV, PROG, CliError
from p2p_real.defaults import DEFAULT_MODEL, TOY_MODEL

if TYPE_CHECKING:
    from p2p_real.batches.photo_plan import PhotoPlan, PhotoRequest


def existing_file(path: str | os.PathLike, what: str) -> Path:
    """The absolute path of an existing file, or a CliError naming it."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CliError(f"{what} {str(path)!r} not found")
    if not p.is_file():
        raise CliError(f"{what} {str(path)!r} is not a file")
    return Path(os.path.abspath(p))  # a link keeps its own name (outputs are named after it), not its target's


def is_artifact(path: str | os.PathLike) -> bool:
    """Whether a path names a saved inversion (a .safetensors file) rather than a photo."""
    return str(path).lower().endswith(".safetensors")


def planned(args: argparse.Namespace, request: PhotoRequest) -> tuple[Session, PhotoPlan]:
    """The command's preflight and plan (p2p_real.batches.photo_plan): the request's files checked, then the model
    loaded, the request planned (words, a saved inversion, the cache; what it will do shown as status lines) and
    torch seeded with --seed."""
    from p2p_real.batches.photo_plan import plan_photo

    request.check_files()
    loaded = open_session(args)
    plan = plan_photo(loaded.editor, request)
    for line in plan.describe():  # a status line each (see info)
        loaded.log(line)
    seed_everything(args.seed)
    return loaded, plan


def out_folder(text: str) -> Path:
    """--out as a path; a CliError if it names a file."""
    out = Path(text).expanduser()
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {text!r} is a file, not a folder")
    return out


def output_name(given: str | None, default: str) -> str:
    """--name (a plain file name, else a CliError), else `default` (an input's stem) made one."""
    from p2p_real.files.outputs import check_name

    try:
        return check_name(given, "--name") if given is not None else check_name(default.lstrip(".") or "photo")
    except ValueError as exc:
        raise CliError(str(exc).replace("the output folder", "--out")) from exc


def shown_path(path: str | os.PathLike) -> str:
    """A local path as sidecars record it: relative to the current folder when inside it, else its file name
    (the folders of this machine stay private)."""
    p = Path(os.fspath(path))
    if not p.is_absolute():
        return str(p)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return p.name


def info(message: str, quiet: bool) -> None:
    """A status line on stderr when it is a terminal, unless --quiet (logs and pipes get only errors)."""
    if not quiet and sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


def report_written(paths: Sequence[Path], quiet: bool) -> None:
    """List the files written, on stdout (unless --quiet)."""
    if not quiet:
        for path in paths:
            print(f"wrote {path}")


def reproduction(argv: list[str]) -> dict[str, Any]:
    """Sidecar keys: the command's arguments and the shell line that makes the same outputs again."""
    return {"argv": argv, "reproduce": shlex.join([PROG, *argv]) + " --out DIR"}


def resolve_model(model: str | None) -> str:
    """--model, else $P2P_REAL_MODEL, else the documented hub id; local paths become absolute."""
    text = model if model is not None else os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if text == TOY_MODEL:
        return text
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


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
    handlers = [
        *diffusers_logging.get_logger("diffusers").handlers,
        *transformers_logging.get_logger("transformers").handlers,
        logging.lastResort,
    ]
    for handler in handlers:  # what reaches the terminal stays one line per message (the one-line error rule)
        if handler is not None and one_line_record not in handler.filters:
            handler.addFilter(one_line_record)


def one_line_record(record: logging.LogRecord) -> bool:
    """A logging filter that folds a record's message onto one line (a library's multi-line warning)."""
    message = record.getMessage()
    if "\n" in message or "\r" in message:
        record.msg, record.args = " ".join(message.split()), ()
    return True


@dataclass
class Session:
    """A loaded model and how the command talks to the user."""

    editor: Any
    model: str  # as it goes into argv: a hub id, "toy", or an absolute local path
    device: str  # as given ("auto", "cpu", ...)
    dtype: str
    quiet: bool
    runtime: dict[str, Any]
    load_options: list[str] = field(default_factory=list)  # the model's additions and placement, as options

    @property
    def progress(self) -> bool:
        """Show progress bars (not with --quiet)."""
        return not self.quiet

    def log(self, message: str) -> None:
        """A status line (see info)."""
        info(message, self.quiet)

    def run_options(self) -> list[str]:
        """--model, --device, --dtype and the other model options as this run used them, for a reproduction
        command (local files relative to the current folder, or by their names: see shown_path)."""
        model = shown_path(self.model) if os.path.isabs(self.model) else self.model
        return ["--model", model, "--device", self.device, "--dtype", self.dtype, *self.load_options]


def load_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """load_pipeline's keyword arguments from the model options (those not given left out)."""
    given = {
        "variant": getattr(args, "variant", None),
        "revision": getattr(args, "revision", None),
        "loras": getattr(args, "lora", None) or [],
        "embeddings": getattr(args, "embedding", None) or [],
        "offload": getattr(args, "offload", None),
        "vae_tiling": getattr(args, "vae_tiling", None),
    }
    return {key: value for key, value in given.items() if value not in (None, [])}


def load_options(args: argparse.Namespace) -> list[str]:
    """The model options beyond --model/--device/--dtype, as a reproduction command shows them."""
    given = load_arguments(args)
    argv = [x for key in ("variant", "revision", "offload") if key in given for x in (f"--{key}", given[key])]
    for lora in given.get("loras", []):
        argv += ["--lora", f"{shown_path(lora.path.resolve())}:{lora.scale!r}"]
    for emb in given.get("embeddings", []):
        argv += ["--embedding", f"{shown_path(emb.path.resolve())}:{emb.word}"]
    if "vae_tiling" in given:
        argv.append("--vae-tiling" if given["vae_tiling"] else "--no-vae-tiling")
    return argv


def model_request(args: argparse.Namespace) -> dict[str, Any]:
    """What besides --model/--device/--dtype decides a batch job's pixels: the model's additions (not the
    placement), as JSON; empty when there are none, so earlier batches' requests stay the same."""
    given = load_arguments(args)
    request: dict[str, Any] = {key: given[key] for key in ("variant", "revision") if key in given}
    if given.get("loras"):
        request["loras"] = [f"{lora.path.resolve()}:{lora.scale!r}" for lora in given["loras"]]
    if given.get("embeddings"):
        request["embeddings"] = [f"{emb.path.resolve()}:{emb.word}" for emb in given["embeddings"]]
    return request


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
        pipe = p2p_real.load_pipeline(model, device=device, dtype=args.dtype, **load_arguments(args))
    except p2p_real.ModelLoadError as exc:
        raise CliError(f"{exc} (--model DIR or --model FILE)") from exc
    editor = p2p_real.Editor(pipe, **toy_editor_options(model))
    runtime = {
        "device": str(editor.device),
        "dtype": str(editor.dtype).removeprefix("torch."),
        "load_s": round(time.perf_counter() - start, 3),
        "threads": torch.get_num_threads(),  # float results can depend on it
    }
    return Session(editor, model, device, args.dtype, args.quiet, runtime, load_options(args))


def toy_editor_options(model: str) -> dict[str, Any]:
    """Editor options of the shipped toy-world model (finer attention maps, see its ATTENTION_RES); none else."""
    if model != TOY_MODEL:
        return {}
    from p2p_real.toyworld.model import ATTENTION_RES

    return {"attention_res": ATTENTION_RES}


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (the edit loop itself is deterministic)."""
    import torch

    torch.manual_seed(seed)


@dataclass
class Inputs:
    """What a command edits: a photo (inverted on the spot), a saved inversion, or both (the inversion
    checked against the photo)."""

    photo: Path | None
    inversion: Path | None

    @property
    def name(self) -> str:
        """Default output name: the photo's stem, else the inversion's ('cat.inv.safetensors' -> 'cat')."""
        if self.photo is not None:
            return self.photo.stem
        if self.inversion is not None:
            from inversion.storage.files import INVERSION_SUFFIX

            name = self.inversion.name
            for suffix in (INVERSION_SUFFIX, ".safetensors"):
                if name.lower().endswith(suffix):
                    return name[: -len(suffix)] or "photo"
        return "photo"

    @property
    def files(self) -> list[Path | None]:
        """The input files (None where not given), never to be written over."""
        return [self.photo, self.inversion]

    def argv(self, inv: Any, args: argparse.Namespace) -> list[str]:
        """The input and inversion options spelled out in full, with the inversion's own settings (files as
        shown_path records them)."""
        argv = [shown_path(self.photo)] if self.photo is not None else []
        if self.inversion is not None:
            argv += ["--inversion", shown_path(self.inversion)]
        from inversion.methods import METHOD_NAMES

        method = ["--method", inv.method] if inv.method in METHOD_NAMES else []  # a chain is no --method choice
        argv += [
            "--prompt",
            inv.prompt,
            *method,
            "--steps",
            str(inv.num_inference_steps),
            "--guidance",
            repr(inv.guidance_scale),
        ]
        if args.size is not None:
            argv += ["--size", f"{args.size[0]}x{args.size[1]}"]
        return [*argv, "--square"] if args.square else argv


def read_inputs(args: argparse.Namespace, need_prompt: bool = True) -> Inputs:
    """INPUT / --inversion / --prompt: check that the files exist and that a photo comes with its caption."""
    photo = inversion = None
    if args.input is not None:
        if is_artifact(args.input):
            inversion = existing_file(args.input, "inversion")
        else:
            photo = existing_file(args.input, "photo")
    if getattr(args, "inversion", None) is not None:
        if inversion is not None:
            raise CliError("give the inversion once: as INPUT or with --inversion, not both")
        inversion = existing_file(args.inversion, "inversion")
    if photo is None and inversion is None:
        raise CliError("give a PHOTO to invert, or a saved inversion (INPUT.inv.safetensors or --inversion FILE)")
    if inversion is None and need_prompt and not (args.prompt or "").strip():
        raise CliError("--prompt is required to invert a photo: describe the photo, e.g. --prompt 'a cat on a wall'")
    return Inputs(photo, inversion)
