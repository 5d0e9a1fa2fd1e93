"""What a whole-plan rehearsal would take on this machine, from a rehearsal that ran one reference row.

    python benchmarks/rehearsal_estimate.py --rehearsal rehearsal --dataset kinetics400 \
        [--reference table4/ila] [--skip table1/ila_l14_336_16f]

Reads the reference row's measured training and evaluation seconds (Snakemake's benchmark records under
``<rehearsal>/benchmarks/``) and scales them to every row the workflow trains on ``--dataset`` by each row's GFLOPs
per clip at the paper's configuration (counted on the meta device, ``ila.models.flops``); a linear probe trains only
its head (a forward pass, counted as a third of a training step). An estimate, not a measurement: per-clip time is
not exactly proportional to FLOPs (memory traffic, start-up), so rerun a row of each backbone to check it.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from ila.ablations import load_table
from ila.models.flops import model_cost

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = ROOT / "ablations"


def default_tables() -> list[str]:
    """The workflow's `tables` (what `all` builds), from the config schema's default."""
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return schema["properties"]["tables"]["default"]


def seconds(path: Path) -> float:
    with path.open() as fh:
        return float(next(csv.DictReader(fh, delimiter="\t"))["s"])


def gflops(table: str, row_id: str) -> float:
    spec = load_table(ABLATIONS / f"{table}.yaml")
    return model_cost(spec.paper_model_config(spec.row(row_id), None, None)).gflops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rehearsal", default="rehearsal", help="the rehearsal's results_dir")
    p.add_argument("--dataset", default="kinetics400", help="the profile's dataset kind")
    p.add_argument("--reference", default="table4/ila", help="a row the rehearsal ran (its seed 0)")
    p.add_argument("--skip", nargs="*", default=[], help="rows the rehearsal skips (<table>/<row>)")
    p.add_argument("--tables", nargs="*", help="the profile's tables (default: the workflow's)")
    args = p.parse_args()
    logging.disable(logging.WARNING)  # open_clip's "no pretrained weights" for every model counted
    bench = Path(args.rehearsal) / "benchmarks" / f"{args.reference}/seed0"
    train_s, eval_s = seconds(Path(f"{bench}.train.tsv")), seconds(Path(f"{bench}.evaluate.tsv"))
    ref_g = gflops(*args.reference.split("/"))
    estimates = []
    for table in args.tables or default_tables():
        spec = load_table(ABLATIONS / f"{table}.yaml")
        for row in spec.available_rows(args.dataset):
            key = f"{spec.table}/{row.id}"
            if row.run_table or key in args.skip or (row.probe and row.probe in args.skip):
                continue
            g = gflops(*(row.probe or key).split("/"))
            train = train_s * g / ref_g * (1 / 3 if row.probe else 1)
            estimates.append((key, g, train, eval_s * g / ref_g))
    total = sum(t + e for _, _, t, e in estimates)
    print(f"reference {args.reference}: {ref_g:.1f} GFLOPs/clip, training {train_s:.0f} s, evaluation {eval_s:.0f} s")
    print(f"{len(estimates)} rows on {args.dataset}: about {total / 3600:.1f} h of training and evaluation\n")
    print(f"{'row':36} {'GFLOPs':>8} {'train min':>10} {'evaluate min':>13}")
    for key, g, train, ev in sorted(estimates, key=lambda r: -(r[2] + r[3])):
        print(f"{key:36} {g:8.1f} {train / 60:10.1f} {ev / 60:13.1f}")


if __name__ == "__main__":
    main()
