"""UNet passes for the inversion loops, which call the UNet hundreds of times: work not repeated.

- CUDA graphs: at batch 1 a Stable Diffusion UNet is bound by kernel launches, not arithmetic: replaying
  a captured graph runs the same kernels with one launch. One graph serves passes without gradients, a
  second one (forward and backward) the null-text pass differentiated with respect to the text embedding.
- The prefix cache (where no graph runs): within one null-text step only the embedding changes, so
  what the UNet computes before reading it is computed once per step (`PrefixCache`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import torch
from diffusers import DDIMScheduler

from inversion.devices import module_dtype
from inversion.loops.ddim import predict_noise

UNetCall = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def eager_unet(unet: torch.nn.Module, scheduler: DDIMScheduler) -> UNetCall:
    """A plain UNet pass (no guidance) in the UNet's dtype, returned in float32."""
    dtype = module_dtype(unet)

    def call(latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return predict_noise(unet, scheduler, latents.to(dtype), t, emb.to(dtype), 1.0).float()

    return call


class GraphedUNet:
    """Replays UNet passes for one latent shape from CUDA graphs; call `available` before use."""

    def __init__(
        self, unet: torch.nn.Module, scheduler: DDIMScheduler, latents: torch.Tensor, emb: torch.Tensor
    ) -> None:
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
            graphed = torch.cuda.make_graphed_callables(
                self._eager, (self._latents.clone(), self._t.clone(), sample_phi), num_warmup_iters=2
            )
            # torch types the result as Module | Callable[..., object]; given a function it returns one like it
            self._with_grad = cast(UNetCall, graphed)
        return self._with_grad(latents.float(), torch.as_tensor(t, device=self._t.device), phi)


def _receives(value: object, tensor: torch.Tensor) -> bool:
    """Whether `tensor` itself is `value` or one item of a tuple, list or dict `value`."""
    if value is tensor:
        return True
    if isinstance(value, (tuple, list)):
        return any(item is tensor for item in value)
    if isinstance(value, dict):
        return any(item is tensor for item in value.values())
    return False


class _PrefixTrace:
    """What one traced UNet pass tells about its modules: which ones finish before the embedding is read."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.names = {module: name for name, module in unet.named_modules() if name}
        self.leaves = {module for module in self.names if next(module.children(), None) is None}
        self.embedding: torch.Tensor | None = None
        self.reading = False  # a module without children has received the embedding
        self.before: dict[str, torch.Tensor] = {}  # modules done before that, with their outputs
        self.receivers: set[str] = set()
        self.calls: dict[str, int] = {}

    def root_pre(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        self.embedding = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)

    def pre(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        name = self.names[module]
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.embedding is None:
            return
        if any(_receives(v, self.embedding) for v in (*args, *kwargs.values())):
            self.receivers.add(name)
            self.reading = self.reading or module in self.leaves

    def post(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        name = self.names[module]
        if not self.reading and name not in self.receivers and isinstance(output, torch.Tensor):
            self.before[name] = output.detach()

    def cacheable(self) -> dict[str, torch.Tensor]:
        """The outermost modules that ran once, before the embedding was read, and never received it (none
        when no module without children received the embedding itself: then what reads it is unknown)."""
        if not self.reading:
            return {}
        kept = {n: out for n, out in self.before.items() if self.calls.get(n) == 1 and n not in self.receivers}
        return {n: out for n, out in kept.items() if not any(n.startswith(p + ".") for p in kept if p != n)}


class PrefixCache:
    """Outputs of the UNet modules that run before the text embedding is read, for one latent and timestep.

    A UNet reads its text embedding only in its cross-attention layers: everything before the first of
    them (time embedding, conv_in, the first resnet, the first self-attention) depends on the latents and
    the timestep alone. Null-text makes about a dozen passes per step with the same latents and timestep
    and only the embedding changing, so `step()` computes that part once and replays it, bit for bit.
    The modules are found by tracing the first pass: those that finish before any module without
    children receives the embedding, never receive it, run once per pass and return a tensor.
    """

    def __init__(self, unet: torch.nn.Module) -> None:
        self._unet = unet
        self._modules = dict(unet.named_modules())
        self._names: list[str] | None = None  # found by the first traced pass
        self._outputs: dict[str, torch.Tensor] = {}
        self._installed: list[tuple[torch.nn.Module, Callable[..., object] | None]] = []
        self._active = False

    @contextmanager
    def step(self) -> Iterator[None]:
        """Within the block every pass must have the same latents and timestep; its prefix runs once."""
        self._outputs = {}
        if self._names is not None:
            self._install()
        self._active = True
        try:
            yield
        finally:
            self._active = False
            self._outputs = {}
            self._uninstall()

    def run(self, call: UNetCall, latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """`call(latents, t, emb)`; the first pass ever made inside step() is traced to find the prefix."""
        if not self._active or self._names is not None:
            return call(latents, t, emb)
        trace = _PrefixTrace(self._unet)
        handles = [self._unet.register_forward_pre_hook(trace.root_pre, with_kwargs=True)]
        for module in trace.names:
            handles.append(module.register_forward_pre_hook(trace.pre, with_kwargs=True))
            handles.append(module.register_forward_hook(trace.post, with_kwargs=True))
        try:
            out = call(latents, t, emb)
        finally:
            for handle in handles:
                handle.remove()
        self._outputs = trace.cacheable()
        self._names = list(self._outputs)
        self._install()
        return out

    @property
    def module_names(self) -> list[str]:
        """The modules whose outputs are replayed (empty until the first traced pass)."""
        return list(self._names or [])

    def _install(self) -> None:
        """Route the prefix modules' forward through the step's store."""
        for name in self._names or []:
            module = self._modules[name]
            self._installed.append((module, module.__dict__.get("forward")))
            module.forward = self._replaying(name, module.forward)

    def _uninstall(self) -> None:
        """Give every prefix module its own forward back."""
        while self._installed:
            module, previous = self._installed.pop()
            _restore_forward(module, previous)

    def _replaying(self, name: str, forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """`forward`, computed on its first call of the step and replayed on the later ones."""

        def replay(*args: object, **kwargs: object) -> torch.Tensor:
            if name not in self._outputs:
                self._outputs[name] = forward(*args, **kwargs).detach()
            return self._outputs[name]

        return replay


def _restore_forward(module: torch.nn.Module, previous: Callable[..., object] | None) -> None:
    """Put back the module's own forward (or an instance-level one, such as an offload hook's)."""
    if previous is None:
        del module.forward
    else:
        module.forward = previous


def compiled_unet(unet: torch.nn.Module, scheduler: DDIMScheduler) -> UNetCall:
    """The plain UNet pass compiled with torch.compile (one shape: the inversion's latents never change size).
    The first forward and the first backward each compile once (about a minute for the tiny test model on one
    CPU core); docs/inversion_speed.md has the measured trade."""
    return torch.compile(eager_unet(unet, scheduler), dynamic=False)


class UNetCalls:
    """The two kinds of UNet pass the inversion loops make: from CUDA graphs when possible, else eagerly
    with the prefix cache inside `fixed_input` blocks (`prefix_cache=False` turns it off). `compile=True`
    runs every pass through torch.compile instead (no CUDA graphs or prefix cache of ours then)."""

    def __init__(
        self,
        unet: torch.nn.Module,
        scheduler: DDIMScheduler,
        latents: torch.Tensor,
        emb: torch.Tensor,
        graphs: bool = True,
        prefix_cache: bool = True,
        compile: bool = False,
    ) -> None:
        self._eager = compiled_unet(unet, scheduler) if compile else eager_unet(unet, scheduler)
        self._graphed: GraphedUNet | None = None
        self._prefix = PrefixCache(unet) if prefix_cache and not compile else None
        self._fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        if graphs and latents.is_cuda and not compile:
            try:
                self._graphed = GraphedUNet(unet, scheduler, latents, emb)
            except Exception as exc:  # capture is best effort: the eager path computes the same
                warnings.warn(f"CUDA graph capture failed, running eagerly: {exc}", stacklevel=2)

    @contextmanager
    def fixed_input(self, latents: torch.Tensor, t: torch.Tensor) -> Iterator[None]:
        """A block whose passes all take these latents and this timestep (the same tensors)."""
        if self._prefix is None or self._graphed is not None:
            yield
            return
        self._fixed = (latents, t)
        try:
            with self._prefix.step():
                yield
        finally:
            self._fixed = None

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """A pass without gradients, float32."""
        if self._graphed is not None:
            return self._graphed(latents, t, emb)
        return self._run_eager(latents, t, emb)

    def with_grad(self, latents: torch.Tensor, t: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """A pass differentiable with respect to `phi`, float32."""
        if self._graphed is not None:
            try:
                return self._graphed.with_grad(latents, t, phi)
            except Exception as exc:
                warnings.warn(f"CUDA graph capture failed, running eagerly: {exc}", stacklevel=2)
                self._graphed = None
        return self._run_eager(latents, t, phi)

    def _run_eager(self, latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """An eager pass, through the prefix cache inside a fixed_input block."""
        if self._fixed is None or self._prefix is None:
            return self._eager(latents, t, emb)
        if latents is not self._fixed[0] or t is not self._fixed[1]:
            raise ValueError("inside fixed_input every pass must take the same latents and timestep (the same tensors)")
        return self._prefix.run(self._eager, latents, t, emb)
