"""Null-text doing less work (docs/design.md §4): the UNet prefix computed once per step, the stall stop."""

from __future__ import annotations

import pytest
import skimage.data
import torch

from inversion.encoding.prompts import encode_prompts
from inversion.encoding.vae import encode_image
from inversion.loops.ddim import ddim_scheduler
from inversion.loops.ddim_inversion import ddim_invert
from inversion.loops.graphed_unet import UNetCalls
from inversion.loops.null_text import null_text_optimize
from inversion.methods import Pivot as MethodPivot
from inversion.photos.image import load_image

PROMPT = "a photo of a cat sitting on a table"
STEPS = 3


class Pivot:
    """A photo's DDIM pivot on the tiny pipeline, and null-text runs from it."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.scheduler = ddim_scheduler(pipe.scheduler.config)
        self.scheduler.set_timesteps(STEPS)
        self.z0 = encode_image(pipe.vae, load_image(skimage.data.chelsea(), size=(40, 24)).pixels)
        self.cond, self.uncond = encode_prompts(pipe, [PROMPT]), encode_prompts(pipe, [""])
        self.trajectory = ddim_invert(pipe.unet, self.scheduler, self.z0, self.cond, progress=False)

    def calls(self, **options) -> UNetCalls:
        return UNetCalls(self.pipe.unet, self.scheduler, self.z0, self.cond, graphs=False, **options)

    def method_input(self, inner_steps: int, learning_rate: float, callback=None) -> MethodPivot:
        """What a registered method runs on (inversion.methods.Pivot): this pivot at guidance 7.5, epsilon 0."""
        return MethodPivot(
            unet=self.pipe.unet,
            scheduler=self.scheduler,
            trajectory=self.trajectory,
            cond=self.cond,
            uncond=self.uncond,
            guidance_scale=7.5,
            num_inner_steps=inner_steps,
            epsilon=0.0,
            learning_rate=learning_rate,
            progress=False,
            callback=callback,
            unet_calls=None,
        )

    def nti(self, calls: UNetCalls | None = None, **kwargs) -> list[torch.Tensor]:
        args = {"learning_rate": 0.1, "progress": False, "num_inner_steps": 3, "epsilon": 0.0, **kwargs}
        return null_text_optimize(
            self.pipe.unet, self.scheduler, self.trajectory, self.cond, self.uncond, 7.5, unet_calls=calls, **args
        )


@pytest.fixture(scope="module")
def pivot(tiny_pipe):
    return Pivot(tiny_pipe)


def own_forwards(unet: torch.nn.Module) -> bool:
    """Whether every module runs its class's own forward (no instance-level replacement left behind)."""
    return all("forward" not in module.__dict__ for module in unet.modules())


def test_the_prefix_cache_gives_the_same_embeddings_bit_for_bit(pivot):
    plain = pivot.nti(pivot.calls(prefix_cache=False))
    cached = pivot.nti(pivot.calls())
    assert len(cached) == STEPS and all(torch.equal(a, b) for a, b in zip(plain, cached))
    assert not torch.equal(cached[-1], pivot.uncond)  # the optimisation did move phi
    assert own_forwards(pivot.pipe.unet)


def test_the_prefix_is_what_runs_before_the_first_cross_attention_reads_the_embedding(pivot):
    calls = pivot.calls()
    pivot.nti(calls)
    names = calls._prefix.module_names
    first = "down_blocks.0.attentions.0.transformer_blocks.0."
    assert {"time_embedding", "conv_in", "down_blocks.0.resnets.0", first + "attn1", first + "attn2.to_q"} <= set(names)
    # nothing that reads the embedding (attn2 itself, its key and value projections), nothing after it
    assert not any(n in (first + "attn2", first + "attn2.to_k", first + "attn2.to_v") for n in names)
    assert not any(n.startswith(("down_blocks.1", "mid_block", "up_blocks")) for n in names)


def test_the_prefix_runs_once_per_step_and_the_unet_once_per_pass(pivot):
    unet = pivot.pipe.unet
    passes, prefix = [], []
    handles = [
        unet.register_forward_pre_hook(lambda *a: passes.append(1)),
        unet.down_blocks[0].resnets[0].conv1.register_forward_pre_hook(lambda *a: prefix.append(1)),
    ]
    try:
        pivot.nti(pivot.calls())
    finally:
        for handle in handles:
            handle.remove()
    # per step: the conditional pass, three differentiated passes, one to advance; the prefix once
    assert len(passes) == STEPS * 5 and len(prefix) == STEPS


def test_fixed_input_refuses_other_latents_and_restores_the_unet_after_an_error(pivot):
    calls = pivot.calls()
    z, t = pivot.trajectory[-1], pivot.scheduler.timesteps[0]
    with torch.no_grad(), calls.fixed_input(z, t):
        calls(z, t, pivot.cond)  # traced: the prefix modules now replay
        assert not own_forwards(pivot.pipe.unet)
        with pytest.raises(ValueError, match="same latents"):
            calls(z.clone(), t, pivot.cond)
    assert own_forwards(pivot.pipe.unet)
    with pytest.raises(RuntimeError, match="stop"), calls.fixed_input(z, t):
        with torch.no_grad():
            calls(z, t, pivot.cond)
        raise RuntimeError("stop")
    assert own_forwards(pivot.pipe.unet)


def test_outside_fixed_input_every_pass_is_a_plain_one(pivot):
    calls = pivot.calls()
    t = pivot.scheduler.timesteps[0]
    with torch.no_grad():
        with calls.fixed_input(pivot.trajectory[-1], t):
            calls(pivot.trajectory[-1], t, pivot.cond)
        a = calls(pivot.trajectory[-2], t, pivot.cond)
        b = pivot.calls(prefix_cache=False)(pivot.trajectory[-2], t, pivot.cond)
    assert torch.equal(a, b)


def test_min_improvement_ends_a_step_once_an_adam_step_gains_too_little(pivot):
    unet = pivot.pipe.unet
    passes = []
    handle = unet.register_forward_pre_hook(lambda *a: passes.append(1))
    try:
        stalled = pivot.nti(min_improvement=1.0)  # no Adam step gains 100%: one per step
    finally:
        handle.remove()
    # per step: the conditional pass, two differentiated passes (the second one also advances z_t)
    assert len(passes) == STEPS * 3
    one_step = pivot.nti(num_inner_steps=1)
    assert all(torch.equal(a, b) for a, b in zip(stalled, one_step))


def test_min_improvement_off_is_the_default(pivot):
    assert all(torch.equal(a, b) for a, b in zip(pivot.nti(min_improvement=None), pivot.nti()))


def test_null_text_fast_is_null_text_with_the_stall_stop(pivot):
    from inversion.loops.null_text import FAST_MIN_IMPROVEMENT
    from inversion.methods import METHODS

    method = METHODS["null-text-fast"]
    assert method.uncond == "per-step" and not method.follows_pivot  # replayed like null-text
    data = method.run(pivot.method_input(3, 0.1))
    expected = pivot.nti(min_improvement=FAST_MIN_IMPROVEMENT)
    assert torch.equal(data.uncond_embeddings, torch.cat(expected))
    # that the stall stop fires, and when: tests/test_null_text_schedule.py


def test_a_null_text_fast_inversion_saves_loads_and_replays_its_embeddings(tiny_pipe, tmp_path):
    from inversion.artifact import Inversion
    from inversion.invert import invert
    from inversion.settings import InversionSettings

    inv = invert(
        tiny_pipe,
        ddim_scheduler(tiny_pipe.scheduler.config),
        skimage.data.chelsea(),
        InversionSettings(PROMPT, "null-text-fast", STEPS, size=(48, 32)).resolved(),
        num_inner_steps=2,
        progress=False,
    )
    loaded = Inversion.load(inv.save(tmp_path / "cat.inv.safetensors"))
    assert loaded.method == "null-text-fast" and loaded.uncond_embeddings.shape[0] == STEPS
    assert torch.equal(loaded.uncond_embeddings, inv.uncond_embeddings) and not loaded.uses_prompt_as_uncond
    loaded.check_matches(InversionSettings(PROMPT, "null-text-fast", STEPS))
    with pytest.raises(ValueError, match="null-text-fast"):
        loaded.check_matches(InversionSettings(PROMPT, "null-text", STEPS))


def test_compile_runs_every_pass_through_torch_compile_and_gives_the_same_embeddings(pivot, monkeypatch):
    # torch.compile with the "eager" backend: dynamo captures the passes (what compile=True changes in our
    # code) without the minutes of code generation; inductor's speed is measured in benchmarks/inversion.py.
    compiled = []
    real_compile = torch.compile

    def recording_compile(fn, **options):
        wrapped = real_compile(fn, backend="eager", **options)

        def call(*args):
            compiled.append(len(args))
            return wrapped(*args)

        return call

    monkeypatch.setattr(torch, "compile", recording_compile)
    plain = pivot.nti(pivot.calls(prefix_cache=False))
    calls = pivot.calls(compile=True)
    result = pivot.nti(calls)
    assert len(compiled) == STEPS * (1 + 3 + 1)  # per step: the conditional pass, 3 Adam passes, the DDIM step
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain, result))
    assert calls._prefix is None and own_forwards(pivot.pipe.unet)  # no prefix cache of ours under compile


def test_compile_is_refused_with_an_offloaded_unet_and_must_be_a_bool(tiny_pipe, monkeypatch):
    import inversion.invert as invert_module
    from inversion.settings import InversionSettings

    def invert(compile: object) -> object:
        scheduler, photo = ddim_scheduler(tiny_pipe.scheduler.config), skimage.data.chelsea()
        return invert_module.invert(tiny_pipe, scheduler, photo, InversionSettings(PROMPT).resolved(), compile=compile)

    with pytest.raises(ValueError, match="compile must be True or False"):
        invert("yes")
    monkeypatch.setattr(invert_module, "is_offloaded", lambda unet: True)
    with pytest.raises(ValueError, match="CPU-offloaded"):
        invert(True)
