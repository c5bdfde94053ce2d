"""What the Editor's parts use of the Editor, as a Protocol: they take the editor without importing p2p_real.editor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from diffusers import DDIMScheduler

from p2p_real.spec import EditSpec


class EditorLike(Protocol):
    """The attributes and methods of p2p_real.editor.Editor that the edit loop, photo edits, generation, inversion
    and reconstruction use (the editor is also what step callbacks receive)."""

    pipe: Any
    scheduler: DDIMScheduler
    num_inference_steps: int
    guidance_scale: float
    attention_res: float
    _cancelled: bool  # set by Editor.cancel(); each call clears it when it starts

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def denoiser(self) -> torch.nn.Module: ...

    @property
    def tokenizer(self) -> Any: ...

    @property
    def latent_channels(self) -> int: ...

    @property
    def default_size(self) -> tuple[int, int]: ...

    def embed(self, prompts: Sequence[str]) -> torch.Tensor: ...

    def uncond_embedding(self) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def model_parameters(self) -> dict[str, Any]: ...

    def check(
        self, prompts: str | Sequence[str], spec: EditSpec | None = None, num_inference_steps: int | None = None
    ) -> None: ...
