"""UNet passes replayed from CUDA graphs, for the inversion loops that call the UNet hundreds of times.

At batch 1 a Stable Diffusion UNet is bound by kernel launches, not arithmetic: replaying a captured
graph runs the same kernels with one launch. One graph serves passes without gradients, a second one
(forward and backward) the null-text pass differentiated with respect to the text embedding.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler

from inversion.ddim import predict_noise

UNetCall = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def eager_unet(unet: torch.nn.Module, scheduler: DDIMScheduler) -> UNetCall:
    """A plain UNet pass (no guidance) in the UNet's dtype, returned in float32."""
    dtype = unet.dtype

    def call(latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return predict_noise(unet, scheduler, latents.to(dtype), t, emb.to(dtype), 1.0).float()

    return call


class GraphedUNet:
    """Replays UNet passes for one latent shape from CUDA graphs; call `available` before use."""

    def __init__(self, unet: torch.nn.Module, scheduler: DDIMScheduler, latents: torch.Tensor,
                 emb: torch.Tensor) -> None:
        self._eager = eager_unet(unet, scheduler)
        device = latents.device
        self._latents = latents.detach().float().clone()
        self._t = torch.zeros((), dtype=torch.long, device=device)
        self._emb = emb.detach().float().clone()
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(2):  # warm up cuDNN/cuBLAS outside the capture
                self._eager(self._latents, self._t, self._emb)
        torch.cuda.current_stream(device).wait_stream(stream)
        self._graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self._graph):
            self._out = self._eager(self._latents, self._t, self._emb)
        self._with_grad: UNetCall | None = None  # captured on first use (null-text only)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The pass without gradients (a fresh tensor)."""
        self._latents.copy_(latents)
        self._t.copy_(torch.as_tensor(t, device=self._t.device))
        self._emb.copy_(emb)
        self._graph.replay()
        return self._out.clone()

    def with_grad(self, latents: torch.Tensor, t: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """The pass differentiable with respect to `phi` (float32, requires grad)."""
        if self._with_grad is None:
            sample_phi = self._emb.clone().requires_grad_(True)
            self._with_grad = torch.cuda.make_graphed_callables(
                self._eager, (self._latents.clone(), self._t.clone(), sample_phi), num_warmup_iters=2
            )
        return self._with_grad(latents.float(), torch.as_tensor(t, device=self._t.device), phi)


class UNetCalls:
    """The two kinds of UNet pass the inversion loops make, from CUDA graphs when possible."""

    def __init__(self, unet: torch.nn.Module, scheduler: DDIMScheduler, latents: torch.Tensor,
                 emb: torch.Tensor, graphs: bool = True) -> None:
        self._eager = eager_unet(unet, scheduler)
        self._graphed: GraphedUNet | None = None
        if graphs and latents.is_cuda:
            try:
                self._graphed = GraphedUNet(unet, scheduler, latents, emb)
            except Exception as exc:  # capture is best effort: the eager path computes the same
                warnings.warn(f"CUDA graph capture failed, running eagerly: {exc}", stacklevel=2)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """A pass without gradients, float32."""
        if self._graphed is not None:
            return self._graphed(latents, t, emb)
        return self._eager(latents, t, emb)

    def with_grad(self, latents: torch.Tensor, t: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """A pass differentiable with respect to `phi`, float32."""
        if self._graphed is not None:
            try:
                return self._graphed.with_grad(latents, t, phi)
            except Exception as exc:
                warnings.warn(f"CUDA graph capture failed, running eagerly: {exc}", stacklevel=2)
                self._graphed = None
        return self._eager(latents, t, phi)
