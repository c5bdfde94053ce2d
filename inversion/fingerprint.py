"""Fingerprints of a model and a scheduler, so an inversion is only ever replayed on what produced it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

# Config keys that describe how a model was saved or loaded, not what it computes.
_VOLATILE_KEYS = {"transformers_version", "torch_dtype", "dtype", "architectures", "name_or_path"}
# What load_pipeline merged into the weights (LoRAs with their scales, textual-inversion tokens), as a list of
# JSON-able dicts on the pipeline: part of the model's identity, since a few sampled weights cannot show it.
ADAPTERS = "p2p_real_adapters"
_WEIGHTS_PER_MODULE = 5  # tensors hashed per module, spread over its state dict
_MAX_ELEMENTS = 1 << 20  # elements hashed per tensor (its first ones)

SCHEDULER_KEYS = (
    "prediction_type",
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "steps_offset",
    "timestep_spacing",
    "set_alpha_to_one",
    "rescale_betas_zero_snr",
)


def _plain_config(config: Any) -> dict[str, Any]:
    """A module's config as a plain dict, without bookkeeping keys (versions, dtype, paths)."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return {str(k): v for k, v in dict(config).items() if not str(k).startswith("_") and str(k) not in _VOLATILE_KEYS}


def _offloaded(module: torch.nn.Module, name: str) -> torch.Tensor:
    """The value of a weight that sequential CPU offload left on the "meta" device: from its hook's CPU copy."""
    path, _, leaf = name.rpartition(".")
    owner = module.get_submodule(path) if path else module
    hook = getattr(owner, "_hf_hook", None)
    for h in getattr(hook, "hooks", None) or [hook]:
        weights = getattr(h, "weights_map", None)
        if weights is not None and leaf in weights:
            return weights[leaf]
    raise ValueError(f"cannot read the weight {name}: it is offloaded where p2p-real cannot see it")


def _hash_weights(digest: Any, module: torch.nn.Module) -> None:
    """Feed a few tensors spread over the module's state dict, rounded to float16, into `digest`."""
    state = module.state_dict()
    names = list(state)
    if not names:
        return
    picks = sorted({round(k * (len(names) - 1) / (_WEIGHTS_PER_MODULE - 1)) for k in range(_WEIGHTS_PER_MODULE)})
    for index in picks:
        name = names[index]
        tensor = state[name].detach()
        if tensor.is_meta:
            tensor = _offloaded(module, name).detach()
        values = tensor.flatten()[:_MAX_ELEMENTS]
        if values.is_floating_point():
            values = values.to(device="cpu", dtype=torch.float16)  # the same for fp32 and fp16 loads
        else:
            values = values.to(device="cpu", dtype=torch.int64)
        digest.update(f"{name}:{tuple(tensor.shape)}:".encode())
        digest.update(values.contiguous().numpy().tobytes())


def model_fingerprint(
    unet: torch.nn.Module,
    text_encoder: torch.nn.Module,
    vae: torch.nn.Module,
    tokenizer: Any = None,
    adapters: Any = None,
    text_encoder_2: torch.nn.Module | None = None,
    tokenizer_2: Any = None,
) -> str:
    """Hex sha256 over the UNet / text encoder / VAE configs and a few of their weights (as float16), and the
    adapters merged into them (see ADAPTERS) when there are any.

    It is the same for every load of one model, in float32 or float16, offloaded or not, and differs between
    models. SDXL's second text encoder and tokenizer count too (SD fingerprints are as they were before SDXL).
    """
    digest = hashlib.sha256(b"p2p-real model v1\n")
    modules = [("unet", unet), ("text_encoder", text_encoder), ("vae", vae)]
    if text_encoder_2 is not None:
        modules.append(("text_encoder_2", text_encoder_2))
    for name, module in modules:
        config = _plain_config(getattr(module, "config", {}))
        digest.update(f"{name}:{json.dumps(config, sort_keys=True, default=str)}\n".encode())
        _hash_weights(digest, module)
    if tokenizer is not None:
        digest.update(f"tokenizer:{len(tokenizer)}:{getattr(tokenizer, 'model_max_length', None)}\n".encode())
    if tokenizer_2 is not None:
        digest.update(f"tokenizer_2:{len(tokenizer_2)}:{tokenizer_2.pad_token}\n".encode())
    if adapters:
        digest.update(f"adapters:{json.dumps(adapters, sort_keys=True, default=str)}\n".encode())
    return digest.hexdigest()


def pipeline_fingerprint(pipe: Any) -> str:
    """model_fingerprint of a Stable Diffusion (or SDXL) pipeline's parts and the adapters load_pipeline merged in."""
    return model_fingerprint(
        pipe.unet,
        pipe.text_encoder,
        pipe.vae,
        getattr(pipe, "tokenizer", None),
        getattr(pipe, ADAPTERS, None),
        getattr(pipe, "text_encoder_2", None),
        getattr(pipe, "tokenizer_2", None),
    )


def scheduler_fingerprint(scheduler: Any) -> str:
    """The scheduler settings an inversion depends on, as canonical JSON (readable in error messages)."""
    config: Mapping[str, Any] = scheduler.config if hasattr(scheduler, "config") else scheduler
    values = {key: config.get(key) for key in SCHEDULER_KEYS}
    if values["trained_betas"] is not None:
        betas = json.dumps([float(b) for b in values["trained_betas"]])
        values["trained_betas"] = hashlib.sha256(betas.encode()).hexdigest()
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def scheduler_differences(expected: str, actual: str) -> list[str]:
    """Human-readable 'key: a != b' lines between two scheduler fingerprints."""
    try:
        a, b = json.loads(expected), json.loads(actual)
    except (TypeError, ValueError):
        return [f"{expected!r} != {actual!r}"]
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [f"{expected!r} != {actual!r}"]
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
