"""The training script runs end to end on the tiny preset, resumes, and its pieces behave."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from p2p_real.models.loading import load_pipeline
from p2p_real.toyworld.captions import build_tokenizer
from training.data import BACKGROUND_TARGET, FOOTPRINT_TARGET, NO_TARGET, make_batch
from training.objectives import attention_loss, cosine_lr
from training.toyworld import main, parse_args


def _rows(path):
    with (path / "train" / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_train_runs_end_to_end_and_resumes(tmp_path):
    args = ["--out", str(tmp_path), "--preset", "test", "--device", "cpu", "--minutes", "5", "--samples", "0"]
    assert main([*args, "--vae-steps", "2", "--unet-steps", "2"]) == 0
    state = torch.load(tmp_path / "train" / "state.pt", weights_only=True)
    assert (state["stage"], state["step"]) == ("done", 2)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "train" / "info.json").is_file()
    assert main([*args, "--vae-steps", "2", "--unet-steps", "3", "--resume"]) == 0
    state = torch.load(tmp_path / "train" / "state.pt", weights_only=True)
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


def test_size_words_can_attend_to_the_footprint():
    # --size-attention footprint: "small"/"big" look at a disc as large as the biggest object of the shape
    plain = make_batch(seed=1, stage=2, index=0, batch_size=8, image_size=64, map_size=16, caption_dropout=0.0)
    wide = make_batch(
        seed=1, stage=2, index=0, batch_size=8, image_size=64, map_size=16, caption_dropout=0.0, size_footprint=True
    )
    assert np.array_equal(plain["images"], wide["images"]) and wide["targets"].shape == (8, 5, 256)
    moved = plain["token_target"] != wide["token_target"]
    assert moved.any() and set(np.unique(wide["token_target"][moved])) <= {FOOTPRINT_TARGET, FOOTPRINT_TARGET + 1}
    assert set(build_tokenizer().convert_ids_to_tokens(wide["input_ids"][moved].tolist())) <= {"small</w>", "big</w>"}
    for b, k in zip(*np.nonzero(moved)):
        obj = wide["token_target"][b, k] - FOOTPRINT_TARGET
        footprint, own = wide["targets"][b, FOOTPRINT_TARGET + obj], wide["targets"][b, obj]
        assert own[footprint > 0].sum() > 0.97  # the object lies inside its footprint
        assert (footprint > 0).sum() > (own > 0).sum()  # which is larger than the object


def test_size_flip_swaps_the_size_words_of_the_context_only():
    # --size-flip: the other tokens are encoded from the caption of the other size (docs/toyworld.md, "Size by
    # reweighting")
    tokenizer = build_tokenizer()
    plain = make_batch(seed=1, stage=2, index=0, batch_size=16, image_size=32, map_size=4, caption_dropout=0.0)
    flip = make_batch(
        seed=1, stage=2, index=0, batch_size=16, image_size=32, map_size=4, caption_dropout=0.0, size_flip=1.0
    )
    for key in plain:  # the flip adds to a batch and changes nothing in it
        assert np.array_equal(plain[key], flip[key])
    swap = {"small</w>": "big</w>", "big</w>": "small</w>"}
    flipped_rows = 0
    for ids, other, sizes in zip(flip["input_ids"], flip["flip_ids"], flip["size_tokens"]):
        words, others = tokenizer.convert_ids_to_tokens(ids.tolist()), tokenizer.convert_ids_to_tokens(other.tolist())
        said = [i for i, word in enumerate(words) if word in swap]
        assert np.nonzero(sizes)[0].tolist() == said  # every caption that says a size is flipped at p = 1
        assert [others[i] for i in said] == [swap[words[i]] for i in said]
        assert all(others[i] == words[i] for i in range(len(words)) if i not in said)
        flipped_rows += bool(said)
    assert flipped_rows >= 4
    none = make_batch(
        seed=1, stage=2, index=0, batch_size=16, image_size=32, map_size=4, caption_dropout=0.0, size_flip=1e-9
    )
    assert np.array_equal(none["flip_ids"], none["input_ids"]) and not none["size_tokens"].any()
    with pytest.raises(ValueError, match="--size-flip"):
        parse_args(["--out", "x", "--size-flip", "1.5"])


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


def test_folding_the_latent_scale_keeps_the_images_and_standardises_the_latents():
    """docs/toyworld.md: the trainer centres and scales the latents per channel inside the VAE."""
    from p2p_real.toyworld.model import build_vae, get_config
    from p2p_real.toyworld.quality import images_to_tensor, rendered_images
    from training.objectives import fold_latent_scale

    torch.manual_seed(0)
    vae = build_vae(get_config("test")).eval()
    x = images_to_tensor(rendered_images(6, 32))
    with torch.no_grad():
        before = vae.encode(x).latent_dist
        images = vae.decode(before.mean).sample
        mean, std = before.mean.mean(dim=(0, 2, 3)), before.mean.std(dim=(0, 2, 3))
        fold_latent_scale(vae, mean, std)
        after = vae.encode(x).latent_dist
        torch.testing.assert_close(vae.decode(after.mean).sample, images, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after.mean.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(after.mean.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after.std, before.std / std[None, :, None, None], atol=1e-6, rtol=1e-4)


def test_resuming_refuses_torch_without_a_safe_loader(tmp_path, monkeypatch):
    from training import toyworld

    path = tmp_path / "state.pt"
    torch.save({"step": 1}, path)
    assert toyworld.load_state(path, torch.device("cpu")) == {"step": 1}
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(RuntimeError, match=r"torch >= 2\.6"):
        toyworld.load_state(path, torch.device("cpu"))


def test_min_snr_weights_and_pooled_targets():
    from training.objectives import pool_targets, snr_weight

    alphas = torch.tensor([0.999, 0.5, 0.01])
    weights = snr_weight(alphas, 5.0)
    assert weights[0] == pytest.approx(5.0 / 999.0, rel=1e-3) and weights[1:].tolist() == [1.0, 1.0]
    assert snr_weight(alphas, 0).tolist() == [1.0, 1.0, 1.0]
    targets = torch.rand(2, 3, 16)
    targets = targets / targets.sum(-1, keepdim=True)
    pooled = pool_targets(targets, 4, 2)
    assert pooled.shape == (2, 3, 4)
    torch.testing.assert_close(pooled.sum(-1), torch.ones(2, 3))
    assert pooled[0, 0, 0] == pytest.approx(float(targets[0, 0].reshape(4, 4)[:2, :2].sum()))


def test_offset_noise_shifts_each_channel_by_one_draw_and_is_off_by_default():
    """docs/toyworld.md: --noise-offset adds one normal draw per image and channel to the training noise."""
    from training.objectives import training_noise

    shape = torch.Size((256, 4, 16, 16))
    plain = training_noise(shape, 0.0, torch.Generator().manual_seed(0), "cpu")
    shifted = training_noise(shape, 0.5, torch.Generator().manual_seed(0), "cpu")
    offset = shifted - plain  # the same first draw, so the difference is the per-channel offset alone
    assert torch.allclose(offset, offset[..., :1, :1].expand_as(offset), atol=1e-5)  # one value per channel
    assert 0.4 < offset[:, :, 0, 0].std().item() < 0.6  # 0.5 times a unit normal
    assert abs(plain.mean(dim=(2, 3)).std().item() - 1 / 16) < 0.02  # without it channel means are 1/sqrt(256)


@pytest.mark.slow
def test_training_continues_from_a_pipeline_folder(tmp_path):
    # --init-model: a session without the previous run's state.pt (a lent GPU) continues from committed weights
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--preset", "test", "--device", "cpu", "--minutes", "5", "--samples", "0"]
    assert main(["--out", str(first), *common, "--vae-steps", "2", "--unet-steps", "2"]) == 0
    assert main(["--out", str(second), *common, "--init-model", str(first), "--unet-steps", "0"]) == 0
    a, b = load_pipeline(first, device="cpu"), load_pipeline(second, device="cpu")
    for part in ("vae", "unet", "text_encoder"):  # no step taken: the export is the folder it started from
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), part
    state = torch.load(second / "train" / "state.pt", weights_only=True)
    assert state["elapsed"]["vae"] == 0.0 and state["info"]["init_model"] == str(first)  # no VAE stage
    assert main(["--out", str(second), *common, "--init-model", str(first), "--unet-steps", "1"]) == 0
    c = load_pipeline(second, device="cpu")
    assert not torch.equal(c.unet.conv_in.weight, a.unet.conv_in.weight)  # and then it trains
    # --cpu-bf16: the same first step (same weights, same batch) computed under bf16 autocast
    bf16 = tmp_path / "bf16"
    assert main(["--out", str(bf16), *common, "--init-model", str(first), "--unet-steps", "1", "--cpu-bf16"]) == 0
    loss32, loss16 = float(_rows(second)[0]["loss"]), float(_rows(bf16)[0]["loss"])
    assert loss16 != loss32 and loss16 == pytest.approx(loss32, rel=0.05)
    with pytest.raises(ValueError, match="does not fit the preset 'mini'"):
        main(
            [
                "--out",
                str(tmp_path / "third"),
                "--preset",
                "mini",
                "--device",
                "cpu",
                "--minutes",
                "5",
                "--init-model",
                str(first),
            ]
        )


@pytest.mark.slow
def test_a_teacher_gives_the_target_it_is_weighted_by(tmp_path):
    # --teacher: the denoising target is lerp(noise, teacher's prediction for the true caption, weight)
    first = tmp_path / "first"
    common = ["--preset", "test", "--device", "cpu", "--minutes", "5", "--samples", "0", "--attn-weight", "0"]
    assert main(["--out", str(first), *common, "--vae-steps", "2", "--unet-steps", "2"]) == 0
    losses = {}
    for weight in ("0", "1"):
        out = tmp_path / f"w{weight}"
        assert (
            main(
                [
                    "--out",
                    str(out),
                    *common,
                    "--init-model",
                    str(first),
                    "--teacher",
                    str(first),
                    "--teacher-weight",
                    weight,
                    "--unet-steps",
                    "1",
                ]
            )
            == 0
        )
        losses[weight] = float(_rows(out)[0]["loss"])
    assert losses["1"] < 1e-8  # the student starts as the teacher: it already predicts the whole target
    assert losses["0"] > 1e-3  # the drawn noise alone: the usual diffusion loss
    with pytest.raises(ValueError, match="--teacher-weight"):
        parse_args(["--out", "x", "--teacher-weight", "1.5"])
    with pytest.raises(FileNotFoundError, match="no unet/ folder"):
        parse_args(["--out", "x", "--teacher", str(tmp_path)])
