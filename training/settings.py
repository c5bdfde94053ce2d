"""The trainer's settings: what a run depends on, its command line and the checks of its values."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from p2p_real.toyworld.model import get_config


@dataclass
class TrainSettings:
    """Everything a run depends on; per-device defaults fill the fields left None."""

    out: Path
    device: str = "auto"
    minutes: float = 60.0
    seed: int = 0
    resume: bool = False
    preset: str = "toy"
    vae_fraction: float = 0.2
    vae_batch: int | None = None
    vae_lr: float = 1e-3
    vae_crop: int | None = None
    kl_weight: float = 1e-5
    init_vae: Path | None = None
    init_model: Path | None = None
    vae_target_db: float = 36.0
    unet_batch: int | None = None
    unet_lr: float | None = None
    caption_dropout: float = 0.1
    attn_weight: float = 0.05
    size_attention: str = "object"
    size_flip: float = 0.0
    teacher: Path | None = None
    teacher_weight: float = 0.8
    min_snr: float = 5.0
    noise_offset: float = 0.0
    attn_max_t: int = 800
    ema_decay: float = 0.999
    workers: int | None = None
    checkpoint_minutes: float | None = None
    vae_steps: int | None = None
    unet_steps: int | None = None
    compile: bool = False
    cpu_bf16: bool = False
    samples: int | None = None
    export_only: bool = False

    def fill_defaults(self, device: torch.device) -> None:
        """Bigger batches, a higher learning rate and data workers on CUDA; small and in-process on CPU."""
        cuda = device.type == "cuda"
        if self.vae_batch is None:
            self.vae_batch = 64 if cuda else 16
        if self.vae_crop is None and not cuda and self.preset != "test":
            self.vae_crop = 32
        if self.unet_batch is None:
            self.unet_batch = 256 if cuda else 64  # 64 runs 2.5x more images per second than 8 on 2 cores
        if self.unet_lr is None:
            self.unet_lr = 5e-4
        if self.workers is None:
            self.workers = max(min(12, (os.cpu_count() or 1) - 2), 0) if cuda else 0
        if self.checkpoint_minutes is None:
            self.checkpoint_minutes = 2.0 if cuda else 5.0
        if self.samples is None:
            self.samples = 64 if cuda else 16


def parse_args(argv: list[str] | None = None) -> TrainSettings:
    """Command line -> TrainSettings."""
    parser = argparse.ArgumentParser(
        prog="python -m training.toyworld",
        description="Train the toy world model from scratch: the VAE first, then the UNet and text encoder on the "
        "diffusion loss.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (pipeline + train/ state)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--minutes", type=float, default=60.0, help="total time budget, both stages and export")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from DIR/train/state.pt")
    parser.add_argument(
        "--preset",
        default="mini",
        help="model size: mini (the shipped one, 64px, an hour on 2 CPU cores), toy (128px, for a GPU) or test (tiny)",
    )
    parser.add_argument("--vae-fraction", type=float, default=0.2, help="share of the budget for the VAE")
    parser.add_argument("--vae-batch", type=int)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--vae-crop", type=int, help="train the VAE on random crops of this side")
    parser.add_argument("--kl-weight", type=float, default=1e-5)
    parser.add_argument("--init-vae", type=Path, help="start the VAE from this pipeline folder's vae/ (fine-tune)")
    parser.add_argument(
        "--init-model",
        type=Path,
        help="continue training from this pipeline folder (e.g. p2p_real/toyworld/model): its VAE is kept as it "
        "is and only the UNet and text encoder train (fresh optimiser, the --minutes budget all for the UNet)",
    )
    parser.add_argument(
        "--vae-target-db",
        type=float,
        default=36.0,
        help="past its share, the VAE trains on (up to 1.5x) until this PSNR",
    )
    parser.add_argument("--unet-batch", type=int)
    parser.add_argument("--unet-lr", type=float)
    parser.add_argument("--caption-dropout", type=float, default=0.1)
    parser.add_argument("--attn-weight", type=float, default=0.05, help="weight of the attention-to-mask loss")
    parser.add_argument(
        "--size-attention",
        choices=("object", "footprint"),
        default="object",
        help="what the size words' attention is pulled to: the object, or a disc as large as the biggest object "
        "of its shape (room to grow for a reweighted 'big'; docs/toyworld.md)",
    )
    parser.add_argument(
        "--size-flip",
        type=float,
        default=0.0,
        help="share of the captions that say a size whose other tokens are encoded from the caption of the other "
        "size, so that only the size word tells the size (what a reweight of it can change; docs/toyworld.md)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="a trained pipeline folder whose UNet, given the true caption, gives part of the denoising target "
        "(distillation): with --size-flip, it says what the true size looks like without the noise of one "
        "drawn scene (docs/toyworld.md, 'A teacher teaches the size word')",
    )
    parser.add_argument(
        "--teacher-weight",
        type=float,
        default=0.8,
        help="share of the teacher's prediction in the target; the rest is the drawn noise",
    )
    parser.add_argument(
        "--min-snr", type=float, default=5.0, help="Min-SNR-gamma loss weighting (Hang et al. 2023); 0 turns it off"
    )
    parser.add_argument(
        "--noise-offset",
        type=float,
        default=0.0,
        help="add this times one normal draw per latent channel to the noise (offset noise, Guttenberg 2023): "
        "without it the model never learns to set a scene's overall colour from the caption",
    )
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--workers", type=int, help="data loader processes (default: 0 on CPU, up to 12 on CUDA)")
    parser.add_argument("--checkpoint-minutes", type=float)
    parser.add_argument("--vae-steps", type=int, help="stop the VAE stage after this many steps")
    parser.add_argument("--unet-steps", type=int, help="stop the UNet stage after this many steps")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (CUDA)")
    parser.add_argument(
        "--cpu-bf16",
        action="store_true",
        help="bf16 autocast on CPU too (CUDA always uses it): 1.25x more images per second on a CPU with AMX "
        "(docs/toyworld.md), slower on one without",
    )
    parser.add_argument("--samples", type=int, help="prompts sampled at the end to check prompt following")
    parser.add_argument("--export-only", action="store_true", help="write DIR's pipeline from state.pt, no training")
    args = parser.parse_args(argv)
    settings = TrainSettings(**{k: v for k, v in vars(args).items()})
    settings.resume = settings.resume or settings.export_only
    if settings.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {settings.minutes}")
    if not 0 < settings.vae_fraction <= 0.6:
        raise ValueError(f"--vae-fraction must be in (0, 0.6] (the VAE may run 1.5x it), got {settings.vae_fraction}")
    if not 0 <= settings.size_flip <= 1:
        raise ValueError(f"--size-flip must be in [0, 1], got {settings.size_flip}")
    if not 0 <= settings.teacher_weight <= 1:
        raise ValueError(f"--teacher-weight must be in [0, 1], got {settings.teacher_weight}")
    if settings.teacher is not None:
        for part in ("unet", "text_encoder"):
            if not (settings.teacher / part).is_dir():
                raise FileNotFoundError(f"--teacher {settings.teacher} has no {part}/ folder: give a pipeline folder")
    if not 0 <= settings.noise_offset < 1:
        raise ValueError(f"--noise-offset must be in [0, 1), got {settings.noise_offset}")
    get_config(settings.preset)
    return settings
