"""Names and defaults of the editor that the command line shows before loading anything (no torch here)."""

from __future__ import annotations

from pathlib import Path

PROG = "p2p-real"  # the command, as the command line and the page's copied command lines spell it
DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TOY_MODEL = "toy"  # load_pipeline("toy"): the toy-world model shipped inside the package
TOY_MODEL_DIR = Path(__file__).resolve().parent / "toyworld" / "model"
# side of the stored attention maps as a fraction of the latent's side (Editor's attention_res): latent/4,
# 16x16 at 512 px as the original code; the toy-world model uses its own (p2p_real.toyworld.model.ATTENTION_RES)
DEFAULT_ATTENTION_RES = 0.25
# load_pipeline(offload=...): diffusers' enable_model_cpu_offload / enable_sequential_cpu_offload
OFFLOAD_MODES = ("model", "sequential")
# dtype spellings load_pipeline accepts (besides "auto" and torch dtypes) and the dtype each one means
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
