"""Prompts -> text embeddings: the one place a prompt is checked against the tokenizer and encoded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from inversion.devices import module_device, pipeline_device
from inversion.validation import PromptError, PromptTooLongError


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
    on the device the UNet computes on."""
    prompts = list(prompts)
    for prompt in prompts:
        check_prompt(pipe.tokenizer, prompt)
    device = pipeline_device(pipe)
    if hasattr(pipe, "encode_prompt"):
        return pipe.encode_prompt(prompts, device, 1, False)[0]
    tok = pipe.tokenizer
    ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    return pipe.text_encoder(ids.to(module_device(pipe.text_encoder)))[0].to(device)
