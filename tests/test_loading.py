"""load_pipeline (docs/design.md §5): local diffusers folders, checkpoints, hub ids, devices and dtypes, errors."""

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from p2p_real.models import loading
from p2p_real.models.loading import (
    ModelLoadError,
    load_pipeline,
    resolve_device,
    resolve_dtype,
    torch_loads_pickles_safely,
)
from p2p_real.testing import tiny_pipeline


def test_a_saved_diffusers_folder_loads_with_a_ddim_scheduler(tiny_model_dir):
    pipe = load_pipeline(tiny_model_dir, device="cpu")
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.scheduler.config.clip_sample is False and pipe.scheduler.config.set_alpha_to_one is False
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    assert pipe.unet.dtype == torch.float32 and pipe.unet.device.type == "cpu"


def test_a_local_path_that_does_not_exist_never_reaches_the_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("from_pretrained was called for a local path")

    monkeypatch.setattr(StableDiffusionPipeline, "from_pretrained", no_network)
    for path in (tmp_path / "missing", "./models/sd", "~/nothing/here", "weights/model.safetensors"):
        with pytest.raises(ModelLoadError, match="does not exist"):
            load_pipeline(str(path), device="cpu")


def test_a_folder_that_is_not_a_pipeline_is_rejected(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model_index\.json"):
        load_pipeline(tmp_path, device="cpu")


def test_a_file_that_is_not_a_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a checkpoint"):
        load_pipeline(path, device="cpu")


def test_a_broken_checkpoint_file_is_a_model_load_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match=r"broken\.safetensors"):
        load_pipeline(path, device="cpu")


def test_a_hub_id_unavailable_offline_says_how_to_point_at_a_local_copy():
    with pytest.raises(ModelLoadError, match="local diffusers folder"):
        load_pipeline("p2p-real-tests/no-such-model", device="cpu")


def test_empty_model_is_rejected():
    with pytest.raises(ModelLoadError, match="empty"):
        load_pipeline("  ", device="cpu")


def test_device_and_dtype_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp32", torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_dtype("float16", torch.device("cpu"))
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8", torch.device("cpu"))
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu0")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_pickle_safety_follows_the_torch_version():
    assert not torch_loads_pickles_safely("2.5.1+cu121") and not torch_loads_pickles_safely("1.13.0")
    assert torch_loads_pickles_safely("2.6.0") and torch_loads_pickles_safely("2.13.0+cpu")
    assert not torch_loads_pickles_safely("nightly")
    assert torch_loads_pickles_safely() == (tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 6))


@pytest.fixture
def old_torch(monkeypatch):
    """Pretend torch.load(weights_only=True) is not safe here, as before torch 2.6 (CVE-2025-32434)."""
    monkeypatch.setattr(loading, "torch_loads_pickles_safely", lambda version=None: False)


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt", ".pth"])
def test_pickled_checkpoints_are_refused_before_torch_2_6(tmp_path, monkeypatch, old_torch, suffix):
    def unpickles(*args, **kwargs):
        raise AssertionError("from_single_file was called on a pickled checkpoint")

    monkeypatch.setattr(StableDiffusionPipeline, "from_single_file", unpickles)
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(ModelLoadError, match=r"CVE-2025-32434.*\.safetensors"):
        load_pipeline(path, device="cpu")


@pytest.fixture(scope="module")
def pickled_model_dir(tmp_path_factory):
    """The tiny pipeline saved with pickled (.bin) weights."""
    path = tmp_path_factory.mktemp("tiny-bin")
    tiny_pipeline(seed=0).save_pretrained(path, safe_serialization=False)
    assert {p.parent.name for p in path.rglob("*.bin")} == {"unet", "vae"}
    return path


def test_a_folder_of_pickled_weights_is_refused_before_torch_2_6(pickled_model_dir, old_torch):
    with pytest.raises(ModelLoadError, match=r"diffusers folder .*\.bin.*CVE-2025-32434"):
        load_pipeline(pickled_model_dir, device="cpu")


def test_safetensors_folders_load_before_torch_2_6_and_pickles_load_after(
    tiny_model_dir, pickled_model_dir, monkeypatch
):
    with monkeypatch.context() as patch:
        patch.setattr(loading, "torch_loads_pickles_safely", lambda version=None: False)
        assert load_pipeline(tiny_model_dir, device="cpu").unet is not None
    if torch_loads_pickles_safely():
        assert load_pipeline(pickled_model_dir, device="cpu").unet is not None


@pytest.mark.parametrize("device", ["meta", "cpu:0:1", "ipu"])
def test_a_device_that_cannot_run_a_model_is_a_clear_error(tiny_model_dir, device):
    with pytest.raises(ValueError, match=rf"device '{device}'"):
        load_pipeline(tiny_model_dir, device=device)
