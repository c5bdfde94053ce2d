"""What the tests of the command line share: the console script, running it offline, test photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

BIN = Path(sys.executable).parent
# the installed console script, as users run it (else the module, in a checkout without an install)
SCRIPT = [str(BIN / "p2p-real")] if (BIN / "p2p-real").exists() else [sys.executable, "-m", "cli"]
TIMEOUT = 300


CAT, DOG = "a cat on a wall", "a dog on a wall"  # the caption and target most command-line tests use


def cli_args(command: str, photo: str | Path, *options: object, targets: Sequence[str] = ()) -> list[str]:
    """`COMMAND PHOTO -p CAT [-t TARGET ...] OPTIONS`, every word a string: the command lines the tests run."""
    return [command, str(photo), "-p", CAT, *[w for t in targets for w in ("-t", t)], *map(str, options)]


def quick(model: str | Path, steps: int = 2, method: str = "ddim") -> list[str]:
    """The options of a quick run: a few steps of `method` on the test model saved in `model`."""
    return ["--steps", str(steps), "--method", method, "--model", str(model)]


def cli_env(home: Path) -> dict[str, str]:
    """Offline, with an empty Hugging Face cache, one thread per process (several run at once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ACCELERATE_", "P2P_REAL_"))}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_cli(args: list[str], cwd: Path, home: Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run `p2p-real ARGS` (or PREFIX ARGS) in `cwd` with cli_env(home); capture its output."""
    return subprocess.run(
        [*(prefix or SCRIPT), *args], cwd=cwd, env=cli_env(home), capture_output=True, text=True, timeout=TIMEOUT
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """The result, after asserting that the command succeeded (showing its output if not)."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def draw_photo(path: Path, size=(56, 40), sun=(230, 180, 60)) -> Path:
    """A small non-square 'photo' (56x40 is not a multiple of the working size)."""
    img = Image.new("RGB", size, (90, 140, 200))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, size[1] * 2 // 3, size[0], size[1]], fill=(120, 100, 80))
    draw.ellipse([size[0] // 3, size[1] // 5, size[0] * 2 // 3, size[1] * 3 // 4], fill=sun)
    img.save(path)
    return path


def draw_mask(path: Path, size=(56, 40), box=(16, 6, 40, 32)) -> Path:
    """A mask of the photo: white (edit) inside `box`, black elsewhere."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(list(box), fill=255)
    mask.save(path)
    return path


def png_parameters(path: Path) -> dict:
    """The parameters a result PNG carries in its text chunk."""
    with Image.open(path) as img:
        return json.loads(img.text["parameters"])


def make_lora(folder: Path, seed: int = 1) -> Path:
    """A LoRA for the tiny test pipeline's UNet attention (random, non-zero), saved as diffusers saves LoRAs."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    from p2p_real.testing import tiny_pipeline

    torch.manual_seed(seed)
    unet = tiny_pipeline().unet
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return folder / "pytorch_lora_weights.safetensors"


def make_embedding(path: Path, vectors: int = 2, seed: int = 2) -> Path:
    """A textual-inversion embedding for the tiny test pipeline, as diffusers saves one ({word: vectors})."""
    import torch
    from safetensors.torch import save_file

    from p2p_real.testing import TEXT_DIM

    save_file({"<ignored>": torch.randn(vectors, TEXT_DIM, generator=torch.Generator().manual_seed(seed))}, path)
    return path
