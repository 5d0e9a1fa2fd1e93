"""Training and evaluation engine: recipe, multi-process (torchrun) support, checkpoints, tracking."""
