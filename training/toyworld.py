"""Train the toy world model from scratch: the VAE first, then the UNet and text encoder on the diffusion loss.

    python -m training.toyworld --out DIR [--device auto] [--minutes M] [--seed 0] [--resume] [--init-vae DIR]
        [--init-model DIR]

DIR receives the diffusers pipeline (save_pretrained, float16 safetensors) and DIR/train/ the run's
state.pt (for --resume; tensors only, loaded with weights_only=True), log.csv, info.json and samples.png.
What makes it learn on two CPU cores is in docs/toyworld.md.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from tqdm import tqdm

from p2p_real.models.loading import resolve_device
from p2p_real.toyworld.model import ToyConfig, build_pipeline, get_config, parameter_counts, save_pipeline
from p2p_real.toyworld.quality import (
    image_grid,
    images_to_tensor,
    prompt_following,
    rendered_images,
    vae_reconstruction_psnr,
)
from training.data import batch_loader
from training.objectives import (
    AttentionProbe,
    attention_loss,
    cosine_lr,
    fold_latent_scale,
    pool_targets,
    snr_weight,
    training_noise,
)
from training.settings import TrainSettings, parse_args

STAGE_VAE, STAGE_UNET, STAGE_DONE = "vae", "unet", "done"
LOG_FIELDS = ("stage", "step", "seconds", "images", "loss", "detail", "lr")


def load_state(path: Path, device: torch.device) -> dict:
    """A checkpoint of this script, loaded without running code from the file (weights_only=True).

    torch < 2.6 can run code even with weights_only=True (CVE-2025-32434), so resuming needs torch >= 2.6.
    """
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 6):
        raise RuntimeError(
            f"resuming from {path} needs torch >= 2.6 (found {torch.__version__}): older versions "
            "can run code from a checkpoint file even with weights_only=True"
        )
    return torch.load(path, map_location=device, weights_only=True)


def progress_bar(seconds: float, stage: str) -> tqdm:
    """A bar over the stage's seconds; updated rarely when the output is not a terminal (logs stay short)."""
    return tqdm(
        total=round(seconds), unit="s", desc=stage, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 20
    )


def load_teacher(folder: Path, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A trained pipeline's UNet and text encoder, frozen, for --teacher."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    parts = []
    for name, cls in (("unet", UNet2DConditionModel), ("text_encoder", CLIPTextModel)):
        module = cls.from_pretrained(folder / name, torch_dtype=torch.float32).to(device).eval()
        module.requires_grad_(False)
        parts.append(module)
    print(f"teacher: {folder}", flush=True)
    return parts[0], parts[1]


@dataclass
class StepOutcome:
    """One training step's loss and batch size, and what the log's detail column and the bar say of it."""

    loss: torch.Tensor
    images: int
    detail: Callable[[float], str]  # given the images per second of the last window
    postfix: Callable[[float], dict[str, str]]


class Run:
    """One training run: models, optimisers, the time budget, checkpoints and the CSV log."""

    def __init__(self, settings: TrainSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        settings.fill_defaults(self.device)
        self.config: ToyConfig = get_config(settings.preset)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.out = Path(settings.out)
        self.train_dir = self.out / "train"
        self.train_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.train_dir / "state.pt"
        pipe = build_pipeline(self.config, seed=settings.seed)
        self.pipe = pipe
        self.vae = pipe.vae.to(self.device)
        self.unet = pipe.unet.to(self.device)
        self.text_encoder = pipe.text_encoder.to(self.device)
        self.scheduler = pipe.scheduler
        self.budget = settings.minutes * 60.0
        self.reserve = min(0.1 * self.budget, 60.0 if not self.cuda else 20.0)  # export and checks at the end
        self.stage = STAGE_VAE
        self.step = 0
        self.elapsed = {STAGE_VAE: 0.0, STAGE_UNET: 0.0}
        self.scaling_factor = 1.0
        self.vae_psnr: float | None = None  # smoothed training PSNR of the VAE (dB)
        self.info: dict = {"settings": {k: str(v) for k, v in asdict(settings).items()}}
        self.vae_opt = torch.optim.AdamW(self.vae.parameters(), lr=settings.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.unet_params = [*self.unet.parameters(), *self.text_encoder.parameters()]
        self.unet_opt = torch.optim.AdamW(self.unet_params, lr=settings.unet_lr, betas=(0.9, 0.999), weight_decay=0.01)
        self.ema = [p.detach().clone().float() for p in self.unet_params]
        self.ema_updates = 0
        self.last_save = time.monotonic()
        use_teacher = settings.teacher is not None and not settings.export_only
        self.teacher = load_teacher(settings.teacher, self.device) if use_teacher else None
        if settings.resume and self.state_path.is_file():
            self.load()
        else:
            if settings.export_only:
                raise FileNotFoundError(f"--export-only needs a run to export: {self.state_path} does not exist")
            if not settings.resume:
                (self.train_dir / "log.csv").unlink(missing_ok=True)
            if settings.init_model is not None:
                self.init_model(Path(settings.init_model))
            elif settings.init_vae is not None:
                self.init_vae(Path(settings.init_vae))

    @torch.no_grad()
    def init_model(self, folder: Path) -> None:
        """Start from a trained pipeline folder: its VAE (latent normalisation included) stays as it is, the UNet
        and text encoder continue training from its weights, which also start the EMA. The VAE stage is skipped."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        parts = {
            "vae": (AutoencoderKL, self.vae),
            "unet": (UNet2DConditionModel, self.unet),
            "text_encoder": (CLIPTextModel, self.text_encoder),
        }
        for name, (cls, module) in parts.items():
            if not (folder / name).is_dir():
                raise FileNotFoundError(f"--init-model {folder} has no {name}/ folder: give a pipeline folder")
            trained = cls.from_pretrained(folder / name, torch_dtype=torch.float32)
            try:
                module.load_state_dict(trained.state_dict())
            except RuntimeError as exc:
                raise ValueError(
                    f"--init-model {folder}: its {name} does not fit the preset "
                    f"{self.settings.preset!r} ({str(exc).splitlines()[0]})"
                ) from exc
            if name == "vae":
                self.scaling_factor = float(trained.config.scaling_factor)
        self.ema = [p.detach().clone().float() for p in self.unet_params]
        self.stage, self.step = STAGE_UNET, 0
        images = rendered_images(64, self.config.image_size, seed=self.settings.seed + 777)
        self.info["init_model"] = str(folder)
        self.info["vae_psnr_db"] = round(vae_reconstruction_psnr(self.vae, images), 2)
        self.info["scaling_factor"] = self.scaling_factor
        print(f"UNet, text encoder and VAE initialised from {folder} (VAE {self.info['vae_psnr_db']} dB)", flush=True)

    def init_vae(self, folder: Path) -> None:
        """Start the VAE from a trained pipeline's (fine-tuning it), its latent normalisation included."""
        from diffusers import AutoencoderKL

        path = folder / "vae" if (folder / "vae").is_dir() else folder
        trained = AutoencoderKL.from_pretrained(path, torch_dtype=torch.float32)
        if trained.config.latent_channels != self.vae.config.latent_channels:
            raise ValueError(
                f"{path} has {trained.config.latent_channels} latent channels, the preset wants "
                f"{self.vae.config.latent_channels}"
            )
        self.vae.load_state_dict(trained.state_dict())
        fold_latent_scale(
            self.vae,
            torch.zeros(self.config.latent_channels),
            torch.full((self.config.latent_channels,), 1.0 / trained.config.scaling_factor),
        )
        print(f"VAE initialised from {path}", flush=True)

    # ---- budget -----------------------------------------------------------------------------------------
    def stage_budget(self, stage: str) -> float:
        """Seconds the stage may run."""
        usable = max(self.budget - self.reserve, 1.0)
        if stage == STAGE_VAE:
            return usable * self.settings.vae_fraction
        return usable - self.elapsed[STAGE_VAE]

    def can_train_more(self) -> bool:
        """Whether the UNet stage has time and steps left under the current settings (for --resume)."""
        steps_left = self.settings.unet_steps is None or self.step < self.settings.unet_steps
        return steps_left and self.elapsed[STAGE_UNET] < self.stage_budget(STAGE_UNET)

    # ---- checkpoints ------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write DIR/train/state.pt atomically."""
        state = {
            "stage": self.stage,
            "step": self.step,
            "elapsed": self.elapsed,
            "scaling_factor": self.scaling_factor,
            "vae_psnr": self.vae_psnr,
            "vae": self.vae.state_dict(),
            "vae_opt": self.vae_opt.state_dict(),
            "unet": self.unet.state_dict(),
            "text_encoder": self.text_encoder.state_dict(),
            "unet_opt": self.unet_opt.state_dict(),
            "ema": self.ema,
            "ema_updates": self.ema_updates,
            "info": self.info,
            "preset": self.settings.preset,
            "seed": self.settings.seed,
        }
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path)
        self.last_save = time.monotonic()

    def load(self) -> None:
        """Restore a run from DIR/train/state.pt: tensors, numbers and strings only, never arbitrary objects."""
        state = load_state(self.state_path, self.device)
        if state["preset"] != self.settings.preset:
            raise ValueError(f"{self.state_path} is a {state['preset']!r} run; pass --preset {state['preset']}")
        self.stage, self.step, self.elapsed = state["stage"], state["step"], state["elapsed"]
        self.scaling_factor = state["scaling_factor"]
        self.vae_psnr = state["vae_psnr"]
        self.vae.load_state_dict(state["vae"])
        self.vae_opt.load_state_dict(state["vae_opt"])
        self.unet.load_state_dict(state["unet"])
        self.text_encoder.load_state_dict(state["text_encoder"])
        self.unet_opt.load_state_dict(state["unet_opt"])
        self.ema = [t.to(self.device) for t in state["ema"]]
        self.ema_updates = state["ema_updates"]
        self.info.update({k: v for k, v in state["info"].items() if k != "settings"})
        print(f"resumed {self.state_path}: stage {self.stage}, step {self.step}", flush=True)

    def maybe_save(self) -> None:
        if time.monotonic() - self.last_save > 60.0 * self.settings.checkpoint_minutes:
            self.save()

    # ---- logging ----------------------------------------------------------------------------------------
    def log(self, row: dict) -> None:
        path = self.train_dir / "log.csv"
        new = not path.is_file()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA, and on CPU with --cpu-bf16; nothing elsewhere."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if self.settings.cpu_bf16 and self.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batches(self, stage: int, batch_size: int, **options: Any) -> Iterable[dict]:
        """The stage's batches from the current step on, at the preset's image size (training.data.batch_loader)."""
        return batch_loader(
            self.step,
            self.settings.workers,
            pin_memory=self.cuda,
            seed=self.settings.seed,
            stage=stage,
            batch_size=batch_size,
            image_size=self.config.image_size,
            **options,
        )

    # ---- the loop both stages share ------------------------------------------------------------------------
    def train_loop(
        self,
        stage: str,
        loader: Iterable[dict],
        budget: float,
        stop: Callable[[], bool],
        step: Callable[[dict], StepOutcome],
        optimizer: torch.optim.Optimizer,
        params: list,
        base_lr: float,
        warmup: int,
        batch_size: int,
        after_step: Callable[[], None] | None = None,
    ) -> None:
        """Train one stage until `stop()`: cosine learning rate, one optimiser step per batch (gradients clipped to
        norm 1), a log row and the bar every 50th step on CUDA or 10th elsewhere (and the first), checkpoints."""
        started = time.monotonic() - self.elapsed[stage]
        bar = progress_bar(budget, stage)
        window_start, window_images = time.monotonic(), 0
        for batch in loader:
            self.elapsed[stage] = time.monotonic() - started
            if stop():
                break
            lr = cosine_lr(base_lr, self.step, self.elapsed[stage] / budget, warmup=warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            outcome = step(batch)
            optimizer.zero_grad(set_to_none=True)
            outcome.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            if after_step is not None:
                after_step()
            self.step += 1
            window_images += outcome.images
            if self.step % (50 if self.cuda else 10) == 0 or self.step == 1:
                rate = window_images / max(time.monotonic() - window_start, 1e-6)
                window_start, window_images = time.monotonic(), 0
                self.log(
                    {
                        "stage": stage,
                        "step": self.step,
                        "seconds": round(self.elapsed[stage], 1),
                        "images": self.step * batch_size,
                        "loss": f"{outcome.loss.item():.5f}",
                        "detail": outcome.detail(rate),
                        "lr": f"{lr:.2e}",
                    }
                )
                bar.set_postfix(step=self.step, **outcome.postfix(rate))
            bar.update(max(0, round(self.elapsed[stage]) - bar.n))
            self.maybe_save()
        bar.close()

    # ---- stage 1: VAE -----------------------------------------------------------------------------------
    def train_vae(self) -> None:
        """Reconstruction (L1 + L2 + edge L1) and a small KL, on rendered images or crops of them."""
        s = self.settings
        budget = self.stage_budget(STAGE_VAE)
        loader = self.batches(stage=1, batch_size=s.vae_batch, crop=s.vae_crop)
        self.vae.train()
        self.train_loop(
            STAGE_VAE,
            loader,
            budget,
            lambda: self.vae_done(budget),
            self.vae_step,
            self.vae_opt,
            list(self.vae.parameters()),
            s.vae_lr,
            warmup=100 if self.cuda else 20,
            batch_size=s.vae_batch,
        )
        del loader
        self.vae.eval()
        self.finish_vae()

    def vae_step(self, batch: dict) -> StepOutcome:
        """The VAE's loss on one batch; every 10th step (and the first) also updates the smoothed PSNR."""
        x = images_to_tensor(batch["images"], self.device)
        with self.autocast():
            posterior = self.vae.encode(x).latent_dist
            rec = self.vae.decode(posterior.sample()).sample
        diff = rec.float() - x
        l1, l2 = diff.abs().mean(), diff.pow(2).mean()
        edge = (diff[..., 1:, :] - diff[..., :-1, :]).abs().mean() + (diff[..., 1:] - diff[..., :-1]).abs().mean()
        kl = posterior.kl().float().mean() / posterior.mean[0].numel()
        loss = l1 + l2 + 0.5 * edge + self.settings.kl_weight * kl
        psnr = 0.0  # logged only on steps that also measure it
        step = self.step + 1  # the count once this step is taken
        if step % 10 == 0 or step == 1:
            psnr = 10 * math.log10(4.0 / max(l2.item(), 1e-12))
            self.vae_psnr = psnr if self.vae_psnr is None else 0.8 * self.vae_psnr + 0.2 * psnr
        return StepOutcome(
            loss,
            len(x),
            lambda rate: f"psnr={psnr:.2f} smoothed={self.vae_psnr:.2f} kl={kl.item():.3f}",
            lambda rate: {"loss": f"{loss.item():.4f}", "psnr": f"{psnr:.1f}", "img_s": f"{rate:.0f}"},
        )

    def vae_done(self, budget: float) -> bool:
        """After its share of the time the VAE stops once its smoothed PSNR reaches the target, or at 1.5x."""
        s = self.settings
        if s.vae_steps is not None and self.step >= s.vae_steps:
            return True
        elapsed = self.elapsed[STAGE_VAE]
        if elapsed < budget:
            return False
        reached = self.vae_psnr is not None and self.vae_psnr >= s.vae_target_db
        return reached or elapsed >= 1.5 * budget

    @torch.no_grad()
    def finish_vae(self) -> None:
        """Centre and scale the latents per channel (folded into the VAE; scaling factor 1) and measure the VAE."""
        images = rendered_images(256, self.config.image_size, seed=self.settings.seed + 777)
        latents = []
        for start in range(0, len(images), 32):
            x = images_to_tensor(images[start : start + 32], self.device)
            latents.append(self.vae.encode(x).latent_dist.mean.float())
        latents = torch.cat(latents)
        mean, std = latents.mean(dim=(0, 2, 3)), latents.std(dim=(0, 2, 3)).clamp_min(1e-6)
        fold_latent_scale(self.vae, mean.cpu(), std.cpu())
        self.scaling_factor = 1.0
        self.info["latent_mean_before"] = [round(v, 4) for v in mean.tolist()]
        self.info["latent_std_before"] = [round(v, 4) for v in std.tolist()]
        self.info["vae_psnr_db"] = round(vae_reconstruction_psnr(self.vae, images), 2)
        self.info["scaling_factor"] = self.scaling_factor
        self.info["vae_steps"] = self.step
        self.info["vae_seconds"] = round(self.elapsed[STAGE_VAE], 1)
        print(
            f"VAE: {self.step} steps, PSNR {self.info['vae_psnr_db']} dB, latents per channel had mean "
            f"{self.info['latent_mean_before']} and std {self.info['latent_std_before']} (now 0 and 1)",
            flush=True,
        )
        self.stage, self.step = STAGE_UNET, 0
        self.save()

    # ---- stage 2: UNet + text encoder -------------------------------------------------------------------
    def train_unet(self) -> None:
        """Epsilon-prediction diffusion loss (Min-SNR weighted) plus the attention-to-mask loss at latent/2 and
        latent/4; EMA of the weights. With --teacher the target is partly the teacher's prediction for the true
        caption (the logged mse is against that target)."""
        s = self.settings
        budget = self.stage_budget(STAGE_UNET)
        map_size = 2 * self.config.map_size
        sides = (map_size, map_size // 2)
        loader = self.batches(
            stage=2,
            batch_size=s.unet_batch,
            map_size=map_size,
            caption_dropout=s.caption_dropout,
            size_footprint=s.size_attention == "footprint",
            size_flip=s.size_flip,
        )
        probe = AttentionProbe(sides)
        if s.attn_weight > 0:
            self.unet.set_attn_processor(probe)
        forward = torch.compile(self.unet) if s.compile else self.unet
        alphas = self.scheduler.alphas_cumprod.to(self.device, torch.float32)
        generator = torch.Generator(self.device).manual_seed(s.seed * 1_000_003 + self.step)
        self.vae.eval()
        self.unet.train()
        self.text_encoder.train()

        def step(batch: dict) -> StepOutcome:
            return self.unet_step(batch, probe, forward, alphas, generator, sides, map_size)

        def stop() -> bool:
            return self.elapsed[STAGE_UNET] >= budget or (s.unet_steps is not None and self.step >= s.unet_steps)

        self.train_loop(
            STAGE_UNET,
            loader,
            budget,
            stop,
            step,
            self.unet_opt,
            self.unet_params,
            s.unet_lr,
            warmup=200 if self.cuda else 20,
            batch_size=s.unet_batch,
            after_step=self.update_ema,
        )
        del loader
        self.unet.set_attn_processor(AttnProcessor2_0())
        self.record_unet_progress()
        self.stage = STAGE_DONE
        self.save()

    def unet_step(
        self,
        batch: dict,
        probe: AttentionProbe,
        forward: Callable,
        alphas: torch.Tensor,
        generator: torch.Generator,
        sides: tuple[int, int],
        map_size: int,
    ) -> StepOutcome:
        """The diffusion loss (and the attention loss) of the UNet and text encoder on one batch."""
        s = self.settings
        x = images_to_tensor(batch["images"], self.device)
        ids = batch["input_ids"].to(self.device, non_blocking=True)
        with torch.no_grad(), self.autocast():
            latents = self.vae.encode(x).latent_dist.sample(generator).float() * self.scaling_factor
        noise = training_noise(latents.shape, s.noise_offset, generator, self.device)
        t = torch.randint(0, len(alphas), (len(latents),), generator=generator, device=self.device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        probe.clear()
        with self.autocast():
            context = self.text_encoder(ids).last_hidden_state
            if "flip_ids" in batch:  # every token but the size words from the caption of the other size
                flipped = self.text_encoder(batch["flip_ids"].to(self.device)).last_hidden_state
                keep = batch["size_tokens"].to(self.device)[..., None]
                context = torch.where(keep, context, flipped)
            pred = forward(noisy, t, context).sample
        target = noise
        if self.teacher is not None:
            with torch.no_grad(), self.autocast():
                unet, encoder = self.teacher
                taught = unet(noisy, t, encoder(ids).last_hidden_state).sample.float()
            target = torch.lerp(noise, taught, s.teacher_weight)
        per_image = (pred.float() - target).pow(2).mean(dim=(1, 2, 3))
        mse = per_image.mean()
        loss = (per_image * snr_weight(a.flatten(), s.min_snr)).mean()
        attn = torch.zeros((), device=self.device)
        if s.attn_weight > 0:
            token_target = batch["token_target"].to(self.device)
            token_target = torch.where((t < s.attn_max_t)[:, None], token_target, -1)
            targets = batch["targets"].to(self.device)
            for side in sides:
                if probe.maps[side]:
                    maps = torch.stack(probe.maps[side]).mean(0).float()
                    attn = attn + attention_loss(maps, token_target, pool_targets(targets, map_size, side))
            attn = attn / len(sides)
            loss = loss + s.attn_weight * attn
        return StepOutcome(
            loss,
            len(x),
            lambda rate: f"mse={mse.item():.5f} attn={attn.item():.4f} img_s={rate:.1f}",
            lambda rate: {"mse": f"{mse.item():.4f}", "attn": f"{attn.item():.3f}", "img_s": f"{rate:.0f}"},
        )

    def record_unet_progress(self) -> None:
        """The UNet stage's steps, seconds and images so far, in info.json (also for --export-only mid-run)."""
        self.info["unet_steps"] = self.step
        self.info["unet_seconds"] = round(self.elapsed[STAGE_UNET], 1)
        self.info["unet_images"] = self.step * self.settings.unet_batch

    @torch.no_grad()
    def update_ema(self) -> None:
        """EMA of UNet and text encoder weights, with the usual warmup (1 + n) / (10 + n)."""
        self.ema_updates += 1
        decay = min(self.settings.ema_decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        params = [p.detach().float() for p in self.unet_params]
        torch._foreach_lerp_(self.ema, params, 1.0 - decay)

    # ---- export -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def export(self) -> Path:
        """Write the pipeline (EMA weights, VAE scaling factor) to DIR, then sample and check it."""
        if self.stage == STAGE_UNET:
            self.record_unet_progress()  # an export of a run that is still training
        for param, average in zip(self.unet_params, self.ema):
            param.copy_(average.to(param.dtype))
        self.vae.register_to_config(scaling_factor=self.scaling_factor)
        self.unet.eval()
        self.text_encoder.eval()
        self.pipe.set_progress_bar_config(disable=True)
        save_pipeline(self.pipe, self.out, half=True)
        self.info["parameters"] = parameter_counts(self.pipe)
        if self.settings.samples > 0:
            started = time.monotonic()
            steps = 50 if self.cuda else 25
            share, images, prompts = prompt_following(
                self.pipe,
                count=self.settings.samples,
                num_inference_steps=steps,
                seed=self.settings.seed,
                batch=32 if self.cuda else 8,
            )
            self.info["prompt_following"] = {
                "share": share,
                "count": len(prompts),
                "steps": steps,
                "seconds": round(time.monotonic() - started, 1),
            }
            from PIL import Image

            Image.fromarray(image_grid(images[:32], columns=8)).save(self.train_dir / "samples.png")
            (self.train_dir / "samples.txt").write_text("\n".join(prompts[:32]) + "\n")
        (self.train_dir / "info.json").write_text(json.dumps(self.info, indent=2, default=str))
        print(json.dumps({k: v for k, v in self.info.items() if k != "settings"}, default=str), flush=True)
        return self.out


def train(settings: TrainSettings) -> Path:
    """Run (or resume) both stages and export the pipeline; returns the output folder."""
    run = Run(settings)
    torch.manual_seed(settings.seed)
    print(
        f"training toy model {settings.preset!r} on {run.device} for {settings.minutes} min: "
        f"{parameter_counts(run.pipe)}",
        flush=True,
    )
    if settings.export_only:
        return run.export()
    if run.stage == STAGE_DONE and settings.resume and run.can_train_more():
        run.stage = STAGE_UNET
    if run.stage == STAGE_VAE:
        run.train_vae()
    if run.stage == STAGE_UNET:
        run.train_unet()
    return run.export()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # data workers are forked after the tokenizer is built
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
