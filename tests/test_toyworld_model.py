"""The toy model builds as a diffusers pipeline that loads through load_pipeline and generates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from p2p_real.models.loading import load_pipeline
from p2p_real.toyworld import model as toy_model
from p2p_real.toyworld.model import PRESETS, build_pipeline, get_config, parameter_counts, save_pipeline


@pytest.mark.parametrize(("preset", "sizes"), [("mini", (64, 32, 8)), ("toy", (128, 64, 16))])
def test_configs_keep_maps_at_latent_over_4_with_cross_attention(preset, sizes):
    config = PRESETS[preset]
    assert (config.image_size, config.latent_size, config.map_size) == sizes
    unet = toy_model.build_unet(config)
    names = [n for n in unet.attn_processors if ".attn2." in n]
    assert any(n.startswith("down_blocks.2.") for n in names)  # latent/4 level
    assert any(n.startswith("down_blocks.1.") for n in names)  # latent/2 level
    assert not any(n.startswith("down_blocks.0.") for n in names)


@pytest.mark.parametrize("preset", ["mini", "toy"])
def test_configs_fit_the_size_budget(preset):
    pipe = build_pipeline(preset)
    counts = parameter_counts(pipe)
    assert sum(counts.values()) * 2 < 30e6  # float16 storage
    assert pipe.vae_scale_factor == 2 and pipe.unet.config.sample_size == PRESETS[preset].latent_size
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    assert pipe.scheduler.config.clip_sample is False and pipe.scheduler.config.set_alpha_to_one is False


def test_saved_tiny_pipeline_loads_float32_and_generates(tmp_path):
    pipe = build_pipeline("test", seed=1)
    save_pipeline(pipe, tmp_path, half=True)
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    assert pipe.unet.dtype == torch.float32  # saving in half leaves the caller's modules as they were
    loaded = load_pipeline(tmp_path, device="cpu")
    assert loaded.unet.dtype == loaded.vae.dtype == loaded.text_encoder.dtype == torch.float32
    assert loaded.tokenizer.tokenize("purple") == ["pur", "ple</w>"]
    out = loaded(
        "a red circle", num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)
    ).images
    assert out.shape == (1, 32, 32, 3) and np.isfinite(out).all()


def test_default_model_dir_explains_when_untrained(tmp_path, monkeypatch):
    monkeypatch.setattr(toy_model, "MODEL_DIR", tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="train"):
        toy_model.default_model_dir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}")
    assert toy_model.default_model_dir() == tmp_path / "model"


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="preset"):
        get_config("huge")
