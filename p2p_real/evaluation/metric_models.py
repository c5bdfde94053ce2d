"""PIE-Bench's model-based figures (structure distance, CLIP similarity, LPIPS), each computed only when its model
loads offline, else reported as not computed with the reason (docs/evaluate.md, "Figures that need a model").

A `--metric-models DIR` folder may hold clip/ (a transformers CLIPModel with its processor, saved with
save_pretrained) and dino/ (a transformers ViT or DINOv2 model with its image processor). Nothing is fetched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# figure -> why it is not computed when nothing else says
LPIPS_REASON = (
    "LPIPS needs the lpips package's AlexNet/VGG weights, loaded through torchvision, which does not "
    "install beside the pinned torch"
)
CLIP_REASON = "no CLIP model: give --metric-models DIR with DIR/clip (a transformers CLIPModel and its processor)"
DINO_REASON = "no DINO model: give --metric-models DIR with DIR/dino (a transformers ViT/DINOv2 and its processor)"

ClipScore = Callable[[np.ndarray, str], float]  # (image uint8 (H, W, 3), text) -> 100 x cosine, at least 0
Structure = Callable[[np.ndarray, np.ndarray], float]  # (photo, edited) -> distance of self-similarities


@dataclass
class MetricModels:
    """The loaded figure models (None where not available) and why each missing one is missing."""

    clip: ClipScore | None = None
    structure: Structure | None = None
    reasons: dict[str, str] = field(
        default_factory=lambda: {
            "lpips": LPIPS_REASON,
            "clip_whole": CLIP_REASON,
            "clip_edited": CLIP_REASON,
            "structure_distance": DINO_REASON,
        }
    )


def _clip_scorer(folder: Path) -> ClipScore:
    """CLIP similarity from a saved transformers CLIPModel: 100 x cosine of image and text embeddings, >= 0."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)

    def score(image: np.ndarray, text: str) -> float:
        """100 x cosine similarity of the image and the text, clipped at 0."""
        inputs = processor(text=[text], images=[image], return_tensors="pt", padding=True, truncation=True)
        with torch.no_grad():
            out = model(**inputs)
        a = torch.nn.functional.normalize(out.image_embeds, dim=-1)
        b = torch.nn.functional.normalize(out.text_embeds, dim=-1)
        return max(0.0, 100.0 * float((a * b).sum()))

    return score


def _dino_distance(folder: Path) -> Structure:
    """Structure distance from a saved ViT: the mean squared difference of the two images' token
    self-similarity (cosine) matrices in the last layer."""
    import torch
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)

    def self_similarity(image: np.ndarray) -> torch.Tensor:
        """Cosine similarity of every pair of the last layer's tokens."""
        with torch.no_grad():
            tokens = model(**processor(images=[image], return_tensors="pt")).last_hidden_state[0]
        tokens = torch.nn.functional.normalize(tokens, dim=-1)
        return tokens @ tokens.T

    def distance(photo: np.ndarray, edited: np.ndarray) -> float:
        """Mean squared difference of the self-similarity matrices."""
        return float((self_similarity(photo) - self_similarity(edited)).pow(2).mean())

    return distance


def load_metric_models(folder: str | os.PathLike | None) -> MetricModels:
    """The figure models found in `folder` (clip/, dino/), loaded offline; a model that fails to load is
    reported as not computed with the error."""
    models = MetricModels()
    if folder is None:
        return models
    root = Path(os.fspath(folder)).expanduser()
    if not root.is_dir():
        raise ValueError(f"--metric-models {str(folder)!r} is not a folder")
    loaders: list[tuple[str, tuple[str, ...], Callable[[Path], Any]]] = [
        ("clip", ("clip_whole", "clip_edited"), _clip_scorer),
        ("dino", ("structure_distance",), _dino_distance),
    ]
    for name, figures, loader in loaders:
        path = root / name
        if not path.is_dir():
            continue
        try:
            loaded = loader(path)
        except Exception as exc:  # a model that does not load leaves its figure out, saying why
            reason = f"{path} did not load ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            for figure in figures:
                models.reasons[figure] = reason
            continue
        setattr(models, "clip" if name == "clip" else "structure", loaded)
        for figure in figures:
            models.reasons.pop(figure, None)
    return models
