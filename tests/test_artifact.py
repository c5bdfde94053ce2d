"""The Inversion artifact (docs/design.md §4): exact round trip, atomic save, an ArtifactError for every bad
file or mismatch."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import struct

import numpy as np
import pytest
import skimage.data
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from inversion.artifact import ArtifactError, Inversion
from inversion.artifact_format import checksum as _checksum
from inversion.fingerprint import model_fingerprint, pipeline_fingerprint, scheduler_fingerprint
from inversion.invert import invert
from inversion.loops.ddim import ddim_scheduler
from inversion.photos.image import load_image
from inversion.settings import InversionSettings
from p2p_real.testing import tiny_pipeline

PROMPT = "a photo of a cat"
STEPS = 3


@pytest.fixture(scope="module")
def inversions(tiny_pipe) -> dict[str, Inversion]:
    scheduler = ddim_scheduler(tiny_pipe.scheduler.config)
    photo = np.ascontiguousarray(skimage.data.chelsea()[::6, ::6])
    return {
        method: invert(
            tiny_pipe,
            scheduler,
            photo,
            InversionSettings(PROMPT, method, STEPS, size=(24, 16)).resolved(),
            num_inner_steps=1,
            progress=False,
        )
        for method in ("ddim", "null-text", "negative-prompt", "direct")
    }


@pytest.fixture
def saved(tmp_path, inversions):
    return inversions["null-text"].save(tmp_path / "cat.inv.safetensors")


def read(path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safe_open(path, framework="pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def rewrite(path, metadata: dict[str, str], tensors: dict[str, torch.Tensor], fix_checksum: bool) -> None:
    """Write a variant of an artifact, with its checksum recomputed (a consistent but wrong file) or not."""
    if fix_checksum:
        metadata = {**metadata, "checksum": _checksum(metadata, tensors)}
    save_file(tensors, path, metadata=metadata)


@pytest.mark.parametrize("method", ["ddim", "null-text", "negative-prompt", "direct"])
def test_round_trip_is_exact(tmp_path, inversions, method):
    inv = inversions[method]
    loaded = Inversion.load(inv.save(tmp_path / f"{method}.safetensors"))
    for field in dataclasses.fields(Inversion):  # every field, but where the file was loaded from
        a, b = getattr(inv, field.name), getattr(loaded, field.name)
        if isinstance(a, torch.Tensor):
            assert isinstance(b, torch.Tensor) and torch.equal(a, b), field.name
        elif isinstance(a, np.ndarray):
            np.testing.assert_array_equal(b, a, err_msg=field.name)
        elif field.name != "path":
            assert b == a, field.name


def test_working_image_is_rebuilt_from_the_stored_photo(tmp_path, inversions):
    inv = inversions["direct"]
    loaded = Inversion.load(inv.save(tmp_path / "a.safetensors"))
    expected = load_image(inv.original, size=inv.size).working
    np.testing.assert_array_equal(loaded.working_image(), expected)
    assert loaded.working_image().shape == (16, 24, 3)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, inversions, monkeypatch):
    path = inversions["ddim"].save(tmp_path / "a.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        inversions["direct"].save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_save_into_a_missing_folder_raises_and_writes_nothing(tmp_path, inversions):
    with pytest.raises(ArtifactError, match="does not exist"):
        inversions["ddim"].save(tmp_path / "nowhere" / "a.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        Inversion.load(tmp_path / "absent.safetensors")
    with pytest.raises(ArtifactError, match="not a file"):
        Inversion.load(tmp_path)


def test_load_rejects_files_that_are_not_safetensors(tmp_path, inversions):
    pickled = tmp_path / "pickled.pt"
    torch.save({"latent_T": inversions["ddim"].latent_T}, pickled)  # never unpickled
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    for path in (pickled, text):
        with pytest.raises(ArtifactError, match="not a safetensors file"):
            Inversion.load(path)


def test_load_rejects_safetensors_without_inversion_metadata(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(ArtifactError, match="not a p2p-real inversion"):
        Inversion.load(path)


def test_load_rejects_tampered_tensor_bytes(saved):
    data = bytearray(saved.read_bytes())
    data[-1] ^= 0xFF  # the last byte of the tensor data
    saved.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Inversion.load(saved)


def test_load_rejects_tampered_metadata(saved):
    data = saved.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + header_len].replace(b"a photo of a cat", b"a photo of a dog")
    assert len(header) == header_len
    saved.write_bytes(data[:8] + header + data[8 + header_len :])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Inversion.load(saved)


def test_load_rejects_an_unknown_format_version(saved):
    metadata, tensors = read(saved)
    rewrite(saved, {**metadata, "format_version": "99"}, tensors, fix_checksum=True)
    with pytest.raises(ArtifactError, match="unknown format version '99'"):
        Inversion.load(saved)


def test_load_rejects_missing_metadata(saved):
    metadata, tensors = read(saved)
    del metadata["model_id"]
    rewrite(saved, metadata, tensors, fix_checksum=True)
    with pytest.raises(ArtifactError, match="lacks model_id"):
        Inversion.load(saved)


def test_load_rejects_shapes_inconsistent_with_the_steps(saved):
    metadata, tensors = read(saved)
    rewrite(saved, {**metadata, "num_inference_steps": str(STEPS + 1)}, tensors, fix_checksum=True)
    with pytest.raises(ArtifactError, match=r"must be \(4, tokens, dim\) for 4 steps"):
        Inversion.load(saved)


def test_load_rejects_a_stored_photo_that_does_not_match_its_hash(saved):
    metadata, tensors = read(saved)
    rewrite(saved, {**metadata, "image_sha256": "0" * 64}, tensors, fix_checksum=True)
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        Inversion.load(saved)


def test_check_compatible_names_each_mismatch(tiny_pipe, tiny_vpred_pipe, inversions):
    inv = inversions["null-text"]
    model_id = pipeline_fingerprint(tiny_pipe)
    scheduler_id = scheduler_fingerprint(ddim_scheduler(tiny_pipe.scheduler.config))
    inv.check_compatible(model_id, scheduler_id, STEPS, 7.5)  # the model that made it: no error
    with pytest.raises(ArtifactError, match="model fingerprint"):
        inv.check_compatible(pipeline_fingerprint(tiny_pipeline(seed=1)), scheduler_id, STEPS)
    vpred_id = scheduler_fingerprint(ddim_scheduler(tiny_vpred_pipe.scheduler.config))
    with pytest.raises(ArtifactError, match="prediction_type: 'epsilon' != 'v_prediction'"):
        inv.check_compatible(model_id, vpred_id, STEPS)
    with pytest.raises(ArtifactError, match="num_inference_steps 50 != 3"):
        inv.check_compatible(model_id, scheduler_id, 50)
    with pytest.raises(ArtifactError, match=r"guidance_scale 5\.0 != 7\.5"):
        inv.check_compatible(model_id, scheduler_id, STEPS, 5.0)
    inversions["ddim"].check_compatible(model_id, scheduler_id, STEPS, 5.0)  # DDIM data is guidance-free


def test_model_fingerprint_is_stable_across_loads_and_differs_between_models(tiny_pipe):
    fresh = tiny_pipeline(seed=0)
    assert pipeline_fingerprint(fresh) == pipeline_fingerprint(tiny_pipe)  # in memory vs saved + loaded
    half_unet = copy.deepcopy(tiny_pipe.unet).half()
    assert model_fingerprint(half_unet, tiny_pipe.text_encoder, tiny_pipe.vae, tiny_pipe.tokenizer) == (
        pipeline_fingerprint(tiny_pipe)
    )
    assert pipeline_fingerprint(tiny_pipeline(seed=1)) != pipeline_fingerprint(tiny_pipe)


def test_unconditional_embeddings_follow_the_method(inversions):
    cond, empty = torch.ones(1, 77, 32), torch.zeros(1, 77, 32)
    per_step = inversions["null-text"].unconditional(cond, empty)
    assert isinstance(per_step, list) and len(per_step) == STEPS and per_step[0].shape == (1, 77, 32)
    stored = inversions["null-text"].uncond_embeddings  # phi_T first: the order sampling uses them in
    assert not torch.equal(stored[0], stored[-1])
    assert all(torch.equal(e[0], stored[i]) for i, e in enumerate(per_step))
    half = inversions["null-text"].unconditional(cond.half(), empty.half())
    assert half[0].dtype == torch.float16 and torch.equal(half[-1][0], stored[-1].half())
    assert inversions["negative-prompt"].unconditional(cond, empty) is cond
    assert inversions["ddim"].unconditional(cond, empty) is empty
    assert inversions["direct"].unconditional(cond, empty) is empty
    pivots = inversions["direct"].source_pivots(torch.zeros(1, dtype=torch.float64))
    assert len(pivots) == STEPS and pivots[0].dtype == torch.float64 and pivots[0].shape == (1, 4, 8, 12)
    stored = inversions["direct"].pivots  # z*_{T-1} first, z*_0 last
    assert all(torch.equal(z[0], stored[i].double()) for i, z in enumerate(pivots))
    assert torch.equal(pivots[-1][0].float(), inversions["direct"].z0[0])


def test_metadata_is_plain_json_and_tensors_hold_the_photo_losslessly(saved, inversions):
    metadata, tensors = read(saved)
    assert json.loads(metadata["size"]) == [24, 16] and metadata["method"] == "null-text"
    assert tensors["original_png"].dtype == torch.uint8 and set(tensors) >= {
        "latent_T",
        "z0",
        "uncond_embeddings",
    }


def test_the_stored_photo_is_held_to_the_photo_loaders_pixel_limit(saved):
    with pytest.raises(ArtifactError, match=r"the stored photo: 76x50 = 3,800 pixels exceeds the limit of 3,799"):
        Inversion.load(saved, max_pixels=3799)
    assert Inversion.load(saved, max_pixels=3800).original.shape[:2] == (50, 76)


def test_a_small_artifact_that_decodes_to_a_huge_photo_is_refused_before_decoding(tmp_path, inversions, monkeypatch):
    import inversion.artifact as artifact

    bomb = torch.frombuffer(bytearray(png_header_only(10_001, 10_000)), dtype=torch.uint8)  # 100.01 MP, 57 bytes
    monkeypatch.setattr(artifact, "png_bytes", lambda rgb, info=None: bomb)
    path = inversions["ddim"].save(tmp_path / "bomb.inv.safetensors")
    assert path.stat().st_size < 20_000
    with pytest.raises(ArtifactError, match=r"10001x10000 = 100,010,000 pixels exceeds the limit of 100,000,000"):
        Inversion.load(path)


def test_loading_an_artifact_lets_no_pil_warning_through(saved, monkeypatch):
    import warnings

    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 76x50 = 3800 pixels: PIL warns of a bomb
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Inversion.load(saved).original.shape[:2] == (50, 76)


def test_a_saved_artifact_names_the_photo_without_the_folders_of_this_machine(tmp_path, tiny_pipe):
    from PIL import Image

    folder = tmp_path / "home" / "someone" / "private photos"
    folder.mkdir(parents=True)
    Image.fromarray(np.ascontiguousarray(skimage.data.chelsea()[::6, ::6])).save(folder / "cat.png")
    scheduler = ddim_scheduler(tiny_pipe.scheduler.config)
    inv = invert(
        tiny_pipe,
        scheduler,
        folder / "cat.png",
        InversionSettings(PROMPT, "ddim", 2, size=(24, 16)).resolved(),
        progress=False,
    )
    metadata, _ = read(inv.save(tmp_path / "cat.inv.safetensors"))
    assert metadata["source"] == "cat.png"
    assert not [key for key, value in metadata.items() if str(tmp_path) in value or "someone" in value]
    assert Inversion.load(tmp_path / "cat.inv.safetensors").source == "cat.png"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds no image data."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
