"""What a rehearsal ran: the summary the workflow prints when a rehearsal ends (``workflow/config/rehearsal.yaml``).

Every rule writes its log to ``<results>/logs/<name>.log`` and Snakemake's benchmark record to
``<results>/benchmarks/<name>.tsv`` (the same ``<name>``), which Snakemake writes only when the job's command
succeeded. So a job of this invocation is one whose log was written since it started; it succeeded if its benchmark
record was too, and failed otherwise (or was cancelled when another job failed: Snakemake stops the others). Peak
memory is the job's resident memory on the host (Snakemake samples it), not a GPU's. Torch-free: the Snakefile's
handlers call it.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ila.paths import MTIME_SLACK_S
from ila.run_costs import benchmark_record

# A run's own logs end in the step (results/logs/<table>/<row>/seed<N>.<step>.log); a data log names its split or
# size after the kind (data/k400-download-train.log, data/preprocess-s256-val.log).
_RUN_STEP = re.compile(r"^seed\d+\.(\w+)$")
_DATA_DETAIL = re.compile(r"(-s\d+)?(-(train|val|test|replacement|all))?$")


@dataclass(frozen=True)
class JobRecord:
    name: str  # the log's path under logs/, without .log
    kind: str
    ok: bool
    seconds: float | None = None
    max_rss_mb: float | None = None


def job_kind(name: str) -> str:
    """``table4/ila/seed0.train`` -> ``train``; ``data/k400-download-train`` -> ``data/k400-download``;
    ``figures/table8`` -> ``figures``."""
    parts = name.split("/")
    step = _RUN_STEP.match(parts[-1])
    if step and len(parts) == 3:
        return step.group(1)
    if parts[0] == "data":
        return "data/" + _DATA_DETAIL.sub("", parts[-1])
    return parts[0]


def job_records(results: Path, since: float) -> list[JobRecord]:
    """The jobs whose logs were written at or after ``since`` (seconds since the epoch), in path order."""
    records = []
    for log in sorted((results / "logs").rglob("*.log")):
        if log.stat().st_mtime < since - MTIME_SLACK_S:
            continue
        name = log.relative_to(results / "logs").with_suffix("").as_posix()
        bench = results / "benchmarks" / f"{name}.tsv"
        ok = bench.is_file() and bench.stat().st_mtime >= since - MTIME_SLACK_S
        record = benchmark_record(bench) if ok else {}
        records.append(JobRecord(name, job_kind(name), ok, record.get("s"), record.get("max_rss")))
    return records


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.1f} min"


def rehearsal_summary(results: Path, since: float, skipped: Mapping[str, str]) -> list[str]:
    """Jobs run, failed and skipped (with why), and per job kind the count, mean and longest wall time and the
    largest peak memory: what a user reads the full run's cost and memory from."""
    records = job_records(results, since)
    failed = [r for r in records if not r.ok]
    lines = [f"ILA rehearsal ({results}/): {len(records) - len(failed)} jobs ran, {len(failed)} failed, "
             f"{len(skipped)} skipped"]
    kinds: dict[str, list[JobRecord]] = {}
    for record in records:
        if record.ok:
            kinds.setdefault(record.kind, []).append(record)
    if kinds:
        lines.append(f"  {'job kind':<22}{'jobs':>5}{'mean':>10}{'longest':>10}{'peak memory':>14}")
    for kind, group in sorted(kinds.items()):
        secs = [r.seconds for r in group if r.seconds is not None]
        rss = [r.max_rss_mb for r in group if r.max_rss_mb is not None]
        mean = _seconds(statistics.fmean(secs)) if secs else "-"
        longest = _seconds(max(secs)) if secs else "-"
        peak = f"{max(rss) / 1024:.1f} GB" if rss else "-"
        lines.append(f"  {kind:<22}{len(group):>5}{mean:>10}{longest:>10}{peak:>14}")
    lines += [f"  failed: {r.name} (log: {results}/logs/{r.name}.log)" for r in failed]
    lines += [f"  skipped: {name}: {why}" for name, why in sorted(skipped.items())]
    return lines
