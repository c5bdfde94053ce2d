"""The CUDA-graph path of the inversion loops (inversion/loops/graphed_unet.py, docs/inversion_speed.md).

On the CPU, torch.cuda's graph API is replaced by a stand-in that records what is captured and replays it the
way a CUDA graph does (the captured work reads the static input buffers and writes the static output), so the
bookkeeping is tested: warm-up outside the capture, inputs copied into the static buffers, outputs copied out,
the differentiated pass captured once on first use, and the eager fallback when a capture fails. Where CUDA
exists, the graphed passes are compared with eager ones on the tiny pipeline."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

import inversion.loops.graphed_unet as graphed_unet
from inversion.loops.ddim import ddim_scheduler
from inversion.loops.graphed_unet import GraphedUNet, UNetCalls


def formula(latents: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """What the stand-in UNet computes: cheap, and depending on all three inputs."""
    return latents * 2 + t.float() + emb.mean()


class FakeGraph:
    """A CUDA graph stand-in: replay re-runs what was captured, on the same buffers."""

    def __init__(self) -> None:
        self.kernels: list = []
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1
        for kernel in self.kernels:
            kernel()


class FakeCuda:
    """torch.cuda's stream and graph API, recording what GraphedUNet does with it."""

    def __init__(self) -> None:
        self.capturing: FakeGraph | None = None
        self.graphs: list[FakeGraph] = []
        self.passes: list[str] = []  # "eager" or "capture", per UNet pass
        self.graphed_callables: list[tuple] = []

    def unet(self, unet, scheduler):
        def call(latents, t, emb):
            out = formula(latents, t, emb)
            self.passes.append("capture" if self.capturing is not None else "eager")
            if self.capturing is not None:
                self.capturing.kernels.append(lambda: out.copy_(formula(latents, t, emb)))
            return out

        return call

    def graph_class(self) -> FakeGraph:
        graph = FakeGraph()
        self.graphs.append(graph)
        return graph

    @contextlib.contextmanager
    def graph(self, graph: FakeGraph):
        self.capturing = graph
        try:
            yield
        finally:
            self.capturing = None

    def make_graphed_callables(self, fn, sample_args, num_warmup_iters=3):
        self.graphed_callables.append(sample_args)
        return fn


@pytest.fixture
def fake_cuda(monkeypatch) -> FakeCuda:
    fake = FakeCuda()
    stream = SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(graphed_unet, "eager_unet", fake.unet)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", fake.graph_class)
    monkeypatch.setattr(torch.cuda, "graph", fake.graph)
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake.make_graphed_callables)
    return fake


def sample(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, 3, 2, generator=g), torch.tensor(seed * 10), torch.randn(1, 5, 8, generator=g)


def test_the_pass_is_warmed_up_twice_then_captured_once_on_private_buffers(fake_cuda):
    latents, t, emb = sample(0)
    graphed = GraphedUNet(None, None, latents, emb)
    assert fake_cuda.passes == ["eager", "eager", "capture"] and len(fake_cuda.graphs) == 1
    assert graphed._latents is not latents and graphed._emb is not emb  # the caller's tensors stay the caller's
    latents.add_(1.0)
    assert not torch.equal(graphed._latents, latents)


def test_a_replay_copies_the_inputs_in_and_the_output_out(fake_cuda):
    graphed = GraphedUNet(None, None, *sample(0)[::2])
    a, b = sample(1), sample(2)
    out_a = graphed(*a)
    torch.testing.assert_close(out_a, formula(*a))  # the replay saw these inputs
    assert fake_cuda.graphs[0].replays == 1 and fake_cuda.passes.count("eager") == 2  # no eager pass
    assert out_a.data_ptr() != graphed._out.data_ptr()  # a copy, not the static output
    out_b = graphed(*b)
    torch.testing.assert_close(out_b, formula(*b))
    torch.testing.assert_close(out_a, formula(*a))  # the next replay did not overwrite the first result


def test_the_differentiated_pass_is_captured_once_on_first_use(fake_cuda):
    graphed = GraphedUNet(None, None, *sample(0)[::2])
    assert fake_cuda.graphed_callables == []  # not captured for inversions that never need it
    latents, t, emb = sample(3)
    phi = emb.clone().requires_grad_(True)
    out = graphed.with_grad(latents, t, phi)
    graphed.with_grad(latents, t, phi)
    ((sample_latents, sample_t, sample_phi),) = fake_cuda.graphed_callables
    assert sample_phi.requires_grad and sample_phi.shape == emb.shape and sample_latents.shape == latents.shape
    out.sum().backward()
    assert phi.grad is not None and torch.allclose(phi.grad, torch.full_like(phi, out.numel() / phi.numel()))


def test_unet_calls_use_graphs_only_for_cuda_latents_when_asked(monkeypatch):
    made = []
    monkeypatch.setattr(graphed_unet, "GraphedUNet", lambda *args: made.append(args) or "graphed")
    monkeypatch.setattr(graphed_unet, "eager_unet", lambda unet, scheduler: formula)
    cuda_latents = SimpleNamespace(is_cuda=True)
    unet, scheduler = torch.nn.Linear(1, 1), None
    assert UNetCalls(unet, scheduler, cuda_latents, None)._graphed == "graphed"
    assert UNetCalls(unet, scheduler, cuda_latents, None, graphs=False)._graphed is None
    assert UNetCalls(unet, scheduler, torch.zeros(1), None)._graphed is None  # CPU latents
    assert len(made) == 1


def test_a_failed_capture_warns_and_runs_eagerly(monkeypatch):
    def failing(*args):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphed_unet, "GraphedUNet", failing)
    monkeypatch.setattr(graphed_unet, "eager_unet", lambda unet, scheduler: formula)
    with pytest.warns(UserWarning, match="CUDA graph capture failed, running eagerly: operation not permitted"):
        calls = UNetCalls(torch.nn.Linear(1, 1), None, SimpleNamespace(is_cuda=True), None)
    assert calls._graphed is None
    args = sample(4)
    torch.testing.assert_close(calls(*args), formula(*args))


def test_a_failed_capture_of_the_differentiated_pass_falls_back_for_good(monkeypatch):
    class HalfWorking:
        def __init__(self, *args) -> None:
            self.calls = 0

        def __call__(self, latents, t, emb):
            self.calls += 1
            return formula(latents, t, emb) + 100  # tells the graphed pass from the eager one

        def with_grad(self, latents, t, phi):
            raise RuntimeError("capture of backward failed")

    monkeypatch.setattr(graphed_unet, "GraphedUNet", HalfWorking)
    monkeypatch.setattr(graphed_unet, "eager_unet", lambda unet, scheduler: formula)
    calls = UNetCalls(torch.nn.Linear(1, 1), None, SimpleNamespace(is_cuda=True), None)
    args = sample(5)
    torch.testing.assert_close(calls(*args), formula(*args) + 100)  # graphed while it works
    with calls.fixed_input(args[0], args[1]):  # graphs: no prefix cache to set up
        assert calls._fixed is None
    with pytest.warns(UserWarning, match="capture of backward failed"):
        torch.testing.assert_close(calls.with_grad(*args), formula(*args))
    assert calls._graphed is None
    torch.testing.assert_close(calls(*args), formula(*args))  # every later pass is eager


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (none here)")
def test_graphed_passes_equal_eager_ones_on_cuda():
    from p2p_real.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0).to("cuda")
    pipe.unet.requires_grad_(False)  # as null-text freezes it: only the embedding is differentiated
    scheduler = ddim_scheduler(pipe.scheduler.config)
    scheduler.set_timesteps(4)
    g = torch.Generator(device="cuda").manual_seed(0)
    latents = torch.randn(1, 4, 16, 16, device="cuda", generator=g)
    emb = torch.randn(1, 77, pipe.text_encoder.config.hidden_size, device="cuda", generator=g)
    graphed = UNetCalls(pipe.unet, scheduler, latents, emb, prefix_cache=False)
    eager = UNetCalls(pipe.unet, scheduler, latents, emb, graphs=False, prefix_cache=False)
    assert graphed._graphed is not None  # the capture worked
    outputs = []
    for t in scheduler.timesteps[:2]:
        z = torch.randn(latents.shape, device="cuda", generator=g)
        with torch.no_grad():
            got, want = graphed(z, t, emb), eager(z, t, emb)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        outputs.append(got)
    assert not torch.equal(outputs[0], outputs[1])  # each replay returned its own result
    grads = []
    for calls in (graphed, eager):
        phi = emb.clone().requires_grad_(True)
        calls.with_grad(latents, scheduler.timesteps[0], phi).square().mean().backward()
        grads.append(phi.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-3)
