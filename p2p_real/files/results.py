"""What the editor returns: images, masks and the cross-attention maps behind them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from inversion.artifact import Inversion
from inversion.storage.files import file_sha256
from inversion.verdict import Verdict, reconstruction_verdict
from p2p_real.core.alignment import Tokens
from p2p_real.files.chain import edit_as_inversion
from p2p_real.files.image_files import image_format
from p2p_real.files.outputs import save_edit, save_reconstruction
from p2p_real.spec import EditSpec

OUTPUT_TYPES = ("pil", "np", "latent")


def _plain(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


@dataclass
class AttentionMaps:
    """Cross-attention per token at the working resolution, averaged over heads, layers and steps."""

    maps: torch.Tensor  # (rows, height, width, tokens), float32, on the CPU
    tokens: list[Tokens]

    def token_map(self, row: int, index: int) -> np.ndarray:
        """Map (height, width) of token position `index` in row `row`."""
        return self.maps[row, :, :, index].numpy()

    def per_word(self, row: int = 0) -> list[tuple[str, np.ndarray]]:
        """(word, map) for each word of the row's prompt; a word's map averages its tokens."""
        tokens = self.tokens[row]
        return [(w, self.maps[row, :, :, list(s)].mean(-1).numpy()) for w, s in zip(tokens.words, tokens.spans)]

    def word(self, word: str, row: int = 0) -> np.ndarray:
        """Map of a word of the row's prompt (case and punctuation ignored; several occurrences averaged)."""
        found = [m for w, m in self.per_word(row) if _plain(w) == _plain(word)]
        if not found:
            raise ValueError(f"word {word!r} is not in prompt {self.tokens[row].prompt!r}")
        return np.mean(found, axis=0)


@dataclass
class EditResult:
    """Row 0 is the source (or the reconstruction of the photo), then one row per target prompt."""

    images: Any  # list[PIL.Image] | np.ndarray (N, H, W, 3) in [0, 1] | latents tensor
    prompts: list[str]
    masks: list[Image.Image] | None = None
    attention: AttentionMaps | None = None
    latents: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)  # "size"; "blend_mask": the last latent mask or None
    spec: EditSpec | None = None  # the settings of the edit
    inversion: Inversion | None = None  # the photo's inversion (edits of photos)
    parameters: dict[str, Any] = field(default_factory=dict)  # what determines the pixels, as JSON values
    trajectory: torch.Tensor | None = None  # (T, rows, C, h, w) float32 on the CPU: the latents after each step
    unconditional: torch.Tensor | None = None  # (T, tokens, D) float32 on the CPU: each step's unconditional embedding

    def as_inversion(self, k: int) -> Inversion:
        """Row k (1, 2, ...: the targets; 0: the reconstruction) of a photo edit as an Inversion of the edited
        image, so that it can be edited again without inverting it: its latents after each step are the pivots
        the next edit's source row follows, with the unconditional embeddings it used (method "chain", see
        p2p_real.files.chain). ValueError, saying why, for a result without a trajectory (from generate, an edit with
        keep_trajectory=False or output_type "latent")."""
        return edit_as_inversion(self, k)

    def save(
        self,
        folder: str | os.PathLike,
        name: str,
        extra: dict[str, Any] | None = None,
        overwrite: bool = False,
        *,
        format: str | None = None,
        quality: int | None = None,
        inversions: bool = False,
    ) -> list[Path]:
        """Write NAME.0.png (the source or reconstruction), NAME.K.png per target, NAME.K.mask.png (with
        local blend or a user mask), NAME.grid.png and the sidecar NAME.json into `folder`, each file
        atomically and the sidecar last; `extra` adds keys to the sidecar. Returns the paths written.

        The files are one output set (p2p_real.files.output_sets): an existing file is replaced only with `overwrite`
        (else FileExistsError, nothing written), another run saving NAME into `folder` at the same time makes
        this one fail, and if a write fails (e.g. a full disk) the files written so far are removed again.
        The images are PNG unless `format` ("jpg", "webp") or the name's extension ("dog.jpg") says otherwise
        (`quality` 1-100, default 95); edits of a photo carry its ICC profile and EXIF (orientation 1).
        `inversions` also writes NAME.K.inv.safetensors, `as_inversion(K)` for each target K, in the same set."""
        fmt, stem = image_format(format, name)
        return save_edit(self, folder, stem, extra, overwrite, image_format=fmt, quality=quality, inversions=inversions)


@dataclass
class Reconstruction:
    """A photo sampled back from its inversion, and how close it came, at the working size."""

    image: Image.Image  # the reconstruction
    photo: Image.Image  # the photo as the model saw it (working size)
    vae_image: Image.Image  # decode(encode(photo)): the best any inversion can do
    psnr: float
    ssim: float
    latent_error: float  # mean squared error of the final latent against z0
    vae_psnr: float
    vae_ssim: float
    method: str
    parameters: dict[str, Any] = field(default_factory=dict)  # the inversion and the model, as JSON values
    drift_image: Image.Image | None = None  # pivot-following methods (direct): plain DDIM from the same start
    drift_psnr: float | None = None  # ... and its PSNR: the drift the pivots correct

    @property
    def lost_db(self) -> float:
        """dB lost to inversion: the VAE ceiling's PSNR minus the reconstruction's."""
        return float(self.vae_psnr - self.psnr)

    @property
    def drift_db(self) -> float | None:
        """dB that plain DDIM loses from the same start (direct inversion), else None."""
        return None if self.drift_psnr is None else float(self.vae_psnr - self.drift_psnr)

    def verdict(self) -> Verdict:
        """good / fair / poor with the reason (inversion.verdict): from the drift for direct inversion, else
        from the dB lost to inversion."""
        return reconstruction_verdict(self.lost_db, self.drift_db)

    def metrics(self) -> dict[str, Any]:
        """PSNR, SSIM, latent error and the VAE's own PSNR and SSIM, rounded to 6 decimals; the drift's PSNR
        where there is one; the verdict's level."""
        names = ("psnr", "ssim", "latent_error", "vae_psnr", "vae_ssim")
        figures: dict[str, Any] = {name: round(float(getattr(self, name)), 6) for name in names}
        if self.drift_psnr is not None:
            figures["drift_psnr"] = round(float(self.drift_psnr), 6)
        figures["verdict"] = self.verdict().level
        return figures

    def save(
        self, folder: str | os.PathLike, name: str, extra: dict[str, Any] | None = None, overwrite: bool = False
    ) -> list[Path]:
        """Write NAME.recon.png, NAME.recon.grid.png (photo | VAE only | reconstruction) and the sidecar
        NAME.recon.json with the metrics, as one output set (see EditResult.save); returns the paths written."""
        return save_reconstruction(self, folder, name, extra, overwrite)

    def report(self) -> str:
        """A few lines for people: what the figure measures for this method, the reconstruction against the
        VAE's ceiling (and for direct inversion the drift it corrects), and the verdict."""
        lines = [f"method          {self.method}"]
        if self.drift_psnr is None:
            lines.append(
                f"PSNR            {self.psnr:.2f} dB (VAE ceiling {self.vae_psnr:.2f} dB, "
                f"lost to inversion {self.lost_db:.2f} dB)"
            )
        else:
            lines += [
                f"PSNR            {self.psnr:.2f} dB (VAE ceiling {self.vae_psnr:.2f} dB): exact by "
                "construction, the source row follows the pivots",
                f"drift           {self.drift_db:.2f} dB corrected (plain DDIM from the same start: "
                f"{self.drift_psnr:.2f} dB)",
            ]
        lines += [
            f"SSIM            {self.ssim:.4f} (VAE ceiling {self.vae_ssim:.4f})",
            f"latent MSE      {self.latent_error:.3e}",
            f"verdict         {self.verdict()}",
        ]
        return "\n".join(lines)


def to_output(images: torch.Tensor, output_type: str) -> Any:
    """(N, 3, H, W) float in [0, 1] -> PIL images or a (N, H, W, 3) float array."""
    array = images.permute(0, 2, 3, 1).float().cpu().numpy()
    if output_type == "np":
        return array
    return [Image.fromarray((a * 255).round().astype(np.uint8)) for a in array]


def mask_images(masks: torch.Tensor, size: tuple[int, int]) -> list[Image.Image]:
    """Masks (k, 1, h, w) in [0, 1] -> grayscale PIL images of `size` (width, height), nearest upsampling."""
    up = torch.nn.functional.interpolate(masks.float(), size=(size[1], size[0]), mode="nearest")
    return [Image.fromarray((m[0].cpu().numpy() * 255).round().astype(np.uint8)) for m in up]


def inversion_parameters(inv: Inversion) -> dict[str, Any]:
    """What an inversion contributes to a result's parameters: the photo, the settings and the model it was
    made with, and the file it came from (names only, never folders)."""
    return {
        "photo": None if inv.source is None else Path(inv.source).name,
        "image_sha256": inv.image_sha256,
        "inversion": None if inv.path is None else inv.path.name,
        "prompt": inv.prompt,
        "method": inv.method,
        "steps": inv.num_inference_steps,
        "guidance": inv.guidance_scale,
        "size": list(inv.size),
        "box": list(inv.box),
        "model_fingerprint": inv.model_id,
        **({"chain": inv.chain} if inv.chain else {}),  # the edits it continues, oldest first (p2p_real.files.chain)
    }


def input_file(source: Any) -> tuple[str | None, str | None]:
    """(file name, sha256 of its bytes) of an input given as a path; ("<type>", None) for one in memory."""
    if source is None:
        return None, None
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source)).expanduser()
        return path.name, file_sha256(path) if path.is_file() else None
    return f"<{type(source).__name__}>", None
