"""p2p-real: Prompt-to-Prompt editing of generated images and real photos."""

from p2p_real.alignment import PromptError
from p2p_real.editor import Editor
from p2p_real.finite import NonFiniteError
from p2p_real.loading import DEFAULT_MODEL, ModelLoadError, load_pipeline
from p2p_real.results import AttentionMaps, EditResult

__all__ = [
    "DEFAULT_MODEL",
    "AttentionMaps",
    "EditResult",
    "Editor",
    "ModelLoadError",
    "NonFiniteError",
    "PromptError",
    "load_pipeline",
]
__version__ = "0.1.0"
