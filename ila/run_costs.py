"""What each table of a workflow run cost and what it can resolve (``ila costs``): from Snakemake's benchmark records
(``<results>/benchmarks/``) each table's jobs and their summed wall and CPU time, and from its statistics file
(``<results>/stats/<table>.json``) the minimum detectable differences (MDE) of its rows' comparisons with their
references.

Job time is the sum of the jobs' own wall times, not the run's wall clock: with ``--cores N`` the jobs overlap, so
the wall clock is about the job time over N while every core is busy. A row that another table borrows
(``{id: ila, from: table4}``) is trained once and counted for the table that owns it. Jobs that no one table owns
(the dataset, the pretrained mini-CLIP, figures drawn from several tables, the claims ledger) are counted as shared.
Torch-free.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ila.ablations import natural_key, table_files
from ila.errors import IlaError
from ila.power import find_comparison

SHARED = "shared"
# Benchmark folders whose records are named after the table they serve (figures/curves_table4.tsv, tables/table4.tsv).
_PER_TABLE_FOLDERS = ("tables", "mlflow", "latency", "figures")
_STEPS = ("train", "evaluate")  # the job kinds counted on their own; the rest (config, emd, probe...) as "other"


class RunCostsError(IlaError, ValueError):
    """A results folder without benchmark records, or a benchmark record that can't be read."""

    kind = "run costs error"


@dataclass
class TableCost:
    table: str
    jobs: dict[str, int] = field(default_factory=dict)  # per kind (train, evaluate, other)
    seconds: dict[str, float] = field(default_factory=dict)  # summed wall time per kind
    cpu_seconds: float = 0.0
    mdes: list[float] = field(default_factory=list)  # each row's comparison with its reference
    seeds: int | None = None
    videos: int | None = None
    commit: str | None = None

    def add(self, kind: str, seconds: float, cpu_seconds: float) -> None:
        self.jobs[kind] = self.jobs.get(kind, 0) + 1
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.cpu_seconds += cpu_seconds

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def benchmark_record(path: Path) -> dict[str, float | None]:
    """The numeric fields (``s``, ``cpu_time``, ``max_rss``...) of a Snakemake benchmark record's first repetition;
    None where the platform measured nothing ("NA")."""
    try:
        with path.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RunCostsError(f"{path}: not a readable benchmark record ({exc})") from None
    if not rows:
        return {}

    def number(text: str | None) -> float | None:
        try:
            return float(text)
        except (TypeError, ValueError):
            return None

    return {key: number(value) for key, value in rows[0].items()}


def owner(relative: Path, tables: set[str]) -> str:
    """The table a benchmark record (its path under ``benchmarks/``) is counted for: ``table4/ila/seed0.train.tsv``
    and ``figures/curves_table4.tsv`` -> ``table4``; ``data/synth-default.tsv`` -> ``shared``."""
    parts = relative.parts
    if parts[0] in tables:
        return parts[0]
    if len(parts) == 2 and parts[0] in _PER_TABLE_FOLDERS:
        name = relative.stem.removeprefix("curves_")
        if name in tables:
            return name
    return SHARED


def job_step(relative: Path) -> str:
    """``table4/ila/seed0.train.tsv`` -> ``train``; anything else -> ``other``."""
    step = relative.stem.rpartition(".")[2] if len(relative.parts) == 3 else ""
    return step if step in _STEPS else "other"


def table_costs(results: str | Path, tables: list[str] | None = None) -> list[TableCost]:
    """Every table with a benchmark record under ``results/benchmarks``, in table order, then the shared jobs."""
    results = Path(results)
    bench_dir = results / "benchmarks"
    records = sorted(bench_dir.rglob("*.tsv")) if bench_dir.is_dir() else []
    if not records:
        raise RunCostsError(f"{bench_dir}: no benchmark records; run the workflow first (snakemake --cores all)")
    names = sorted(tables if tables is not None else [path.stem for path in table_files()], key=natural_key)
    costs = {name: TableCost(name) for name in [*names, SHARED]}
    known = set(names)
    for path in records:
        relative = path.relative_to(bench_dir)
        record = benchmark_record(path)
        if record.get("s") is None:
            continue
        costs[owner(relative, known)].add(job_step(relative), record["s"], record.get("cpu_time") or 0.0)
    for cost in costs.values():
        _read_stats(results / "stats" / f"{cost.table}.json", cost)
    return [cost for cost in costs.values() if cost.jobs]


def _read_stats(path: Path, cost: TableCost) -> None:
    """The MDEs of each row's comparison with its reference, and the seeds, videos and commit, from a table's
    statistics file (written by ``ila.tables.write_stats``), when there is one."""
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text())
        rows, records = data["rows"], data["comparisons"].get(data["primary"], [])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunCostsError(f"{path}: not a table's statistics file ({type(exc).__name__}: {exc})") from None
    for row_id, row in rows.items():
        reference = row.get("compared_with")
        found = find_comparison(records, row_id, reference) if reference is not None else None
        if found is not None and found.get("mde") is not None:
            cost.mdes.append(found["mde"])
    cost.seeds, cost.videos = len(data.get("seeds") or []) or None, data.get("videos")
    cost.commit = (data.get("commit") or "")[:7] or None


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def _mde_text(mdes: list[float]) -> tuple[str, str]:
    if not mdes:
        return "-", "-"
    # three significant digits: a table's measure may be points of top-1 (0.59-7.88) or an EMD (0.001-0.043)
    return f"{statistics.median(mdes):.3g}", f"{min(mdes):.3g}-{max(mdes):.3g}"


def format_costs(costs: list[TableCost]) -> list[str]:
    """A Markdown table: per table the jobs, their time in minutes, the MDEs; then the total."""
    lines = ["| table | commit | seeds x videos | trainings | evaluations | other jobs | train min | evaluate min | "
             "other min | job min | CPU min | MDE median | MDE range |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in costs:
        design = f"{c.seeds} x {c.videos}" if c.seeds and c.videos else "-"
        median, span = _mde_text(c.mdes)
        lines.append(f"| {c.table} | {c.commit or '-'} | {design} | {c.jobs.get('train', 0)} | "
                     f"{c.jobs.get('evaluate', 0)} | {c.jobs.get('other', 0)} | {_minutes(c.seconds.get('train', 0))} "
                     f"| {_minutes(c.seconds.get('evaluate', 0))} | {_minutes(c.seconds.get('other', 0))} | "
                     f"{_minutes(c.total_seconds)} | {_minutes(c.cpu_seconds)} | {median} | {span} |")
    total = sum(c.total_seconds for c in costs)
    lines.append(f"| total | | | {sum(c.jobs.get('train', 0) for c in costs)} | "
                 f"{sum(c.jobs.get('evaluate', 0) for c in costs)} | {sum(c.jobs.get('other', 0) for c in costs)} | "
                 f"| | | {_minutes(total)} | {_minutes(sum(c.cpu_seconds for c in costs))} | | |")
    return lines
