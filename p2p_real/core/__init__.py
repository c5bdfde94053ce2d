"""The Prompt-to-Prompt core: prompt alignment, attention processors and controllers, injection windows,
the attention store, the denoising loop, and edits of edits."""
