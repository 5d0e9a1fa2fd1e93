"""A run on disk: where its directory is, and its trained model brought back (evaluation, EMD, figures) with the
final weights, in eval mode, beside its validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ila.config import RunConfig
from ila.data.transforms import CLIP_MEAN, CLIP_STD
from ila.paths import project_root


def run_dir_of(cfg: RunConfig) -> Path:
    p = Path(cfg.output_dir)
    return p if p.is_absolute() else project_root() / p


def load_trained(cfg: RunConfig, checkpoint: str | Path | None = None, device: torch.device | str = "cpu"):
    """``(model, val_dataset)`` of a run on ``device``; fails naming the checkpoint when the run has not been
    trained."""
    from ila.data.dataset import VideoDataset
    from ila.engine import checkpoint as ckpt
    from ila.models import create_model

    path = Path(checkpoint) if checkpoint else run_dir_of(cfg) / "checkpoints" / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found: train the run first (ila train) or pass --checkpoint")
    device = torch.device(device)
    val = VideoDataset(cfg.data, "val", seed=cfg.seed)
    model = create_model(cfg.model, val.class_names).to(device)
    state = ckpt.load(path, device, what_to_do="train the run again: ila train CONFIG --no-resume, or pass another "
                      "--checkpoint")
    model.load_state_dict(ckpt.evaluated_weights(state))
    return model.eval(), val


def to_rgb(video: torch.Tensor) -> np.ndarray:
    """A normalised clip ``[T, 3, S, S]`` back to displayable ``[T, S, S, 3]`` in [0, 1]."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (video.float() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
