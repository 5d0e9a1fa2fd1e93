"""Inference latency of every Table 4 row, in one run on one machine: ms per clip at batch 1 and batch 8, and the
ratio to the Baseline.

    python benchmarks/latency.py [--config paper|embedded] [--reps 5] [--threads N] [--device cpu|cuda]

paper: ViT-B/32, 8 frames, 224x224, 400 classes (the Kinetics-400 head); embedded: the mini-CLIP at 32x32, 20 classes.
Random weights (latency does not depend on their values), eval mode, no_grad; class text embeddings are computed
once before timing (the text tower is frozen and cached); the median of --reps timed calls after 2 warm-up calls.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ila.ablations import load_table
from ila.engine.distributed import job_threads

CONFIGS = {
    "paper": {"backbone": "ViT-B-32", "num_frames": 8, "size": 224, "classes": 400},
    "embedded": {"backbone": "ILA-mini-32", "num_frames": 8, "size": 32, "classes": 20},
}


def main() -> None:
    from ila.models import create_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    p.add_argument("--table", default="table4")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(job_threads(args.threads))
    c = CONFIGS[args.config]
    dev = torch.device(args.device)
    rows = load_table(args.table).available_rows()
    results = {}
    print(f"{args.config}: {c['backbone']}, {c['num_frames']} frames, {c['size']}x{c['size']}, {c['classes']} classes, "
          f"{args.device}, {torch.get_num_threads()} threads, median of {args.reps}")
    for row in rows:
        torch.manual_seed(0)
        model = create_model({**row.model, "backbone": c["backbone"], "num_frames": c["num_frames"]},
                             [f"class {i}" for i in range(c["classes"])]).to(dev).eval()
        per_batch = {}
        for batch in (1, 8):
            video = torch.randn(batch, c["num_frames"], 3, c["size"], c["size"], device=dev)
            times = []
            with torch.no_grad():
                for i in range(2 + args.reps):
                    if dev.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    model(video)
                    if dev.type == "cuda":
                        torch.cuda.synchronize()
                    if i >= 2:
                        times.append(time.perf_counter() - start)
            per_batch[batch] = statistics.median(times) * 1000 / batch
        results[row.name] = per_batch
        del model
    base = results.get("Baseline")
    print(f"\n{'row':34} {'ms/clip b1':>11} {'x Baseline':>11} {'ms/clip b8':>11} {'x Baseline':>11}")
    for name, r in results.items():
        rel = (lambda b: f"{r[b] / base[b]:.2f}") if base else (lambda b: "–")
        print(f"{name:34} {r[1]:11.2f} {rel(1):>11} {r[8]:11.2f} {rel(8):>11}")


if __name__ == "__main__":
    main()
