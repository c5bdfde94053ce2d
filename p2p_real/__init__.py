"""p2p-real: Prompt-to-Prompt editing of generated images and real photos.

    import p2p_real
    from inversion import InversionCache

    editor = p2p_real.Editor(p2p_real.load_pipeline("toy"), attention_res=0.5)  # the toy model's map size
    spec = p2p_real.EditSpec(blend_words=(["circle"], ["star"]))
    editor.check(["a red circle", "a red star"], spec)
    inv = editor.invert("photo.png", "a red circle", cache=InversionCache("inversions"))
    editor.edit(inv, "a red star", spec=spec).save("out", "photo")

Names are imported on first use: `import p2p_real` alone loads no torch (the command line relies on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inversion.lazy_imports import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "inversion.validation": ("PromptError",),
    "p2p_real.defaults": ("DEFAULT_MODEL", "TOY_MODEL"),
    "p2p_real.editor": ("Cancelled", "Editor"),
    "p2p_real.evaluation": ("evaluate",),
    "p2p_real.core.finite": ("NonFiniteError",),
    "p2p_real.models.loading": ("ModelLoadError", "load_pipeline"),
    "p2p_real.files.results": ("AttentionMaps", "EditResult", "Reconstruction"),
    "p2p_real.spec": ("EditSpec",),
    "p2p_real.editing.sweep": ("SweepResult",),
    "p2p_real.sweep_grid": ("SweepError",),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from inversion.validation import PromptError as PromptError
    from p2p_real.core.finite import NonFiniteError as NonFiniteError
    from p2p_real.defaults import DEFAULT_MODEL as DEFAULT_MODEL
    from p2p_real.defaults import TOY_MODEL as TOY_MODEL
    from p2p_real.editing.sweep import SweepResult as SweepResult
    from p2p_real.editor import Cancelled as Cancelled
    from p2p_real.editor import Editor as Editor
    from p2p_real.evaluation import evaluate as evaluate
    from p2p_real.files.results import AttentionMaps as AttentionMaps
    from p2p_real.files.results import EditResult as EditResult
    from p2p_real.files.results import Reconstruction as Reconstruction
    from p2p_real.models.loading import ModelLoadError as ModelLoadError
    from p2p_real.models.loading import load_pipeline as load_pipeline
    from p2p_real.spec import EditSpec as EditSpec
    from p2p_real.sweep_grid import SweepError as SweepError
