"""Inference latency of a table's rows, measured in one run on one machine (the code behind
``benchmarks/latency.py`` and the workflow's ``latency`` rule, which feeds Table 9's latency column).

Each row is built at a fixed configuration (``paper``: ViT-B/32, 8 frames, 224x224, 400 classes, the Kinetics-400
head; ``embedded``: the mini-CLIP at 32x32, 20 classes) with random weights — latency does not depend on their
values — in eval mode under ``no_grad``; class text embeddings are computed once before timing (the text tower is
frozen and cached); the figure is the median of ``reps`` timed calls after ``warmup`` calls, in ms per clip, the
rows timed in turns (round after round over all rows) so that drift on a shared machine moves them alike.
Precision ``auto``: bf16 autocast on CUDA (as the trainer), fp32 on CPU.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch

from ila.ablations import PAPER_MAIN_CONFIG, Table

CONFIGS = {
    # The paper's main configuration (its backbone and frames) at 224 px, over Kinetics-400's classes.
    "paper": {"backbone": PAPER_MAIN_CONFIG["backbone"], "num_frames": PAPER_MAIN_CONFIG["num_frames"], "size": 224,
              "classes": 400},
    "embedded": {"backbone": "ILA-mini-32", "num_frames": 8, "size": 32, "classes": 20},
}
WARMUP = 2


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({cpu})"


def _timed_call(model: torch.nn.Module, video: torch.Tensor, dev: torch.device, bf16: bool) -> float:
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(video)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_table(table: Table, config: str = "paper", batches: tuple[int, ...] = (1,), reps: int = 5,
                  device: str | None = None, precision: str = "auto",
                  progress: Callable[[str], None] | None = None) -> dict:
    """Latency of every available row of ``table``: ``{"ms_per_clip": {row: ms at the first batch size},
    "by_batch": {row: {batch: ms}}, "failed": {row: reason}, ...what was measured and how}``.

    A row that fails to build or run is reported under ``failed`` and the others are still timed."""
    from ila.models import create_model

    if config not in CONFIGS:
        raise ValueError(f"latency config must be one of {sorted(CONFIGS)}, got {config!r}")
    c = CONFIGS[config]
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    models, failed = {}, {}
    for row in table.available_rows():
        torch.manual_seed(0)
        try:
            models[row.id] = create_model({**row.model, "backbone": c["backbone"], "num_frames": c["num_frames"]},
                                          [f"class {i}" for i in range(c["classes"])]).to(dev).eval()
        except Exception as exc:  # noqa: BLE001 - report the row and go on with the others
            failed[row.id] = f"{type(exc).__name__}: {str(exc)[:200]}"
    by_batch: dict[str, dict[int, float]] = {}
    for b in batches:
        video = torch.randn(b, c["num_frames"], 3, c["size"], c["size"], device=dev)
        times: dict[str, list[float]] = {row_id: [] for row_id in models}
        # Rounds over the rows (warm-up rounds first), not one row after the other: a machine that slows down or
        # speeds up during the measurement then moves every row alike, and the ratios stay fair.
        for rnd in range(WARMUP + reps):
            for row_id, model in list(models.items()):
                try:
                    t = _timed_call(model, video, dev, bf16)
                except Exception as exc:  # noqa: BLE001
                    failed[row_id] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    del models[row_id], times[row_id]
                    continue
                if rnd >= WARMUP:
                    times[row_id].append(t)
        for row_id, ts in times.items():
            by_batch.setdefault(row_id, {})[b] = statistics.median(ts) * 1000 / b
    if progress:
        for row in table.available_rows():
            done = by_batch.get(row.id)
            progress(f"{row.name}: " + (", ".join(f"{ms:.2f} ms/clip at batch {b}" for b, ms in done.items())
                                         if done else f"failed ({failed[row.id]})"))
    return {
        "table": table.table,
        "config": f"{config} ({c['backbone']}, {c['num_frames']} frames, {c['size']}x{c['size']}, "
                  f"{c['classes']} classes)",
        "device": device_name(dev),
        "device_short": "GPU" if dev.type == "cuda" else "CPU",
        "precision": "bf16 autocast" if bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "batch": batches[0],
        "reps": reps,
        "warmup": WARMUP,
        "ms_per_clip": {row: ms[batches[0]] for row, ms in by_batch.items()},
        "by_batch": by_batch,
        "failed": failed,
    }
