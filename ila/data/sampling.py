"""Which frames of a video form a clip.

Both strategies return ``T`` non-decreasing indices in ``[0, n)``; when ``T > n`` frames repeat.

* ``segment`` (Kinetics, TSN-style sparse sampling): the video is cut into ``T`` equal segments and one frame
  is taken from each, at a random offset when training and at the segment centre when testing.
* ``uniform`` (SSv2, as the paper's appendix describes it: "uniformly sample the entire video at predefined
  temporal intervals without group division"): frames at a fixed stride ``n / T`` from one start offset,
  random when training and the stride centre when testing.

Test views: temporal clip ``k`` of ``N`` places each frame at fraction ``(k + 0.5) / N`` of its segment (or stride),
so the views are deterministic and spread evenly; ``N = 1`` is the centre.
"""

from __future__ import annotations

import numpy as np
import torch


def _positions(n: int, num_frames: int, fractions: np.ndarray) -> list[int]:
    seg = n / num_frames
    pos = np.floor((np.arange(num_frames) + fractions) * seg).astype(np.int64)
    return np.clip(pos, 0, n - 1).tolist()


def train_indices(n: int, num_frames: int, strategy: str, generator: torch.Generator) -> list[int]:
    if n < 1:
        raise ValueError("a video needs at least one frame")
    if strategy == "segment":
        fractions = torch.rand(num_frames, generator=generator, dtype=torch.float64).numpy()
    elif strategy == "uniform":
        fractions = np.full(num_frames, torch.rand(1, generator=generator, dtype=torch.float64).item())
    else:
        raise ValueError(f"unknown sampling strategy {strategy!r}; expected 'segment' or 'uniform'")
    return _positions(n, num_frames, fractions)


def eval_indices(n: int, num_frames: int, strategy: str, clip: int = 0, num_clips: int = 1) -> list[int]:
    if n < 1:
        raise ValueError("a video needs at least one frame")
    if strategy not in ("segment", "uniform"):
        raise ValueError(f"unknown sampling strategy {strategy!r}; expected 'segment' or 'uniform'")
    if not 0 <= clip < num_clips:
        raise ValueError(f"clip {clip} outside 0..{num_clips - 1}")
    # Both strategies share the deterministic grid; they differ only in how training draws offsets.
    return _positions(n, num_frames, np.full(num_frames, (clip + 0.5) / num_clips))
