"""Options the `p2p-real` commands share, and how they become settings objects.

Loads no torch: argument types parse text with p2p_real.notation and check ranges with
inversion.validation, so `p2p-real --help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from inversion import validation
from inversion.methods import DEFAULT_METHOD, METHOD_NAMES
from inversion.settings import DEFAULT_GUIDANCE, DEFAULT_STEPS, InversionSettings
from p2p_real import notation
from p2p_real.defaults import DEFAULT_MODEL, DTYPES, OFFLOAD_MODES, TOY_MODEL
from p2p_real.defaults import PROG as PROG  # the commands take it from here
from p2p_real.models.adapters import EmbeddingFile, LoraFile, parse_embedding, parse_lora
from p2p_real.spec import FLAGS, SCHEMA, EditSpec

MODEL_ENV = "P2P_REAL_MODEL"
DEFAULT_OUT = "p2p-out"
SPEC_NAMES = FLAGS  # how the command line spells the edit settings, for messages (p2p_real.spec)
SETTINGS_NAMES = {
    "prompt": "--prompt",
    "method": "--method",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "size": "--size",
    "square": "--square",
}

T = TypeVar("T")


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


def arg_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser that raises ValueError: its message becomes argparse's."""

    def convert(text: str) -> T:
        """Parse `text`; a ValueError becomes argparse's error."""
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


positive_int = arg_type(lambda text: validation.whole_number(notation.parse_whole(text), ""))
steps_value = arg_type(lambda text: validation.steps(notation.parse_whole(text), ""))
seed_value = arg_type(lambda text: validation.seed(notation.parse_whole(text), ""))
guidance_value = arg_type(lambda text: validation.number(notation.parse_number(text), "", minimum=0))
size_value = arg_type(notation.parse_size)


def parse_quality(text: str) -> int:
    """A JPEG/WebP quality: a whole number from 1 to 100."""
    value = validation.whole_number(notation.parse_whole(text), "")
    if value > 100:
        raise ValueError(f"{text!r} is more than 100")
    return value


quality_value = arg_type(parse_quality)


def _existing(parsed: LoraFile | EmbeddingFile) -> LoraFile | EmbeddingFile:
    """The parsed file option, once its file is known to exist."""
    if not parsed.path.is_file():
        raise ValueError(f"{str(parsed.path)!r} " + ("is not a file" if parsed.path.exists() else "not found"))
    return parsed


lora_value = arg_type(lambda text: _existing(parse_lora(text)))
embedding_value = arg_type(lambda text: _existing(parse_embedding(text)))


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model, --device, --dtype, the model's own additions (--variant, --revision, --lora, --embedding) and
    small-GPU options (--offload, --vae-tiling)."""
    group = p.add_argument_group("model")
    group.add_argument(
        "--model",
        metavar="ID|DIR|FILE",
        default=None,
        help=f"SD 1.x/2.x or SDXL: hub id, local diffusers folder, .safetensors/.ckpt file, or "
        f"'{TOY_MODEL}' for the shipped toy-world model (default: ${MODEL_ENV}, else "
        f"{DEFAULT_MODEL}; demo: toy)",
    )
    group.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    group.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", *DTYPES),
        help="auto: float16 on CUDA, else float32 (float16 also runs on Apple GPUs: mps)",
    )
    group.add_argument("--variant", help="weights variant of a diffusers folder or hub id (fp16: *.fp16.safetensors)")
    group.add_argument("--revision", help="hub commit, branch or tag of the model")
    group.add_argument(
        "--lora",
        type=lora_value,
        action="append",
        metavar="FILE[:SCALE]",
        help="merge a LoRA into the model at SCALE (default 1; repeatable); needs peft",
    )
    group.add_argument(
        "--embedding",
        type=embedding_value,
        action="append",
        metavar="FILE[:WORD]",
        help="a textual-inversion embedding, used in prompts as WORD (default: the file's stem; repeatable)",
    )
    group.add_argument(
        "--offload",
        choices=OFFLOAD_MODES,
        help="for GPUs with little memory: 'model' keeps one model at a time on the GPU, "
        "'sequential' one layer at a time (least memory, slowest); needs accelerate",
    )
    group.add_argument(
        "--vae-tiling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="encode and decode large images in tiles (default: only above 1024x1024 pixels)",
    )


def add_run_options(p: argparse.ArgumentParser, overwrite: bool = True) -> None:
    """--overwrite (optional), --quiet, --debug."""
    group = p.add_argument_group("run")
    if overwrite:
        group.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines")
    group.add_argument("--debug", action="store_true", help="show tracebacks and library warnings")


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--out and --name."""
    group = p.add_argument_group("output")
    group.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
    group.add_argument("--name", help="file name stem of the outputs (default: the photo's stem)")


def add_format_options(p: argparse.ArgumentParser) -> None:
    """--format and --quality of the result images."""
    group = p.add_argument_group("image files")
    group.add_argument(
        "--format",
        choices=("png", "jpg", "webp"),
        help="format of the result images (default: the extension of --name, else png; png keeps "
        "the pixels away from the edit exactly the photo's)",
    )
    group.add_argument("--quality", type=quality_value, help="JPEG/WebP quality, 1-100 (default 95)")


def output_format(args: argparse.Namespace, default: str) -> tuple[str, str]:
    """(output name stem, image format): --name (whose extension may give the format) or `default`, and
    --format."""
    from p2p_real.files.image_files import image_format

    try:
        fmt, stem = image_format(getattr(args, "format", None), args.name)
    except ValueError as exc:
        raise CliError(f"--format/--name: {exc}") from exc
    if getattr(args, "quality", None) is not None and fmt == "png":
        raise CliError("--quality applies to jpg and webp images (give --format jpg or webp); png is lossless")
    return stem or default, fmt


def format_argv(args: argparse.Namespace, fmt: str) -> list[str]:
    """--format and --quality as the run used them, for a reproduction command."""
    argv = [] if fmt == "png" else ["--format", fmt]
    return argv + (["--quality", str(args.quality)] if getattr(args, "quality", None) is not None else [])


METHOD_GUIDE = (
    "direct: one DDIM pass (1.5 CPU s a photo for the tiny test model at 50 steps on one core), exact "
    "reconstruction, and the edits that work most often (toy benchmark, PIE-Bench). null-text: the papers' "
    "per-step optimisation, the slowest (36 CPU s here; about a minute on an A100 for SD 1.5, per the paper), "
    "whose tuned embeddings hold edits back. null-text-fast: null-text that ends a step's optimisation once it "
    "stalls. negative-prompt: one DDIM pass, the caption as unconditional prompt. ddim: a baseline that drifts "
    "at guidance 7.5. README, 'Choosing an inversion method', has the figures"
)


def add_inversion_options(p: argparse.ArgumentParser, default_method: str = DEFAULT_METHOD) -> None:
    """--prompt, --method, --steps, --guidance, --size, --square, --seed."""
    group = p.add_argument_group("inversion")
    group.add_argument("-p", "--prompt", help="caption of the photo (the source prompt)")
    group.add_argument(
        "--method",
        choices=METHOD_NAMES,
        default=None,
        help=f"inversion method (default: {default_method}). {METHOD_GUIDE}",
    )
    group.add_argument(
        "--steps",
        type=steps_value,
        default=None,
        help=f"DDIM steps (default: {DEFAULT_STEPS}, at most {validation.MAX_STEPS})",
    )
    group.add_argument(
        "--guidance",
        type=guidance_value,
        default=None,
        help=f"classifier-free guidance scale (default: {DEFAULT_GUIDANCE})",
    )
    group.add_argument(
        "--size",
        type=size_value,
        default=None,
        metavar="WxH",
        help="working size (default: the photo's aspect ratio at the model's pixel count)",
    )
    group.add_argument("--square", action="store_true", help="centre-crop a square working image")
    group.add_argument("--seed", type=seed_value, default=0, help="random seed (default: 0)")


def add_edit_options(p: argparse.ArgumentParser, defaults: EditSpec) -> None:
    """--spec and an option for each EditSpec setting but those of photos alone (add_mask_options); each left out
    keeps the value of --spec, else `defaults`."""
    group = p.add_argument_group("Prompt-to-Prompt")
    group.add_argument(
        "--spec",
        metavar="JSON|FILE",
        help="all edit settings as JSON, or a JSON file of them (a result's NAME.json gives its "
        "edit's); the options below change single settings",
    )
    add_setting_options(group, defaults, photo=False)


def add_mask_options(p: argparse.ArgumentParser) -> None:
    """--mask, and the settings of photo edits alone: the user mask's mode and the paste-back (--mask-mode,
    --feather)."""
    group = p.add_argument_group("user mask and paste-back")
    group.add_argument("--mask", metavar="FILE", help="mask image of the photo (white = edit)")
    add_setting_options(group, EditSpec(), photo=True)


def add_setting_options(group: argparse._ArgumentGroup, defaults: EditSpec, photo: bool) -> None:
    """An option for each EditSpec setting (of photo edits alone with `photo`), from its Setting (p2p_real.schema):
    stored under the field's name, repeatable where the setting combines entries."""
    for name, setting in SCHEMA.items():
        if setting.photo != photo:
            continue
        group.add_argument(
            setting.flag,
            dest=name,
            type=arg_type(setting.parse),
            action="append" if setting.combine else "store",
            choices=setting.choices,
            metavar=setting.metavar,
            help=setting.help.replace("{default}", str(getattr(defaults, name))),
        )


def load_spec(text: str, synthetic: bool) -> EditSpec:
    """--spec: JSON text, or a file holding a spec, {"spec": ...} or a result's sidecar."""
    if text.lstrip().startswith("{"):
        source, raw = "--spec", text
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise CliError(f"--spec {text!r}: no such file (give JSON text or a JSON file)")
        source, raw = str(path), path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
        data = data["parameters"]
    if isinstance(data, dict) and isinstance(data.get("spec"), dict):
        data = data["spec"]
    return EditSpec.from_dict(data, names=SPEC_NAMES, synthetic=synthetic)


def spec_from_args(args: argparse.Namespace, n_targets: int, synthetic: bool = False) -> EditSpec:
    """The EditSpec of the command line: --spec (or the defaults) with the single options applied."""
    if args.spec:
        base = load_spec(args.spec, synthetic)
    else:
        base = (EditSpec.synthetic() if synthetic else EditSpec()).replace(names=SPEC_NAMES)
    given: dict[str, Any] = {}
    for name, setting in SCHEMA.items():
        value = getattr(args, name, None)  # the settings of photo edits are no options of `generate`
        if value is not None and setting.combine is not None:
            value = setting.combine(value, n_targets, setting.flag)
        given[name] = value
    return base.updated(**given)


def settings_from_args(args: argparse.Namespace) -> InversionSettings:
    """The inversion settings of the command line (None where not given)."""
    return InversionSettings(
        args.prompt,
        args.method,
        args.steps,
        args.guidance,
        args.size,
        True if args.square else None,
        names=SETTINGS_NAMES,
    )


def spec_json(spec: EditSpec) -> str:
    """The spec as compact JSON, for --spec in a reproduction command."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
