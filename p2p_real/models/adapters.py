"""Users' own additions to a model: LoRA weights (merged in at a scale) and textual-inversion embeddings
(new words for prompts), read from files and added to a loaded pipeline.

    "style.safetensors"            a LoRA at scale 1           "style.safetensors:0.6"   at scale 0.6
    "charturner.pt"                an embedding, used in prompts as the word "charturner" (the file's stem)
    "learned_embeds.bin:<cat-toy>" an embedding under the word "<cat-toy>"

The text forms parse without torch (the command line reads them before loading anything).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inversion import validation
from p2p_real.models.load_errors import SAFE_PICKLE_TORCH, ModelLoadError, torch_loads_pickles_safely
from p2p_real.notation import parse_number

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")  # torch.load files: pickles
MAX_LORA_SCALE = 10.0  # |scale| of a LoRA merged into the weights (usual scales are 0 to 1.5)


@dataclass(frozen=True)
class LoraFile:
    """A LoRA weights file and the scale it is merged in at (0 adds nothing)."""

    path: Path
    scale: float = 1.0

    def __post_init__(self) -> None:
        validation.number(self.scale, f"LoRA {self.path.name!r} scale", minimum=-MAX_LORA_SCALE, maximum=MAX_LORA_SCALE)


@dataclass(frozen=True)
class EmbeddingFile:
    """A textual-inversion embedding file and the word prompts use for it (default: the file's stem)."""

    path: Path
    token: str | None = None

    @property
    def word(self) -> str:
        """The word prompts use for the embedding."""
        return self.token or self.path.stem


def parse_lora(text: str) -> LoraFile:
    """'FILE' or 'FILE:SCALE' (a number; a colon not followed by one belongs to the path)."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            scale = parse_number(tail)
        except ValueError:
            scale = None
        if scale is not None:
            return LoraFile(Path(head).expanduser(), scale)  # a scale out of bounds is an error, not a path
    if not text.strip():
        raise ValueError("LoRA: give a file, optionally with :SCALE")
    return LoraFile(Path(text).expanduser())


def parse_embedding(text: str) -> EmbeddingFile:
    """'FILE' or 'FILE:WORD' (FILE ending in .safetensors, .bin, .pt, ...; WORD without spaces or slashes)."""
    head, sep, tail = text.rpartition(":")
    if sep and head.lower().endswith(WEIGHT_SUFFIXES) and not any(c in tail for c in "/\\"):
        if not tail or any(c.isspace() for c in tail):
            raise ValueError(f"embedding {text!r}: the word after ':' must be one word without spaces")
        return EmbeddingFile(Path(head).expanduser(), tail)
    if not text.strip():
        raise ValueError("embedding: give a file, optionally with :WORD")
    return EmbeddingFile(Path(text).expanduser())


def as_lora(item: Any) -> LoraFile:
    """A LoraFile from a LoraFile, a path, 'FILE:SCALE' text or a (path, scale) pair."""
    if isinstance(item, LoraFile):
        return item
    if isinstance(item, str):
        return parse_lora(item)
    if isinstance(item, os.PathLike):
        return LoraFile(Path(os.fspath(item)).expanduser())
    if isinstance(item, tuple) and len(item) == 2:
        return LoraFile(Path(os.fspath(item[0])).expanduser(), parse_number(str(item[1])))
    raise ValueError(f"loras: {item!r} is not a file, 'FILE:SCALE' or (file, scale)")


def as_embedding(item: Any) -> EmbeddingFile:
    """An EmbeddingFile from an EmbeddingFile, a path, 'FILE:WORD' text or a (path, word) pair."""
    if isinstance(item, EmbeddingFile):
        return item
    if isinstance(item, str):
        return parse_embedding(item)
    if isinstance(item, os.PathLike):
        return EmbeddingFile(Path(os.fspath(item)).expanduser())
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str):
        return parse_embedding(f"{os.fspath(item[0])}:{item[1]}")
    raise ValueError(f"embeddings: {item!r} is not a file, 'FILE:WORD' or (file, word)")


def _error(message: str) -> Exception:
    return ModelLoadError(message)


def _read_weights(path: Path, what: str) -> dict[str, Any]:
    """The tensors of a weights file; pickled files only where torch.load cannot run code from them."""
    import torch

    if not path.is_file():
        raise _error(f"{what} {str(path)!r} " + ("is not a file" if path.exists() else "does not exist"))
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise _error(f"{what} {str(path)!r} is not a weights file ({', '.join(WEIGHT_SUFFIXES)})")
    if suffix in PICKLE_SUFFIXES and not torch_loads_pickles_safely():
        raise _error(
            f"{what} {str(path)!r}: pickled weights ({', '.join(PICKLE_SUFFIXES)}) are refused on torch "
            f"{torch.__version__} because torch.load before {'.'.join(map(str, SAFE_PICKLE_TORCH))} can run code "
            "from the file (CVE-2025-32434); use a .safetensors file or upgrade torch"
        )
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and torch.load raise many kinds for broken files
        if "weights_only" in str(exc):  # torch's advice to load it unsafely would run what the pickle holds
            raise _error(
                f"{what} {str(path)!r} is a pickle holding more than tensors, which torch.load refuses to "
                "load safely (loading it otherwise could run code from the file); use a .safetensors "
                "file"
            ) from None
        raise _error(f"{what} {str(path)!r} cannot be read: {' '.join(str(exc).split())[:200]}") from exc
    if not isinstance(data, dict):
        raise _error(f"{what} {str(path)!r} holds a {type(data).__name__}, not a dict of tensors")
    return data


def add_lora(pipe: Any, lora: LoraFile, index: int = 0) -> dict[str, Any]:
    """Merge a LoRA into the pipeline's weights at its scale (diffusers' load_lora_weights and fuse_lora, then
    the LoRA layers are removed: no cost per step). Returns its description for the model's identity."""
    from inversion.storage.files import file_sha256

    state = _read_weights(lora.path, "LoRA")
    if importlib.util.find_spec("peft") is None:
        raise _error(f"LoRA {str(lora.path)!r} needs peft: pip install 'p2p-real[lora]'")
    name = f"p2p_real_lora_{index}"
    try:
        pipe.load_lora_weights(state, adapter_name=name)
    except Exception as exc:  # diffusers and peft raise many kinds for weights of another model
        raise _error(f"LoRA {str(lora.path)!r} does not fit this model: {' '.join(str(exc).split())[:300]}") from exc
    loaded = [n for names in pipe.get_list_adapters().values() for n in names]
    if name not in loaded:
        raise _error(f"LoRA {str(lora.path)!r} has no weights for this model's UNet or text encoder")
    try:
        pipe.fuse_lora(lora_scale=lora.scale, adapter_names=[name], safe_fusing=True)
    except ValueError as exc:
        pipe.unload_lora_weights()
        raise _error(f"LoRA {str(lora.path)!r} cannot be merged: {' '.join(str(exc).split())[:300]}") from exc
    pipe.unload_lora_weights()
    return {"lora": lora.path.name, "scale": lora.scale, "sha256": file_sha256(lora.path)}


SDXL_EMBEDDING_KEYS = ("clip_l", "clip_g")  # the tensors of an SDXL textual inversion: one per text encoder


def _check_sdxl_embedding(state: dict[str, Any], path: Path) -> None:
    """An SDXL textual inversion has one vector set per text encoder: clip_l (CLIP ViT-L), clip_g (OpenCLIP bigG)."""
    missing = [k for k in SDXL_EMBEDDING_KEYS if k not in state]
    if missing:
        raise _error(
            f"embedding {str(path)!r} is not an SDXL embedding: it lacks {', '.join(missing)} (it has "
            f"{', '.join(sorted(state)) or 'no tensors'}); SDXL needs one vector set per text encoder"
        )


def _load_sdxl_embedding(pipe: Any, state: dict[str, Any], word: str) -> None:
    """Load an SDXL textual inversion into both text encoders and tokenizers under one word, so both tokenizers
    read the word as the same tokens."""
    pipe.load_textual_inversion(state["clip_l"], token=word, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(
        state["clip_g"], token=word, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
    )


def add_embedding(pipe: Any, embedding: EmbeddingFile) -> dict[str, Any]:
    """Add a textual-inversion embedding under its word (diffusers' load_textual_inversion). Returns its
    description for the model's identity."""
    from inversion.storage.files import file_sha256

    word = embedding.word
    state = _read_weights(embedding.path, "embedding")
    vocabulary = pipe.tokenizer.get_vocab()
    if word in vocabulary or f"{word}</w>" in vocabulary:  # "</w>": how CLIP's vocabulary spells whole words
        raise _error(
            f"embedding {str(embedding.path)!r}: the word {word!r} is already in the tokenizer's "
            "vocabulary (prompts using it would change meaning); give it another with FILE:WORD"
        )
    before = len(pipe.tokenizer)
    xl = getattr(pipe, "tokenizer_2", None) is not None
    if xl:
        _check_sdxl_embedding(state, embedding.path)
    try:
        if xl:  # SDXL: one embedding per text encoder
            _load_sdxl_embedding(pipe, state, word)
        else:
            pipe.load_textual_inversion(state, token=word)
    except Exception as exc:  # shape mismatches, unknown layouts: all mean the same to the user
        raise _error(
            f"embedding {str(embedding.path)!r} does not fit this model: {' '.join(str(exc).split())[:300]}"
        ) from exc
    return {
        "embedding": embedding.path.name,
        "word": word,
        "vectors": len(pipe.tokenizer) - before,
        "sha256": file_sha256(embedding.path),
    }


def add_adapters(pipe: Any, loras: Any = (), embeddings: Any = ()) -> list[dict[str, Any]]:
    """Merge LoRAs (in order) and add embeddings to a pipeline that has nothing of the kind yet; returns their
    descriptions (also stored on the pipeline under inversion.fingerprint.ADAPTERS)."""
    from inversion.fingerprint import ADAPTERS

    added = [add_lora(pipe, as_lora(item), k) for k, item in enumerate(loras or ())]
    added += [add_embedding(pipe, as_embedding(item)) for item in embeddings or ()]
    if added:
        setattr(pipe, ADAPTERS, [*(getattr(pipe, ADAPTERS, None) or []), *added])
    return added
