"""Seeds chosen by power (``ila power``): from a table's statistics file (``results/stats/<table>.json``, written by
:func:`ila.tables.write_stats`), each row's comparison with its reference: the minimum detectable difference (MDE)
measured, and how many seeds per row, at a number of validation videos, would bring it to a target.

The projection is :meth:`ila.stats.VarianceComponents.mde_at` on the comparison's measured variance components (seed,
video, residual): an upper bound, with ``seeds - 1`` degrees of freedom where the measured MDE has Satterthwaite's
(more, when the seeds differ little), so a comparison may need more seeds than it has for a target its measured MDE
already meets; the projection at the measured seeds is printed beside it. It needs two seeds or more (one seed has no
seed variance to measure) and a file written since the components were recorded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ila.errors import IlaError
from ila.stats import CONFIDENCE, MAX_SEEDS, POWER, VarianceComponents, median_seeds, seeds_for_mde


class PowerError(IlaError, ValueError):
    """A statistics file that cannot answer ``ila power``: unreadable, from an older version, or of one seed."""

    kind = "power error"


@dataclass(frozen=True)
class ComparisonPower:
    row: str  # the row's name (as the table shows it)
    reference: str  # the name of the row it is compared with
    measured_mde: float  # with the measured seeds and videos (Satterthwaite degrees of freedom)
    projected_mde: float  # the projection's at the measured seeds and the plan's videos (seeds - 1 degrees of freedom)
    seeds_needed: int | None  # per row, for the target at the plan's videos; None: more than max_seeds
    components: VarianceComponents


@dataclass(frozen=True)
class PowerPlan:
    table: str
    measure: str  # the table's primary measure, the unit of the MDEs and of the target
    seeds: int  # measured with
    videos: int
    target: float
    target_videos: int  # the validation videos the seeds are projected at
    max_seeds: int
    comparisons: list[ComparisonPower]

    @property
    def median_seeds(self) -> int | None:
        return median_seeds([c.seeds_needed for c in self.comparisons])

    @property
    def most_needed(self) -> ComparisonPower:
        """The comparison that needs the most seeds (one beyond max_seeds first)."""
        return max(self.comparisons, key=lambda c: float("inf") if c.seeds_needed is None else c.seeds_needed)


def plan_seeds(path: str | Path, target: float, videos: int | None = None, max_seeds: int = MAX_SEEDS) -> PowerPlan:
    """The seeds per row each comparison of the table with its reference needs for an MDE of ``target`` (in the
    primary measure's unit) at ``videos`` validation videos (None: as many as measured)."""
    path = Path(path)
    data = _read(path)
    rebuild = f"rebuild the table: snakemake --cores all --forcerun table results/{data['table']}.csv"
    seeds, rows = data["seeds"], data["rows"]
    if len(seeds) < 2:
        raise PowerError(f"{path}: measured with one seed ({seeds}): the seed-to-seed variance, and with it the MDE at "
                         "other seed counts, can't be estimated; train two seeds or more (--config seeds=[0,1,2])")
    if any("compared_with" not in row for row in rows.values()):
        raise PowerError(f"{path}: written by an older version of the suite (its rows do not say which row each is "
                         f"compared with); {rebuild}")
    records = data["comparisons"].get(data["primary"], [])
    comparisons = []
    for row_id, row in rows.items():
        reference = row["compared_with"]
        if reference is None:
            continue
        record, components = _comparison(path, records, row_id, reference, rebuild)
        comparisons.append(ComparisonPower(
            row.get("row") or row_id, rows.get(reference, {}).get("row") or reference, record["mde"],
            components.mde_at(len(seeds), videos), seeds_for_mde(components, target, videos, max_seeds),
            components))  # fmt: skip
    if not comparisons:
        raise PowerError(f"{path}: no row is compared with a reference (a table of one row?)")
    return PowerPlan(data["table"], data["primary"], len(seeds), data["videos"], target, videos or data["videos"],
                     max_seeds, comparisons)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such statistics file; the table writer makes it (snakemake --cores all "
                                "results/<table>.csv writes results/stats/<table>.json)") from None
    except ValueError as exc:
        raise PowerError(f"{path}: not a statistics file (not JSON: {exc})") from None
    if not isinstance(data, dict) or not {"table", "primary", "seeds", "videos", "rows", "comparisons"} <= set(data):
        raise PowerError(f"{path}: not a table's statistics file (expected the keys table, primary, seeds, videos, "
                         "rows and comparisons that ila.tables.write_stats writes)")
    return data


def find_comparison(records: list[dict], row: str, reference: str) -> dict | None:
    """The record of ``row``'s comparison with ``reference`` among a statistics file's ``comparisons[measure]``
    (stored either way round: the variances are the same); None where there is none."""
    return next((r for r in records if {r.get("row"), r.get("other")} == {row, reference}), None)


def _comparison(path: Path, records: list[dict], row: str, reference: str,
                rebuild: str) -> tuple[dict, VarianceComponents]:
    """The record of ``row``'s comparison with ``reference`` (stored either way round: the variances are the same)
    and its variance components."""
    found = find_comparison(records, row, reference)
    if found is None:
        raise PowerError(f"{path}: no comparison of {row!r} with {reference!r}")
    if "components" not in found:
        raise PowerError(f"{path}: written by an older version of the suite (no variance components); {rebuild}")
    stored = found["components"]
    if stored is None:
        raise PowerError(f"{path}: {row!r} against {reference!r} has no variance components (one seed?); train two "
                         "seeds or more")
    names = [f.name for f in fields(VarianceComponents)]
    if not isinstance(stored, dict) or set(stored) != set(names):
        raise PowerError(f"{path}: {row!r} against {reference!r}: expected components {names}, got {stored!r}")
    return found, VarianceComponents(**stored)


def format_plan(plan: PowerPlan) -> list[str]:
    """The plan as the command prints it: a line per comparison (the MDE measured, the projection's at the measured
    seeds and the plan's videos, the seeds needed), then the median and the most seeds needed (MDEs rounded as the
    tables' Markdown rounds the measure)."""
    from ila.tables import decimals

    nd = decimals(plan.measure, markdown=True)
    width = max(len("row"), *(len(c.row) for c in plan.comparisons))
    ref_width = max(len("reference"), *(len(c.reference) for c in plan.comparisons))
    lines = [f"{plan.table}: {plan.measure}, measured with {plan.seeds} seeds x {plan.videos} videos; seeds per row "
             f"for an MDE of {plan.target:g} at {plan.target_videos} videos ({100 * POWER:.0f}% power, "
             f"{100 * (1 - CONFIDENCE):.0f}% two-sided)",
             f"  {'row':{width}}  {'reference':{ref_width}}  {'MDE now':>8}  {'projected':>9}  {'seeds needed':>12}"]
    for c in plan.comparisons:
        lines.append(f"  {c.row:{width}}  {c.reference:{ref_width}}  {c.measured_mde:8.{nd}f}  "
                     f"{c.projected_mde:9.{nd}f}  {_seeds_text(c.seeds_needed, plan.max_seeds):>12}")
    most = plan.most_needed
    lines.append(f"seeds needed: median {_seeds_text(plan.median_seeds, plan.max_seeds)}, maximum "
                 f"{_seeds_text(most.seeds_needed, plan.max_seeds)} ({most.row})")
    return lines


def plan_as_dict(plan: PowerPlan) -> dict:
    """The plan as JSON-ready data (``ila power --json``): a comparison's ``seeds_needed`` is null beyond
    ``max_seeds``."""
    most = plan.most_needed
    return {**asdict(plan), "median_seeds_needed": plan.median_seeds, "most_seeds_needed": most.seeds_needed,
            "most_seeds_needed_by": most.row}


def _seeds_text(seeds: int | None, most: int) -> str:
    return f"over {most}" if seeds is None else str(seeds)
