"""Inference latency of every row of one or more tables, in one run on one machine: ms per clip at each batch size,
and the ratio to the table's reference row (beside the paper's ratio where the paper gives latencies).

    python benchmarks/latency.py [--config paper|embedded] [--table table4 table9] [--batch 1 8] [--reps 5]
        [--threads N] [--device cpu|cuda] [--precision auto|fp32|bf16] [--json results/latency/table9.json]

The measurement is ila.latency.measure_table (its docstring says what is timed and how); the workflow's `latency`
rule runs this script with --json for Table 9's latency column.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ila.ablations import load_table
from ila.engine.distributed import job_threads
from ila.latency import CONFIGS, measure_table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    p.add_argument("--table", nargs="+", default=["table4"], help="ablation files whose rows to time")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (the first one is the JSON's)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--json", help="write the (single) table's measurement here")
    args = p.parse_args(argv)
    if args.json and len(args.table) != 1:
        p.error("--json takes one --table")
    torch.set_num_threads(job_threads(args.threads))
    for name in args.table:
        table = load_table(name)
        res = measure_table(table, args.config, tuple(args.batch), args.reps, args.device, args.precision,
                            progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
        report(table, res)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
            print(f"wrote {args.json}")


def report(table, res: dict) -> None:
    ref = table.reference_row()
    base = res["by_batch"].get(ref.id)
    batches = [res["batch"], *[b for b in next(iter(res["by_batch"].values()), {}) if b != res["batch"]]]
    paper = {r.id: r.paper.get("latency_ms") for r in table.available_rows()}
    has_paper = any(v is not None for v in paper.values())
    print(f"\n{table.title}\n{res['config']}, {res['device']}, {res['precision']}, {res['threads']} threads, "
          f"median of {res['reps']}; ratios to {ref.name}")
    print(f"{'row':34}" + "".join(f" {'ms/clip b' + str(b):>12} {'x ref':>7}" for b in batches)
          + (f" {'paper ms':>9} {'paper x':>8}" if has_paper else ""))
    for row in table.available_rows():
        if row.id in res["failed"]:
            print(f"{row.name:34} failed ({res['failed'][row.id]})")
            continue
        r = res["by_batch"][row.id]
        line = f"{row.name:34}" + "".join(
            f" {r[b]:12.2f} {(f'{r[b] / base[b]:.2f}' if base else '–'):>7}" for b in batches)
        if has_paper:
            pm, pref = paper[row.id], paper.get(ref.id)
            line += f" {pm if pm is not None else '–':>9} " + (f"{pm / pref:8.2f}" if pm and pref else f"{'–':>8}")
        print(line)


if __name__ == "__main__":
    main()
