"""The toy world: a flat procedural world of coloured shapes with ground truth, and a small model trained on it.

Modules: world (colours, shapes, sizes), scenes (renderer), captions (grammar, vocabulary, tokenizer),
vision (segmentation and shape recognition), data (training batches), model (the diffusers pipeline),
train (the training script), quality (quick checks), tokenizer (a CLIP tokenizer from a word list).
"""
