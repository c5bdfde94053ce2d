"""Small GPUs: CPU offload, the execution device the editor computes on, half precision where it runs.

No GPU here, so offloading goes "to" the CPU. diffusers' model offload does that as it would to a GPU (its
hooks move whole models and their inputs), but the UNet's own `.device` is the CPU either way, so the
sequential-offload test is the one that shows the editor follows the execution device: there the weights sit
on the "meta" device and only the hooks know where to compute. diffusers' enable_sequential_cpu_offload names
the CPU "cpu:0", which accelerate's hooks cannot move weights to (a TypeError in post_forward), so that test
installs the same hooks as diffusers does (accelerate.cpu_offload per model), on "cpu".
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from accelerate import cpu_offload

from inversion.devices import is_offloaded, module_device
from inversion.fingerprint import pipeline_fingerprint
from p2p_real import Editor
from p2p_real.models import loading
from p2p_real.models.loading import load_pipeline, resolve_dtype
from p2p_real.models.placement import enable_offload, place_pipeline
from p2p_real.testing import tiny_pipeline

STEPS = 2
PROMPT, TARGET = "a cat sitting on a wall", "a dog sitting on a wall"


@pytest.fixture
def tiny_pipeline_fresh():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def photo():
    return (np.random.RandomState(0).rand(40, 56, 3) * 255).astype(np.uint8)


def _invert_and_edit(pipe, photo):
    editor = Editor(pipe, num_inference_steps=STEPS)
    inv = editor.invert(photo, PROMPT, method="null-text", num_inner_steps=2, progress=False)
    res = editor.edit(inv, TARGET, blend_words=(["cat"], ["dog"]), output_type="np", progress=False)
    return editor, inv, res


@pytest.fixture(scope="module")
def reference(tiny_model_dir, photo):
    return _invert_and_edit(load_pipeline(tiny_model_dir, device="cpu"), photo)


def _assert_same(result, reference):
    _, inv, res = result
    _, ref_inv, ref_res = reference
    assert torch.equal(inv.latent_T, ref_inv.latent_T)
    assert torch.equal(inv.uncond_embeddings, ref_inv.uncond_embeddings)
    assert inv.model_id == ref_inv.model_id
    np.testing.assert_array_equal(res.images, ref_res.images)
    assert res.parameters == ref_res.parameters


def test_model_offload_gives_the_same_inversion_and_edit(tiny_model_dir, photo, reference):
    pipe = load_pipeline(tiny_model_dir, device="cpu")
    enable_offload(pipe, "model", torch.device("cpu"))  # diffusers' enable_model_cpu_offload
    assert is_offloaded(pipe.unet)
    _assert_same(_invert_and_edit(pipe, photo), reference)


def test_sequential_offload_computes_on_the_execution_device_with_weights_on_meta(tiny_model_dir, photo, reference):
    pipe = load_pipeline(tiny_model_dir, device="cpu")
    for model in (pipe.text_encoder, pipe.unet, pipe.vae):  # what enable_sequential_cpu_offload does
        cpu_offload(model, torch.device("cpu"), offload_buffers=len(model._parameters) > 0)
    assert pipe.unet.device.type == "meta" and pipe.vae.device.type == "meta"  # unet.device would fail here
    result = _invert_and_edit(pipe, photo)
    assert result[0].device == torch.device("cpu")
    _assert_same(result, reference)


def test_the_editor_computes_where_the_offload_hooks_say(tiny_pipeline_fresh):
    pipe = tiny_pipeline_fresh
    pipe.unet._hf_hook = SimpleNamespace(execution_device=torch.device("cuda", 0))
    try:
        assert Editor(pipe).device == torch.device("cuda", 0)
        assert module_device(pipe.unet) == torch.device("cuda", 0) and pipe.unet.device.type == "cpu"
        assert module_device(pipe.vae) == torch.device("cpu")
    finally:
        del pipe.unet._hf_hook


def test_load_pipeline_offloads_and_slices_the_vae(tiny_model_dir, photo, reference, monkeypatch):
    # the CPU refusal below lifted, load_pipeline goes through diffusers' model offload end to end
    monkeypatch.setattr(loading, "check_offload", lambda offload, device: offload)
    monkeypatch.setattr("p2p_real.models.placement.check_offload", lambda offload, device: offload)
    pipe = load_pipeline(tiny_model_dir, device="cpu", offload="model")
    assert is_offloaded(pipe.unet) and pipe.vae.use_slicing and not pipe.vae.use_tiling
    _assert_same(_invert_and_edit(pipe, photo), reference)


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_offload_onto_the_cpu_is_refused(tiny_model_dir, offload):
    with pytest.raises(ValueError, match=f"offload '{offload}' moves the model between the CPU and a GPU"):
        load_pipeline(tiny_model_dir, device="cpu", offload=offload)


def test_an_unknown_offload_mode_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match="offload 'all' is not one of model, sequential"):
        load_pipeline(tmp_path / "missing", device="cpu", offload="all")


def test_the_fingerprint_reads_weights_that_sequential_offload_left_on_meta(tiny_model_dir):
    pipe = load_pipeline(tiny_model_dir, device="cpu")
    before = pipeline_fingerprint(pipe)
    cpu_offload(pipe.unet, torch.device("cpu"))
    assert pipe.unet.device.type == "meta" and pipeline_fingerprint(pipe) == before


def test_float16_runs_on_apple_gpus_and_half_precision_never_on_the_cpu():
    assert resolve_dtype("float16", torch.device("mps")) == torch.float16
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32  # asked for, not assumed
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_dtype("bfloat16", torch.device("mps"))
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_dtype("float16", torch.device("cpu"))
    assert resolve_dtype("bf16", torch.device("cuda")) == torch.bfloat16


def test_place_pipeline_keeps_a_half_precision_vae_unless_the_model_asks_for_float32(tiny_pipeline_fresh):
    pipe = tiny_pipeline_fresh  # built in code: force_upcast is diffusers' default, not the model's word
    place_pipeline(pipe, torch.device("cpu"), torch.float16)
    assert pipe.vae.dtype == torch.float16
    pipe.vae.register_to_config(force_upcast=True, _use_default_values=[])  # as SDXL's config.json says
    place_pipeline(pipe, torch.device("cpu"), torch.float16)
    assert pipe.vae.dtype == torch.float32
