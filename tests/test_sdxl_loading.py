"""SDXL from a diffusers folder, a single checkpoint or a hub id, and through the command line and a batch
recipe (docs/design.md §12; README "Stable Diffusion XL")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import cli
from inversion.artifact import Inversion
from p2p_real.models.loading import ModelLoadError, load_pipeline
from p2p_real.testing import tiny_pipeline, tiny_sdxl_pipeline
from tests.helpers import CAT, DOG, cli_args, draw_photo


def test_an_sdxl_diffusers_folder_loads_as_an_sdxl_pipeline_with_ddim(tiny_sdxl_pipe):
    assert isinstance(tiny_sdxl_pipe, StableDiffusionXLPipeline)
    assert isinstance(tiny_sdxl_pipe.scheduler, DDIMScheduler) and tiny_sdxl_pipe.watermark is None


def _fake_loader(calls: list, pipe):
    def load(cls, *args, **kwargs):
        calls.append((cls, args, kwargs))
        return pipe

    return classmethod(load)


@pytest.mark.parametrize(
    ("key", "cls"),
    [
        ("conditioner.embedders.1.model.positional_embedding", StableDiffusionXLPipeline),
        ("model.diffusion_model.input_blocks.0.0.weight", StableDiffusionPipeline),
    ],
)
def test_a_single_checkpoint_is_told_sdxl_or_sd_by_its_tensor_names(tmp_path, monkeypatch, key, cls):
    path = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(1)}, path)
    calls = []
    pipe = tiny_sdxl_pipeline() if cls is StableDiffusionXLPipeline else tiny_pipeline()
    monkeypatch.setattr(cls, "from_single_file", _fake_loader(calls, pipe))
    assert load_pipeline(path, device="cpu") is pipe
    ((called, args, kwargs),) = calls
    assert called is cls and args == (str(path),)
    assert kwargs.get("add_watermarker", None) is (False if cls is StableDiffusionXLPipeline else None)


def test_a_hub_id_of_an_sdxl_model_loads_the_sdxl_pipeline_named_by_its_hub_id(monkeypatch, tmp_path):
    calls, pipe = [], tiny_sdxl_pipeline()
    index = {"_class_name": "StableDiffusionXLPipeline", "text_encoder": ["transformers", "CLIPTextModel"]}
    (tmp_path / "model_index.json").write_text(json.dumps(index))  # what the download leaves in the cache
    monkeypatch.setattr(DiffusionPipeline, "download", classmethod(lambda cls, model_id, **kw: str(tmp_path)))
    monkeypatch.setattr(StableDiffusionXLPipeline, "from_pretrained", _fake_loader(calls, pipe))
    assert load_pipeline("stabilityai/stable-diffusion-xl-base-1.0", device="cpu") is pipe
    ((_, args, kwargs),) = calls
    assert args == (tmp_path,) and kwargs["local_files_only"] and kwargs["add_watermarker"] is False
    assert pipe.name_or_path == "stabilityai/stable-diffusion-xl-base-1.0"  # results name the model, not the cache


def test_an_sdxl_refiner_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "refiner.safetensors"
    save_file({"conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias": torch.zeros(1)}, path)
    with pytest.raises(ModelLoadError, match="is an SDXL refiner"):
        load_pipeline(path, device="cpu")
    folder = tmp_path / "refiner"
    folder.mkdir()
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionXLImg2ImgPipeline",
                "text_encoder": [None, None],
                "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            }
        )
    )
    with pytest.raises(ModelLoadError, match="is an SDXL refiner"):
        load_pipeline(folder, device="cpu")


def test_the_command_line_edits_and_generates_with_an_sdxl_model(tiny_sdxl_dir, tmp_path, capsys):
    photo = draw_photo(tmp_path / "photo.png")
    out = tmp_path / "out"
    common = ["--steps", "2", "--model", str(tiny_sdxl_dir), "-q"]
    assert (
        cli.main(
            cli_args("edit", photo, "--blend", "cat:dog", "--method", "ddim", "--out", out, *common, targets=[DOG])
        )
        == 0
    )
    assert {p.name for p in out.iterdir()} >= {
        "photo.0.png",
        "photo.1.png",
        "photo.1.mask.png",
        "photo.json",
        "photo.inv.safetensors",
    }
    assert Image.open(out / "photo.1.png").size == (56, 40)  # the photo's own resolution
    assert json.loads((out / "photo.json").read_text())["parameters"]["model_family"] == "sdxl"
    with safe_open(out / "photo.inv.safetensors", framework="pt") as handle:
        assert handle.metadata()["model_family"] == "sdxl"
    assert cli.main(["generate", CAT, DOG, "--size", "32x32", "--out", str(tmp_path / "gen"), *common]) == 0
    assert len(list((tmp_path / "gen").glob("*.png"))) >= 2


def test_the_command_line_inverts_reconstructs_and_draws_attention_with_an_sdxl_model(
    tiny_sdxl_dir, tiny_model_dir, tmp_path, capsys
):
    photo = draw_photo(tmp_path / "photo.png")
    common = ["--steps", "2", "--model", str(tiny_sdxl_dir), "-q"]
    inv = tmp_path / "photo.inv.safetensors"
    assert (
        cli.main(["invert", str(photo), "-p", "a cat on a wall", "--method", "null-text", "-o", str(inv), *common]) == 0
    )
    assert "VAE ceiling" in capsys.readouterr().out
    assert cli.main(["reconstruct", str(inv), "--out", str(tmp_path / "rec"), *common]) == 0
    assert Image.open(tmp_path / "rec" / "photo.recon.png").size == Inversion.load(inv).size  # the working size
    assert (
        cli.main(
            [
                "attention",
                str(photo),
                "-p",
                "a cat on a wall",
                "-t",
                "a dog on a wall",
                "--out",
                str(tmp_path / "att"),
                *common,
            ]
        )
        == 0
    )
    assert list((tmp_path / "att").glob("*.attention.png"))
    capsys.readouterr()
    assert (
        cli.main(
            [
                "edit",
                str(inv),
                "-t",
                "a dog on a wall",
                "--out",
                str(tmp_path / "sd"),
                "--model",
                str(tiny_model_dir),
                "-q",
            ]
        )
        != 0
    )  # an SD model refuses the SDXL inversion, saying why
    assert "made with a Stable Diffusion XL model, not with Stable Diffusion 1.x/2.x" in capsys.readouterr().err


def test_a_batch_recipe_runs_on_an_sdxl_model(tiny_sdxl_dir, tmp_path, capsys):
    draw_photo(tmp_path / "photo.png")
    recipe = {
        "model": str(tiny_sdxl_dir),
        "out": "results",
        "defaults": {"method": "negative-prompt", "steps": 2},
        "photos": [
            {
                "photo": "photo.png",
                "prompt": "a cat on a wall",
                "edits": [
                    {"target": "a dog on a wall", "blend": "cat:dog"},
                    {"target": "a cat on a green wall", "reweight": {"green": 2}},
                ],
            }
        ],
    }
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    assert cli.main(["batch", str(tmp_path / "recipe.json"), "-q"]) == 0
    sidecars = sorted((tmp_path / "results" / "photo").glob("*.json"))
    assert len(sidecars) == 2
    edited = np.asarray(Image.open(sidecars[0].with_suffix(".1.png")))
    assert edited.shape == (40, 56, 3)
    assert all(json.loads(p.read_text())["parameters"]["model_family"] == "sdxl" for p in sidecars)
