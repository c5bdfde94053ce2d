"""Model loading: hub ids, local folders and single checkpoints, SD or SDXL, LoRA and textual inversion,
device placement and offload, and bounded hub waits."""
