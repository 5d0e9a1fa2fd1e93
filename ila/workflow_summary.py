"""What a finished workflow run wrote and what to open next: the lines the Snakefile's ``onsuccess`` handler prints.

"Wrote" is judged by modification time against the run's start (recorded by ``onstart``): Snakemake's own record of
the finished jobs is internal to it, and a file the run did not rewrite is not news to whoever started it.
"""

from __future__ import annotations

import os
import shlex
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

from ila.ablations import natural_key
from ila.defaults import DEFAULT_MLFLOW_URI  # what `ila compare` reads when given no --uri (from the project root)
from ila.paths import MTIME_SLACK_S
from ila.rehearsal import rehearsal_summary

WIDTH = 116


def written_results(results: Path, since: float) -> tuple[list[str], list[str]]:
    """The tables (``results/<name>.csv`` and ``.md``) and figures (``results/figures/*.png``; each has its PDF
    beside it) modified at or after ``since`` (seconds since the epoch)."""

    def fresh(paths: Iterable[Path]) -> list[str]:
        return sorted((str(p) for p in paths if p.is_file() and p.stat().st_mtime >= since - MTIME_SLACK_S),
                      key=natural_key)

    return fresh([*results.glob("*.csv"), *results.glob("*.md")]), fresh(results.glob("figures/*.png"))


def _listing(label: str, paths: Sequence[str]) -> list[str]:
    """``label: a, b, c`` wrapped to at most two lines; what does not fit is counted."""
    return textwrap.wrap(", ".join(paths), WIDTH, initial_indent=f"  {label}: ", subsequent_indent="    ",
                         max_lines=2, placeholder=f" ... ({len(paths)} in all)")


LEDGER = "claims"  # results/claims.{csv,md}: the claims ledger (ila.claims), not a table with runs


def summary_lines(tables: Sequence[str], figures: Sequence[str], mlflow_uri: str,
                  configfiles: Sequence[str] = (), results_dir: str = "results") -> list[str]:
    """At most 10 lines: what the run wrote under results/ (a table as ``table4.{csv,md}``, a figure by its name),
    then what to open next: the first table's Markdown, its runs in MLflow (``ila compare``), and the targets that
    build every table (``tables``) and everything (the default target)."""
    stems = list(dict.fromkeys(str(Path(t).with_suffix("")) for t in tables))
    grouped = []
    for stem in stems:
        exts = [e for e in ("csv", "md") if f"{stem}.{e}" in tables]
        name = Path(stem).name
        grouped.append(f"{name}.{exts[0]}" if len(exts) == 1 else f"{name}.{{{','.join(exts)}}}")
    lines = [f"ILA: this run wrote, under {results_dir}/:" if grouped or figures
             else "ILA: this run wrote no table or figure"]
    if grouped:
        lines += _listing("tables", grouped)
    if figures:
        lines += _listing("figures/ (PNG and PDF)", [Path(f).stem for f in figures])
    lines.append("next:")
    ledger = [s for s in stems if Path(s).name == LEDGER]
    stems = [s for s in stems if Path(s).name != LEDGER]
    if ledger:
        lines.append(f"  the paper's claims, each with its verdict: open {ledger[0]}.md")
    if stems:
        table = Path(stems[0]).name
        more = f" ({len(stems) - 1} more above)" if len(stems) > 1 else ""
        lines.append(f"  our numbers beside the paper's: open {stems[0]}.md{more}")
        uri = "" if mlflow_uri == DEFAULT_MLFLOW_URI else f" --uri {shlex.quote(mlflow_uri)}"
        lines.append(f"  its runs in MLflow: ila compare {table}{uri} (start the UI first: mlflow ui "
                     f"--backend-store-uri {shlex.quote(mlflow_uri)})")
    # One --configfile with every file after it, and the targets before it: Snakemake reads every word after
    # --configfile as a config file, and a second --configfile replaces the first (`--configfile A --configfile B`
    # is B alone).
    config = "".join([" --configfile", *(f" {shlex.quote(str(c))}" for c in configfiles)]) if configfiles else ""
    lines.append(f"  every table: snakemake --cores all tables{config} (and every figure: snakemake --cores all"
                 f"{config})")
    return lines


def print_run_summary(plan, started: float, configfiles: Sequence[str], failed: bool = False) -> None:
    """What the Snakefile prints when an invocation that ran jobs ends: a rehearsal's summary (jobs run, failed and
    skipped, seconds per job kind; also when it failed), then, on success, what it wrote and what to open next.
    ``plan`` is the invocation's :class:`ila.plan.Plan`."""
    results = Path(plan.results_dir)
    if plan.rehearsal:
        print("\n".join(rehearsal_summary(results, started, plan.skipped())))
    if failed:
        return
    tables, figures = written_results(results, started)
    uri = plan.config.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI
    # As given on the command line where that was under the working directory, else absolute.
    shown = [f if os.path.relpath(f).startswith("..") else os.path.relpath(f)
             for f in map(os.path.abspath, configfiles)]
    print("\n".join(summary_lines(tables, figures, uri, shown, plan.results_dir)))
