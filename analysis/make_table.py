"""Write a table (CSV + Markdown) from the runs' ``metrics.json`` with the paper's numbers beside ours.

    python analysis/make_table.py --table ablations/table4.yaml --runs results/table4 --seeds 0 1 2 \
        --csv results/table4.csv --md results/table4.md --stats results/stats/table4.json --profile default \
        --dataset synth-default --dataset-kind synth [--latency results/latency/table9.json]

Every number in the "ours" columns is computed from the runs' ``results/<table>/<row>/seed<N>/metrics.json``
(accuracy and per-video outcomes from the evaluation, GFLOPs and parameters recorded there by ``ila evaluate
--cost-at``) by ``ila.tables``; a latency column comes from the ``latency`` rule's measurement. The "paper_" columns
come from the ablation file. The table's files are then attached to its MLflow experiment, with links to every run
it reads (those of rows shared from another table live in that table's experiment). ``--stats`` writes the table's
statistics as data (every pair of rows compared), which the claims ledger (``analysis/make_claims.py``) reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ila.ablations import load_table
from ila.data.kinds import WORKFLOW_DATASET_KINDS
from ila.defaults import TRACKING_URI_HELP
from ila.tables import collect, write_csv, write_markdown, write_stats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--runs", required=True, help="the table's run directory (results/<table>)")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--stats", help="also write the table's statistics as JSON (what the claims ledger reads)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every row (run directories seed<N>)")
    p.add_argument("--profile", default="default")
    p.add_argument("--dataset", default="")
    p.add_argument("--dataset-kind", choices=WORKFLOW_DATASET_KINDS,
                   help="the rows run on this kind of dataset (rows of an ablation file may name theirs); default: all")
    p.add_argument("--latency", help="the table's latency measurement (JSON from benchmarks/latency.py --json)")
    p.add_argument("--mlflow-uri", help=TRACKING_URI_HELP)
    p.add_argument("--no-mlflow", action="store_true", help="do not attach the table to its MLflow experiment")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="an MLflow tag of the table's run besides profile and dataset (a rehearsal's: rehearsal=true)")
    p.add_argument("--skip", action="append", default=[], metavar="ROW=WHY",
                   help="a row left out (a rehearsal's rehearsal.skip), named in the table's notes with why")
    args = p.parse_args(argv)
    table = load_table(args.table)
    if table.latency and not args.latency:
        p.error(f"{args.table} has a latency column: pass --latency <the latency rule's JSON>")
    latency = json.loads(Path(args.latency).read_text()) if args.latency else None
    bad = [item for item in [*args.skip, *args.tag] if "=" not in item]
    if bad:
        p.error(f"--skip and --tag take NAME=VALUE, got {bad[0]!r}")
    skipped = dict(item.split("=", 1) for item in args.skip)
    result = collect(table, Path(args.runs), args.profile, args.dataset, args.seeds, latency, args.dataset_kind,
                     skipped)
    write_csv(result, Path(args.csv))
    write_markdown(result, Path(args.md), args.profile, args.dataset)
    if args.stats:
        from ila.engine.tracking import git_commit

        write_stats(result, Path(args.stats), git_commit())
    print(f"wrote {args.csv} and {args.md} ({len(result.rows)} rows run, {len(result.cited)} cited)")
    if not args.no_mlflow:
        from ila.engine.tracking import log_table

        tags = {"profile": args.profile, "dataset": args.dataset, **dict(t.split("=", 1) for t in args.tag)}
        run_id = log_table(table.table, [args.csv, args.md], tags,
                           args.mlflow_uri, runs=result.runs, shared_runs=result.shared_runs)
        print(f"attached them to MLflow run {run_id} in experiment {table.table!r}")


if __name__ == "__main__":
    main()
