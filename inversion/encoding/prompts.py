"""Prompts -> text embeddings: the one place a prompt is checked against the tokenizer and encoded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from inversion.devices import module_device, pipeline_device
from inversion.encoding import sdxl
from inversion.validation import PromptError, PromptTooLongError


class ExpandingTokenizer:
    """A tokenizer that first expands multi-vector textual-inversion tokens the way the pipeline's
    `encode_prompt` does ("tok" -> "tok tok_1 tok_2"), so token positions match the embeddings."""

    def __init__(self, tokenizer: Any, expand: Callable[[Any], Any]) -> None:
        self._tokenizer = tokenizer
        self._expand = expand

    def __call__(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        """Tokenize the expanded text."""
        return self._tokenizer(self._expand(text), *args, **kwargs)

    def __len__(self) -> int:
        return len(self._tokenizer)

    def __getattr__(self, name: str) -> Any:
        if name in ("_tokenizer", "_expand"):  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self._tokenizer, name)


def _has_multi_vector_tokens(tokenizer: Any) -> bool:
    """Whether textual inversion added a token of several vectors ("tok" with "tok_1", ...)."""
    added = getattr(tokenizer, "added_tokens_encoder", None) or {}
    return any(f"{token}_1" in added for token in added)


def _expanding(pipe: Any, tokenizer: Any) -> Any:
    """`tokenizer`, expanding multi-vector textual-inversion tokens as the pipeline's encode_prompt will."""
    convert = getattr(pipe, "maybe_convert_prompt", None)
    if convert is None or not _has_multi_vector_tokens(tokenizer):
        return tokenizer
    return ExpandingTokenizer(tokenizer, lambda text: convert(text, tokenizer))


def prompt_tokenizer(pipe: Any) -> Any:
    """The tokenizer that prompts are checked and aligned with: the pipeline's own (SDXL: both of its
    tokenizers as one, `sdxl.TokenizerPair`), expanding multi-vector textual-inversion tokens as the
    pipeline's encode_prompt will (diffusers' maybe_convert_prompt)."""
    if sdxl.is_sdxl(pipe):
        return sdxl.TokenizerPair(_expanding(pipe, pipe.tokenizer), _expanding(pipe, pipe.tokenizer_2))
    return _expanding(pipe, pipe.tokenizer)


def check_prompt(tokenizer: Any, prompt: Any, name: str = "prompt") -> list[int]:
    """The prompt's token ids with start/end markers; a PromptError if it is not a string, a
    PromptTooLongError if the text encoder cannot read all of it (model_max_length, 77 for CLIP)."""
    if not isinstance(prompt, str):
        raise PromptError(f"{name} must be a string, got {type(prompt).__name__}: {prompt!r}")
    ids = tokenizer(prompt, truncation=False, add_special_tokens=True).input_ids
    limit = int(tokenizer.model_max_length)
    if len(ids) > limit:
        raise PromptTooLongError(
            f"{name} {prompt!r} has {len(ids)} tokens with start/end markers; the text encoder reads at most {limit}"
        )
    return list(ids)


@torch.no_grad()
def encode_prompts(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    """Text embeddings (n, tokens, dim) of the prompts, as the pipeline computes them (its own
    `encode_prompt` when it has one: textual inversion and LoRA scales apply), in the text encoder's dtype,
    on the device the UNet computes on. SDXL's are packed with their pooled embeddings (`sdxl.pack`)."""
    prompts = list(prompts)
    tokenizer = prompt_tokenizer(pipe)
    for prompt in prompts:
        check_prompt(tokenizer, prompt)
    device = pipeline_device(pipe)
    if sdxl.is_sdxl(pipe):
        return sdxl.encode_sdxl(pipe, prompts, device)
    if hasattr(pipe, "encode_prompt"):
        return pipe.encode_prompt(prompts, device, 1, False)[0]
    tok = pipe.tokenizer
    ids = tok(
        prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return pipe.text_encoder(ids.to(module_device(pipe.text_encoder)))[0].to(device)


def encode_unconditional(pipe: Any) -> torch.Tensor:
    """The unconditional embedding (1, tokens, dim) the pipeline uses without a negative prompt: the empty
    prompt's, or zeros for an SDXL model whose config says force_zeros_for_empty_prompt (SDXL base 1.0)."""
    empty = encode_prompts(pipe, [""])
    return torch.zeros_like(empty) if sdxl.is_sdxl(pipe) and sdxl.zeros_for_empty_prompt(pipe) else empty
