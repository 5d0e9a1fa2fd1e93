"""Write the claims ledger (CSV + Markdown): every claim of the paper with this run's verdict.

    python analysis/make_claims.py --claims ablations/claims.yaml --stats results/stats/table4.json ... \
        --csv results/claims.csv --md results/claims.md --profile default

Each verdict is read off a table's own statistics (``--stats``: the files ``analysis/make_table.py --stats`` wrote);
a claim whose table has none here is "not run" (:mod:`ila.claims`). The ledger is then attached to the ``claims``
MLflow experiment, as a table is to its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ila.ablations import load_tables
from ila.claims import CLAIMS_FILE, count_line, ledger, load_claims, read_stats, write_csv, write_markdown
from ila.defaults import TRACKING_URI_HELP


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--claims", default=str(CLAIMS_FILE), help="the claims file (default: %(default)s)")
    p.add_argument("--stats", nargs="*", default=[], help="the tables' statistics files (results/stats/<table>.json)")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--profile", default="default")
    p.add_argument("--mlflow-uri", help=TRACKING_URI_HELP)
    p.add_argument("--no-mlflow", action="store_true", help="do not attach the ledger to MLflow")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="an MLflow tag of the ledger's run besides the profile (a rehearsal's: rehearsal=true)")
    args = p.parse_args(argv)
    bad = [item for item in args.tag if "=" not in item]
    if bad:
        p.error(f"--tag takes NAME=VALUE, got {bad[0]!r}")
    claims_path = Path(args.claims)
    tables = load_tables(claims_path.parent)
    lines = ledger(load_claims(claims_path, tables), read_stats(args.stats), tables)
    write_csv(lines, Path(args.csv))
    write_markdown(lines, Path(args.md), args.profile)
    print(f"wrote {args.csv} and {args.md}: {count_line(lines)}")
    if not args.no_mlflow:
        from ila.engine.tracking import log_table

        tags = {"profile": args.profile, **dict(t.split("=", 1) for t in args.tag)}
        run_id = log_table("claims", [args.csv, args.md], tags, args.mlflow_uri)
        print(f"attached them to MLflow run {run_id} in experiment 'claims'")


if __name__ == "__main__":
    main()
