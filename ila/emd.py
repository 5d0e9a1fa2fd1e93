"""Table 5: the Earth Mover's Distance between adjacent frames' features, the paper's proxy for mutual information.

The paper (§4.2) averages the Wasserstein distance "between adjacent frames" in "the last visual layer", lower
meaning more mutual information, and says no more. Our documented defaults (:class:`EMDOptions`, each one an
option):

* a frame is the point cloud of its **patch tokens after the last block** (before ``ln_post``; the class token is
  left out: one summary point beside the patches), each token **L2-normalised** (``normalize``; so that a model
  cannot lower the distance by shrinking its features);
* **uniform weights** on the points, the **Euclidean** ground metric (``metric``; or cosine), and the **exact**
  1-Wasserstein distance
  (``ot.emd2`` on float64 costs): ``ot.dist`` alone would give squared Euclidean costs, i.e. W2², not W1;
* per video, the mean over its ``T - 1`` adjacent pairs on the first deterministic evaluation view; per run, the
  mean over the validation videos.

POT only warns when ``numItermax`` stops the solver before optimality and returns a non-optimal cost: that raises
:class:`EMDNotOptimal` here instead of entering a table.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ila.errors import ConfigError, IlaError

NUM_ITERMAX = 1_000_000


class EMDNotOptimal(IlaError, RuntimeError):
    """The network-simplex solver stopped before optimality (the message says which option to raise)."""

    kind = "EMD error"


@dataclass(frozen=True)
class EMDOptions:
    normalize: bool = True
    metric: Literal["euclidean", "cosine"] = "euclidean"
    num_itermax: int = NUM_ITERMAX

    def validate(self) -> None:
        if self.metric not in ("euclidean", "cosine"):
            raise ConfigError(f"emd metric (--metric): expected 'euclidean' or 'cosine', got {self.metric!r}")
        if self.num_itermax < 1:
            raise ConfigError(f"emd num_itermax (--num-itermax): expected a positive integer, got {self.num_itermax}")


def wasserstein1(x: np.ndarray, y: np.ndarray, metric: str = "euclidean", num_itermax: int = NUM_ITERMAX) -> float:
    """Exact W1 between two uniformly weighted point clouds ``[n, d]`` and ``[m, d]``."""
    import ot

    cost = ot.dist(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), metric=metric)
    with warnings.catch_warnings():  # POT warns and goes on; the result code below makes it an error instead
        warnings.filterwarnings("ignore", message="numItermax reached", category=UserWarning)
        value, info = ot.emd2([], [], cost, numItermax=num_itermax, log=True)
    if info.get("result_code") != 1:
        raise EMDNotOptimal(
            f"EMD solver stopped before optimality ({info.get('warning') or info.get('result_code')}) on "
            f"{cost.shape[0]}x{cost.shape[1]} points with numItermax={num_itermax}: raise emd num_itermax"
        )
    return float(value)


def frame_clouds(tokens: torch.Tensor, options: EMDOptions) -> np.ndarray:
    """``[T, N, D]`` patch tokens of one video -> the per-frame point clouds as float64."""
    x = tokens.double()
    if options.normalize:
        x = torch.nn.functional.normalize(x, dim=-1)
    return x.cpu().numpy()


def adjacent_frame_emd(clouds: np.ndarray, options: EMDOptions) -> float:
    """Mean W1 between frames t and t+1 of one video's clouds ``[T, N, D]``."""
    if clouds.shape[0] < 2:
        raise ValueError("adjacent-frame EMD needs at least 2 frames")
    return float(np.mean([wasserstein1(clouds[t], clouds[t + 1], options.metric, options.num_itermax)
                          for t in range(clouds.shape[0] - 1)]))


def measure_run(cfg, checkpoint: str | Path | None = None, options: EMDOptions | None = None) -> dict[str, Any]:
    """Adjacent-frame EMD of a trained run on its validation split: per video and the mean."""
    from ila.data.dataset import build_dataloader, iterate_batches
    from ila.engine.evaluate import video_keys
    from ila.engine.runs import load_trained
    from ila.progress import progress_bar

    options = options or EMDOptions()
    options.validate()
    model, val = load_trained(cfg, checkpoint)
    loader = build_dataloader(val, cfg.train.eval_batch_size or cfg.data.batch_size, 1, 0)
    videos, values = [], []
    start = time.perf_counter()
    for batch in progress_bar(iterate_batches(loader), total=len(loader), desc="emd", unit="batch", disable=None):
        with torch.no_grad():
            # The last block's patch tokens (before the final norm) of the first deterministic view: [B, T, HW, W].
            tokens = model.video_vit(batch["video"][:, 0]).patches
        for index, per_video in zip(batch["index"].tolist(), tokens, strict=False):
            videos.append(index)
            values.append(adjacent_frame_emd(frame_clouds(per_video, options), options))
    seconds = time.perf_counter() - start
    order = np.argsort(videos)
    return {
        "emd": float(np.mean(values)),
        "options": asdict(options),
        "num_videos": len(values),
        # Decoding, the forward pass and the EMDs, per video, with torch's threads: for estimating larger splits.
        "seconds_per_video": seconds / max(len(values), 1),
        "threads": torch.get_num_threads(),
        "per_video": {"video": video_keys(val, [videos[i] for i in order]), "emd": [values[i] for i in order]},
    }
