"""The training script runs end to end on the tiny preset, resumes, and its pieces behave."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from p2p_real.loading import load_pipeline
from p2p_real.toyworld.data import BACKGROUND_TARGET, NO_TARGET, make_batch
from p2p_real.toyworld.train import attention_loss, cosine_lr, main, parse_args


def _rows(path):
    with (path / "train" / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_train_runs_end_to_end_and_resumes(tmp_path):
    args = ["--out", str(tmp_path), "--preset", "test", "--device", "cpu", "--minutes", "5", "--samples", "0"]
    assert main([*args, "--vae-steps", "2", "--unet-steps", "2"]) == 0
    state = torch.load(tmp_path / "train" / "state.pt", weights_only=False)
    assert (state["stage"], state["step"]) == ("done", 2)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "train" / "info.json").is_file()
    assert main([*args, "--vae-steps", "2", "--unet-steps", "3", "--resume"]) == 0
    state = torch.load(tmp_path / "train" / "state.pt", weights_only=False)
    assert state["step"] == 3
    rows = _rows(tmp_path)
    assert rows[0]["stage"] == "vae" and rows[-1]["stage"] == "unet"
    pipe = load_pipeline(tmp_path, device="cpu")
    assert pipe.vae.config.scaling_factor == pytest.approx(state["scaling_factor"])
    out = pipe("a red circle", num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 32, 32, 3)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        parse_args(["--out", "x", "--minutes", "0"])
    with pytest.raises(ValueError):
        parse_args(["--out", "x", "--preset", "nope"])


def test_batches_are_reproducible_and_carry_attention_targets():
    a = make_batch(seed=0, stage=2, index=5, batch_size=6, image_size=32, map_size=4, caption_dropout=0.0)
    b = make_batch(seed=0, stage=2, index=5, batch_size=6, image_size=32, map_size=4, caption_dropout=0.0)
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert a["images"].shape == (6, 32, 32, 3) and a["input_ids"].shape == (6, 77)
    assert a["targets"].shape == (6, 3, 16)
    np.testing.assert_allclose(a["targets"][:, 0].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(a["targets"][:, BACKGROUND_TARGET].sum(-1), 1.0, rtol=1e-5)
    assert ((a["token_target"] == 0).sum(-1) >= 2).all()  # colour and shape at least
    dropped = make_batch(seed=0, stage=2, index=5, batch_size=6, image_size=32, map_size=4, caption_dropout=1.0)
    assert (dropped["token_target"] == NO_TARGET).all()


def test_attention_loss_is_zero_when_attention_matches_the_mask():
    targets = torch.zeros(1, 3, 4)
    targets[0, 0] = torch.tensor([0.5, 0.5, 0.0, 0.0])
    token_target = torch.full((1, 3), -1)
    token_target[0, 1] = 0
    matching = torch.full((1, 4, 3), 0.25)
    matching[0, :, 1] = torch.tensor([0.5, 0.5, 0.0, 0.0])
    assert attention_loss(matching, token_target, targets).item() == pytest.approx(0.0, abs=1e-5)
    elsewhere = matching.clone()
    elsewhere[0, :, 1] = torch.tensor([0.0, 0.0, 0.5, 0.5])
    assert attention_loss(elsewhere, token_target, targets).item() > 5


def test_cosine_lr_warms_up_and_decays():
    assert cosine_lr(1.0, 0, 0.0, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(1.0, 100, 0.0, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 100, 1.0, warmup=10) == pytest.approx(0.05)
