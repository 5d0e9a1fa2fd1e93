"""Inference latency of every Table 4 row, in one run on one machine: ms per clip at batch 1 and batch 8, and the
ratio to the Baseline.

    python benchmarks/latency.py [--config paper|embedded] [--table table4 table9] [--reps 5] [--threads N]
        [--device cpu|cuda] [--precision auto|fp32|bf16]

paper: ViT-B/32, 8 frames, 224x224, 400 classes (the Kinetics-400 head); embedded: the mini-CLIP at 32x32, 20 classes.
Random weights (latency does not depend on their values), eval mode, no_grad; class text embeddings are computed
once before timing (the text tower is frozen and cached); the median of --reps timed calls after 2 warm-up calls.
Precision auto: bf16 autocast on CUDA (as the trainer), fp32 on CPU. Each table's rows are timed in one run and
compared with the table's reference row (Table 4: the Baseline; Table 9: ILA), beside the paper's ratio where the
paper gives latencies.
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
    p.add_argument("--table", nargs="+", default=["table4"], help="ablation files whose rows to time")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    args = p.parse_args()
    torch.set_num_threads(job_threads(args.threads))
    c = CONFIGS[args.config]
    dev = torch.device(args.device)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and dev.type == "cuda")
    print(f"{args.config}: {c['backbone']}, {c['num_frames']} frames, {c['size']}x{c['size']}, {c['classes']} classes, "
          f"{dev.type}{' (' + torch.cuda.get_device_name(dev) + ')' if dev.type == 'cuda' else ''}, "
          f"{'bf16 autocast' if bf16 else 'fp32'}, {torch.get_num_threads()} threads, median of {args.reps}")
    for table_name in args.table:
        table = load_table(table_name)
        results = {}
        for row in table.available_rows():
            torch.manual_seed(0)
            model = create_model({**row.model, "backbone": c["backbone"], "num_frames": c["num_frames"]},
                                 [f"class {i}" for i in range(c["classes"])]).to(dev).eval()
            try:
                results[row.id] = {b: time_model(model, b, c, dev, bf16, args.reps) for b in (1, 8)}
            except Exception as exc:  # noqa: BLE001 - report the row and go on with the others
                print(f"  {row.name}: failed ({type(exc).__name__}: {str(exc)[:160]})")
            del model
        ref = REFERENCE.get(table_name, table.rows[0].id)
        base = results.get(ref)
        paper = {r.id: r.paper.get("latency_ms") for r in table.available_rows()}
        has_paper = any(v is not None for v in paper.values())
        print(f"\n{table.title}: ratios to {table.row(ref).name}")
        print(f"{'row':34} {'ms/clip b1':>11} {'x ref':>7} {'ms/clip b8':>11} {'x ref':>7}"
              + (f" {'paper ms':>9} {'paper x':>8}" if has_paper else ""))
        for row in table.available_rows():
            if row.id not in results:
                continue
            r = results[row.id]
            rel = (lambda b: f"{r[b] / base[b]:.2f}") if base else (lambda b: "–")
            line = f"{row.name:34} {r[1]:11.2f} {rel(1):>7} {r[8]:11.2f} {rel(8):>7}"
            if has_paper:
                pm, pref = paper[row.id], paper.get(ref)
                line += f" {pm if pm is not None else '–':>9} " + (f"{pm / pref:8.2f}" if pm and pref else f"{'–':>8}")
            print(line)


# The row each table's ratios are taken against.
REFERENCE = {"table4": "baseline", "table9": "ila"}


def time_model(model, batch: int, c: dict, dev: torch.device, bf16: bool, reps: int) -> float:
    """Median ms per clip of ``model`` on a random batch."""
    video = torch.randn(batch, c["num_frames"], 3, c["size"], c["size"], device=dev)
    times = []
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(2 + reps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(video)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / batch


if __name__ == "__main__":
    main()
