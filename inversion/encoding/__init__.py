"""Between the model's inputs and tensors: prompts to embeddings (SD and SDXL) and pixels to latents (VAE)."""
