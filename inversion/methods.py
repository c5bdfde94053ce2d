"""Inversion methods: what each one adds to the DDIM pivot trajectory, one function per method.

Every method has the same signature, `method(pivot: Pivot) -> MethodData`, and is chosen by name from
METHODS (k-diffusion's samplers are the model: a new method is a new function and one entry here). The
entry also says how sampling replays the method: which unconditional embedding the source row uses and
whether the source row is set onto the pivot after each step.

Importing this module loads no torch (the command line lists the names); a method imports what it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# the best edits on the toy benchmark and on PIE-Bench, at DDIM cost (README, "Choosing an inversion method")
DEFAULT_METHOD = "direct"


@dataclass
class Pivot:
    """What every method gets: the DDIM pivot of the photo and the settings of the run."""

    unet: Any
    scheduler: Any
    trajectory: Sequence[torch.Tensor]  # [z*_0, ..., z*_T], float32
    cond: torch.Tensor  # the caption's embedding (1, tokens, dim)
    uncond: torch.Tensor  # the embedding of "" (1, tokens, dim)
    guidance_scale: float
    num_inner_steps: int
    epsilon: float
    learning_rate: float
    progress: bool
    callback: Callable[[Any], None] | None
    unet_calls: Any


@dataclass
class MethodData:
    """What a method stores in the Inversion besides the pivot's end point."""

    uncond_embeddings: torch.Tensor | None = None  # (T, tokens, dim): one unconditional embedding per step
    pivots: torch.Tensor | None = None  # (T, C, h, w): the source row's latent after each sampling step


def ddim(pivot: Pivot) -> MethodData:
    """Plain DDIM inversion: the pivot's end point only; sampling uses the empty prompt's embedding."""
    return MethodData()


def _optimised_embeddings(pivot: Pivot, min_improvement: float | None) -> MethodData:
    """Run inversion.loops.null_text on the pivot: one embedding per step, stacked on the CPU."""
    import torch

    from inversion.loops.null_text import null_text_optimize

    phis = null_text_optimize(
        pivot.unet,
        pivot.scheduler,
        pivot.trajectory,
        pivot.cond,
        pivot.uncond,
        pivot.guidance_scale,
        pivot.num_inner_steps,
        pivot.epsilon,
        learning_rate=pivot.learning_rate,
        progress=pivot.progress,
        callback=pivot.callback,
        unet_calls=pivot.unet_calls,
        min_improvement=min_improvement,
    )
    return MethodData(uncond_embeddings=torch.cat(phis).cpu())


def null_text(pivot: Pivot) -> MethodData:
    """Null-text inversion: one optimised unconditional embedding per step (see inversion.loops.null_text)."""
    return _optimised_embeddings(pivot, None)


def null_text_fast(pivot: Pivot) -> MethodData:
    """Null-text that also ends a step once an Adam step gains less than 0.1% of the loss (docs/inversion_speed.md)."""
    from inversion.loops.null_text import FAST_MIN_IMPROVEMENT

    return _optimised_embeddings(pivot, FAST_MIN_IMPROVEMENT)


def negative_prompt(pivot: Pivot) -> MethodData:
    """Negative-prompt inversion: nothing to optimise; sampling uses the caption as the unconditional prompt."""
    return MethodData()


def direct(pivot: Pivot) -> MethodData:
    """Direct (PnP) inversion: z*_{T-1}, ..., z*_0, where the source row is set after each sampling step."""
    import torch

    return MethodData(pivots=torch.cat(list(pivot.trajectory[-2::-1])).cpu())


def chain(pivot: Pivot) -> MethodData:
    """An edit's own trajectory (p2p_real.files.chain): made from an edit, never by inverting a photo."""
    raise ValueError(
        "method 'chain' is not a way to invert a photo: it is an edit continued "
        "(EditResult.as_inversion); choose one of " + ", ".join(METHOD_NAMES)
    )


@dataclass(frozen=True)
class Method:
    """A registered method and how sampling replays it."""

    run: Callable[[Pivot], MethodData]
    uncond: str  # the source row's unconditional embedding: "empty" (""), "prompt" (the caption), "per-step"
    follows_pivot: bool = False  # the source row is set onto the stored pivots after every step
    inverts_photos: bool = True  # offered for inverting a photo (False: made otherwise, e.g. from an edit)


METHODS: dict[str, Method] = {
    "ddim": Method(ddim, "empty"),
    "null-text": Method(null_text, "per-step"),
    "null-text-fast": Method(null_text_fast, "per-step"),
    "negative-prompt": Method(negative_prompt, "prompt"),
    "direct": Method(direct, "empty", follows_pivot=True),
    # an edit's row as the inversion of the edited image: its latents and the unconditional embeddings it used
    "chain": Method(chain, "per-step", follows_pivot=True, inverts_photos=False),
}
METHOD_NAMES = tuple(name for name, method in METHODS.items() if method.inverts_photos)  # for inverting photos
