"""p2p-real env: versions, device, dtype and model cache, for bug reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "env"
HELP = "versions, device, dtype and model cache, for bug reports"
EPILOG = ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--json and --debug."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(quiet=True)


def run(args: argparse.Namespace) -> int:
    """What a bug report needs (imports torch and huggingface_hub, not the model code)."""
    import platform

    import huggingface_hub
    import torch

    from p2p_real.commands.session import resolve_model
    from p2p_real.files.versions import package_version, versions
    from p2p_real.models.loading import resolve_device, resolve_dtype

    device = resolve_device("auto")
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
        "device (auto)": device.type,
        "dtype (auto)": str(resolve_dtype("auto", device)).removeprefix("torch."),
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
