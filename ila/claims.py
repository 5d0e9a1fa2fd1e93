"""The claims ledger: each claim of the paper, declared once in ``ablations/claims.yaml``, with this run's verdict.

A claim compares rows of one table (``order``: a row above or below others on a measure; ``cost``: cheaper or dearer
in GFLOPs at the paper's configuration or in measured latency), states a number (``value``: a row's top-1 on the
paper's dataset), states a rank correlation (``correlation``: Table 5's lower EMD with higher accuracy), or cannot be
tested here (``untestable``, with why: the other side is another paper's cited number, or the claim is qualitative).

Verdicts come from the tables' own statistics (``results/stats/<table>.json``, written by the table writer,
:func:`ila.tables.write_stats`): the same paired differences, intervals, p-values and minimum detectable differences
the tables print, never a second test. For a comparison, with the difference signed so that the paper's direction is
positive and its 95% interval ``[low, high]``:

* *reproduced*: ``low > 0``;  *contradicted*: ``high < 0``;
* *not of the paper's size*: the interval holds 0 but lies below the paper's effect (the paper's difference of its
  own numbers, in its own units);
* *inconclusive*: the interval holds both (the ledger says the MDE beside the paper's effect);
* *no interval*: one seed (the paper profiles), the difference alone is shown;
* *not run*: the table's statistics or the claim's rows are missing from this profile's results;
* *not comparable*: a number claimed on a dataset this profile does not run (the paper's Kinetics-400 top-1 against a
  run on the synthetic benchmark);
* *untestable*: said why.

Costs have no interval (GFLOPs are counted; latency is a median of many calls): the ratio's side of 1 decides
(*reproduced* / *contradicted*; *not of the paper's size* where the two are equal), our ratio beside the paper's.

Torch-free and scipy-free at import: the workflow's plan reads and checks the claims when the Snakefile is parsed.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ila.ablations import ABLATIONS_DIR, CLAIMS_FILE_NAME, PAIRED_MEASURES, AblationError, Table, load_tables
from ila.config import build
from ila.data.kinds import DATASET_KINDS
from ila.errors import ConfigError

CLAIMS_FILE = ABLATIONS_DIR / CLAIMS_FILE_NAME
VERDICTS = ("reproduced", "contradicted", "not of the paper's size", "inconclusive", "no interval", "not run",
            "not comparable", "untestable")  # fmt: skip
KINDS = ("order", "cost", "value", "correlation", "untestable")
# A cost claim's measure -> (the table's column of ours, the ablation file's key of the paper's).
COSTS = {"gflops": ("gflops_paper_config", "gflops"), "latency": ("latency_ms", "latency_ms")}
CORRELATIONS = {"emd_vs_top1": ("emd", "top1")}  # a correlation -> the two measures it ranks rows by
SAME_COST = 0.005  # costs within 0.5% of each other are equal (neither side cheaper)
UNITS = {"top1": "points", "top1_temporal": "points", "top1_static": "points", "temporal_score": "points",
         "emd": "EMD", "gflops": "ratio", "latency": "ratio", "emd_vs_top1": "Kendall tau"}  # fmt: skip


class ClaimsError(AblationError):
    """A malformed claims file (a claim naming a row or table that does not exist, a missing key)."""

    kind = "claims error"


@dataclass
class Claim:
    """One entry of ``claims.yaml``, filled by :func:`ila.config.build`. A row may be written ``a|b``: whichever of
    the two this profile runs (the embedded default and the paper profiles run different rows for one method)."""

    id: str
    says: str  # the paper's words, quoted or closely paraphrased
    where: str  # section and table
    kind: Literal[KINDS]
    table: str | None = None
    rows: list[str] = field(default_factory=list)  # the rows claimed above (below, cheaper, ...) each of `than`
    than: list[str] = field(default_factory=list)
    measure: str | None = None  # order/value: a measure of the table (default its primary); cost: gflops | latency
    direction: Literal["higher", "lower"] = "higher"  # of `rows` against `than` (EMD, costs: lower); correlation: sign
    data: list[Literal[DATASET_KINDS]] | None = None  # value: the datasets the paper's number can be compared on
    statistic: str | None = None  # correlation: one of CORRELATIONS
    why: str | None = None  # untestable: why


@dataclass
class Line:
    """One line of the ledger: a claim's comparison of two rows (or its number, correlation, ...) and its verdict."""

    claim: Claim
    compares: str
    verdict: str
    ours: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    mde: float | None = None
    paper: float | None = None
    detail: str = ""
    source: dict = field(default_factory=dict)  # the table statistics' profile, dataset, seeds, commit


# --------------------------------------------------------------------------- reading and checking the claims


def load_claims(path: Path = CLAIMS_FILE, tables: dict[str, Table] | None = None) -> list[Claim]:
    """The claims of ``path``, each checked against the ablation files (``tables``: name -> Table): a typo in a
    table, row or measure fails here, before any job."""
    data = yaml.safe_load(Path(path).read_text()) if Path(path).is_file() else None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ClaimsError(f"{path}: expected a mapping with a list under `claims:`")
    if tables is None:
        tables = load_tables(Path(path).parent)
    claims, seen = [], set()
    for i, raw in enumerate(data["claims"]):
        where = f"{path}: claims[{i}]" + (f" ({raw['id']})" if isinstance(raw, dict) and "id" in raw else "")
        try:
            claim = build(Claim, raw, "")
        except ConfigError as exc:
            raise ClaimsError(f"{where}: {exc}") from None
        if claim.id in seen:
            raise ClaimsError(f"{where}: duplicate id {claim.id!r}")
        seen.add(claim.id)
        _check(claim, tables, where)
        claims.append(claim)
    return claims


REQUIRED = {"order": ("table", "rows", "than"), "cost": ("table", "rows", "than", "measure"),
            "value": ("table", "rows", "data"), "correlation": ("table", "statistic"), "untestable": ("why",)}


def _check(claim: Claim, tables: dict[str, Table], where: str) -> None:
    missing = [key for key in REQUIRED[claim.kind] if not getattr(claim, key)]
    if missing:
        raise ClaimsError(f"{where}: {missing[0]}: missing (a {claim.kind} claim needs {list(REQUIRED[claim.kind])})")
    if claim.table is None:
        return
    if claim.table not in tables:
        raise ClaimsError(f"{where}: table: no ablation file {claim.table}.yaml (there are {sorted(tables)})")
    table = tables[claim.table]
    run_ids = sorted(r.id for r in table.rows if not r.cited)
    for written in [*claim.rows, *claim.than]:
        for row_id in written.split("|"):
            if row_id.strip() not in run_ids:
                raise ClaimsError(f"{where}: row {row_id.strip()!r} is not a row {claim.table} runs (expected one of "
                                  f"{run_ids}; a cited row's numbers are another paper's: make such a claim "
                                  "`untestable`)")
    _check_measure(claim, table, where)


def _check_measure(claim: Claim, table: Table, where: str) -> None:
    if claim.kind in ("order", "value"):
        allowed = table.compared_measures() if claim.kind == "order" else list(PAIRED_MEASURES)
        if claim.measure is not None and claim.measure not in allowed:
            raise ClaimsError(f"{where}: measure: {claim.measure!r} is not compared in {claim.table} (expected one of "
                              f"{allowed})")
        measure = claim.measure or table.primary_measure
        unnumbered = [r.strip() for w in claim.rows for r in w.split("|") if measure not in table.row(r.strip()).paper]
        if claim.kind == "value" and unnumbered:
            raise ClaimsError(f"{where}: rows: {unnumbered[0]!r} has no paper number for {measure} in "
                              f"{claim.table}.yaml (a value claim judges the paper's number)")
    elif claim.kind == "cost":
        allowed = [c for c in COSTS if c != "latency" or table.latency]
        if claim.measure not in allowed:
            raise ClaimsError(f"{where}: measure: expected one of {allowed} for a cost claim on {claim.table}, got "
                              f"{claim.measure!r}")
    elif claim.kind == "correlation":
        if claim.statistic not in CORRELATIONS or CORRELATIONS[claim.statistic][0] != table.primary_measure:
            raise ClaimsError(f"{where}: statistic: {claim.statistic!r} is not computed by {claim.table} (expected "
                              f"one of {[k for k, (m, _) in CORRELATIONS.items() if m == table.primary_measure]})")


# --------------------------------------------------------------------------- verdicts


def read_stats(paths: list[str | Path]) -> dict[str, dict]:
    """Each table's statistics file (:func:`ila.tables.write_stats`), by table name."""
    out = {}
    for path in map(Path, paths):
        data = json.loads(path.read_text())
        out[data["table"]] = data
    return out


def ledger(claims: list[Claim], stats: dict[str, dict], tables: dict[str, Table]) -> list[Line]:
    """Every claim's lines with their verdicts, from the tables' statistics (a table missing from ``stats``: not
    run)."""
    lines = []
    for claim in claims:
        if claim.kind == "untestable":
            lines.append(Line(claim, "–", "untestable", detail=claim.why or ""))
            continue
        table, found = tables[claim.table], stats.get(claim.table)
        if claim.kind == "correlation":
            lines.append(_correlation(claim, table, found))
            continue
        judge = {"order": _order, "cost": _cost, "value": _value}[claim.kind]
        lines += [judge(claim, table, found, row, other)
                  for row in claim.rows for other in (claim.than or [None])]
    return lines


def _ran(written: str, found: dict | None) -> str | None:
    """The row of ``a|b`` this profile ran (None: neither, or no statistics)."""
    options = [r.strip() for r in written.split("|")]
    return next((r for r in options if found and r in found["rows"]), None)


def _name(written: str, table: Table, found: dict | None) -> str:
    return table.row(_ran(written, found) or written.split("|")[0].strip()).name


def _paper(written: str, table: Table, found: dict | None, key: str) -> float | None:
    row = table.row(_ran(written, found) or written.split("|")[0].strip())
    value = row.paper.get(key)
    return float(value) if isinstance(value, int | float) else None


def _not_run(claim: Claim, compares: str, found: dict | None, rows: list[str], **numbers: Any) -> Line | None:
    """A line saying the claim could not be judged here, or None if its table and rows ran."""
    if found is None:
        return Line(claim, compares, "not run", detail=f"no statistics for {claim.table} in this profile's results",
                    **numbers)
    missing = [w for w in rows if _ran(w, found) is None]
    if not missing:
        return None
    skipped = [r.strip() for w in missing for r in w.split("|") if r.strip() in found.get("skipped", {})]
    why = (f"skipped: {found['skipped'][skipped[0]]}" if skipped
           else f"{', '.join(missing)} not run on {found.get('dataset') or 'this dataset'}")
    return Line(claim, compares, "not run", detail=why, source=_source(found), **numbers)


def _source(found: dict) -> dict:
    return {k: found.get(k) for k in ("profile", "dataset", "seeds", "commit")}


def _comparison(found: dict, measure: str, row: str, other: str) -> dict | None:
    """The table's paired difference ``row - other`` on ``measure`` (its record turned round if stored the other
    way)."""
    for rec in found["comparisons"].get(measure, []):
        if (rec["row"], rec["other"]) == (row, other):
            return rec
        if (rec["row"], rec["other"]) == (other, row):
            low, high = (None, None) if rec["low"] is None else (-rec["high"], -rec["low"])
            return {**rec, "diff": -rec["diff"], "low": low, "high": high}
    return None


def _order(claim: Claim, table: Table, found: dict | None, written: str, other_written: str) -> Line:
    measure = claim.measure or table.primary_measure
    sign = 1 if claim.direction == "higher" else -1
    word = ">" if sign > 0 else "<"
    compares = f"{_name(written, table, found)} {word} {_name(other_written, table, found)} ({measure})"
    a, b = _paper(written, table, found, measure), _paper(other_written, table, found, measure)
    effect = None if a is None or b is None else round(sign * (a - b), 4)
    blank = _not_run(claim, compares, found, [written, other_written], paper=effect)
    if blank:
        return blank
    rec = _comparison(found, measure, _ran(written, found), _ran(other_written, found))
    if rec is None:
        return Line(claim, compares, "not run", paper=effect, detail=f"{claim.table}'s statistics do not compare "
                    f"these rows on {measure}", source=_source(found))
    diff = sign * rec["diff"]
    low, high = sorted((sign * rec["low"], sign * rec["high"])) if rec["low"] is not None else (None, None)
    line = Line(claim, compares, "", diff, low, high, rec["p"], rec["mde"], effect, source=_source(found))
    line.verdict, line.detail = _difference_verdict(diff, low, high, effect, rec["mde"], rec["seeds"])
    return line


def _difference_verdict(diff: float, low: float | None, high: float | None, effect: float | None,
                        mde: float | None, seeds: int) -> tuple[str, str]:
    paper = "the paper gives no effect" if effect is None else f"the paper's effect {effect:+.4g}"
    if low is None:
        return "no interval", f"{diff:+.4g} from {seeds} seed: no spread between trainings to test against; {paper}"
    if low > 0:
        return "reproduced", f"the interval excludes 0 in the paper's direction; {paper}"
    if high < 0:
        return "contradicted", f"the interval excludes 0 in the other direction; {paper}"
    if effect is not None and effect > high:
        return "not of the paper's size", f"the interval holds 0 and lies below {paper}"
    mde_text = "" if mde is None else f"; this design detects {mde:.3g} with 80% power"
    return "inconclusive", f"the interval holds 0 and {paper}{mde_text}"


def _cost(claim: Claim, table: Table, found: dict | None, written: str, other_written: str) -> Line:
    column, paper_key = COSTS[claim.measure]
    word = "cheaper than" if claim.direction == "lower" else "dearer than"
    compares = f"{_name(written, table, found)} {word} {_name(other_written, table, found)} ({claim.measure})"
    a, b = _paper(written, table, found, paper_key), _paper(other_written, table, found, paper_key)
    paper_ratio = None if a is None or not b else round(a / b, 3)
    blank = _not_run(claim, compares, found, [written, other_written], paper=paper_ratio)
    if blank:
        return blank
    ours_a, ours_b = (found["rows"][_ran(w, found)].get(column) for w in (written, other_written))
    if ours_a is None or not ours_b:
        return Line(claim, compares, "not run", paper=paper_ratio, detail=f"no {column} recorded for these rows",
                    source=_source(found))
    ratio = ours_a / ours_b
    if abs(ratio - 1) <= SAME_COST:
        verdict = "not of the paper's size"
    else:
        verdict = "reproduced" if (ratio < 1) == (claim.direction == "lower") else "contradicted"
    paper = "the paper gives no ratio" if paper_ratio is None else f"the paper's {paper_ratio:.3g}"
    detail = f"ours {ours_a:.4g} / {ours_b:.4g} = {ratio:.3g}, {paper}"
    return Line(claim, compares, verdict, round(ratio, 3), paper=paper_ratio, detail=detail, source=_source(found))


def _value(claim: Claim, table: Table, found: dict | None, written: str, _other: None) -> Line:
    measure = claim.measure or table.primary_measure
    compares = f"{_name(written, table, found)} {measure}"
    paper = _paper(written, table, found, measure)
    blank = _not_run(claim, compares, found, [written], paper=paper)
    if blank:
        return blank
    if found.get("dataset_kind") not in claim.data:
        return Line(claim, compares, "not comparable", paper=paper, source=_source(found),
                    detail=f"the paper's number is on {', '.join(claim.data)}; this run is on "
                           f"{found.get('dataset') or found.get('dataset_kind')}")
    row = found["rows"][_ran(written, found)]
    ours, low, high = row.get(measure), row.get(f"{measure}_ci_low"), row.get(f"{measure}_ci_high")
    line = Line(claim, compares, "", ours, low, high, paper=paper, source=_source(found))
    if low is None:
        line.verdict, line.detail = "no interval", f"{ours} from one seed against the paper's {paper}"
    elif low <= paper <= high:
        line.verdict, line.detail = "reproduced", f"the interval holds the paper's {paper}"
    else:
        side = "below" if high < paper else "above"
        line.verdict, line.detail = "contradicted", f"the interval lies {side} the paper's {paper}"
    return line


def _correlation(claim: Claim, table: Table, found: dict | None) -> Line:
    first, second = CORRELATIONS[claim.statistic]
    compares = f"Kendall tau of {first} and {second} across rows"
    paper = _paper_tau(table, first, second)
    blank = _not_run(claim, compares, found, [], paper=paper)
    if blank:
        return blank
    got = found["correlations"].get(claim.statistic) or {}
    tau, p = got.get("tau"), got.get("p")
    line = Line(claim, compares, "", tau, p=p, paper=paper, source=_source(found))
    want = 1 if claim.direction == "higher" else -1
    if tau is None:
        line.verdict, line.detail = "inconclusive", f"not defined over {got.get('n', 0)} rows (fewer than 3, or ties)"
    elif p < 0.05:
        line.verdict = "reproduced" if tau * want > 0 else "contradicted"
        line.detail = f"tau {tau:+.2f} over {got['n']} rows, p = {p:.3g}"
    else:
        line.verdict, line.detail = "inconclusive", f"tau {tau:+.2f} over {got['n']} rows, p = {p:.3g} (>= 0.05)"
    return line


def _paper_tau(table: Table, first: str, second: str) -> float | None:
    """The same correlation over the paper's own numbers (rows that give both)."""
    from ila.stats import kendall_tau

    rows = [r for r in table.rows if first in r.paper and second in r.paper]
    tau = kendall_tau([r.paper[first] for r in rows], [r.paper[second] for r in rows]).tau
    return None if tau is None else round(tau, 3)


# --------------------------------------------------------------------------- writing the ledger

COLUMNS = ["claim", "kind", "table", "where", "compares", "verdict", "ours", "ours_ci_low", "ours_ci_high", "p",
           "mde", "paper", "unit", "detail", "says", "profile", "dataset", "seeds", "commit"]  # fmt: skip


def count_line(lines: list[Line]) -> str:
    counts = Counter(line.verdict for line in lines)
    parts = [f"{counts[v]} {v}" for v in VERDICTS if counts[v]]
    claims = len({line.claim.id for line in lines})
    return f"{len(lines)} comparisons from {claims} claims: " + ", ".join(parts)


def _row(line: Line) -> dict:
    c, src = line.claim, line.source
    unit = UNITS.get(c.statistic or c.measure or "top1", "")
    return {"claim": c.id, "kind": c.kind, "table": c.table or "", "where": c.where, "compares": line.compares,
            "verdict": line.verdict, "ours": _r(line.ours), "ours_ci_low": _r(line.low), "ours_ci_high": _r(line.high),
            "p": _r(line.p), "mde": _r(line.mde), "paper": line.paper, "unit": unit if c.kind != "untestable" else "",
            "detail": line.detail, "says": c.says, "profile": src.get("profile"), "dataset": src.get("dataset"),
            "seeds": " ".join(map(str, src.get("seeds") or [])), "commit": src.get("commit")}  # fmt: skip


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def write_csv(lines: list[Line], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for line in lines:
            writer.writerow({k: "" if v is None else v for k, v in _row(line).items()})


def write_markdown(lines: list[Line], path: Path, profile: str) -> None:
    out = [f"# The paper's claims: verdicts of this run ({profile})", "", f"**{count_line(lines)}.**", "",
           *_sources(lines), "", *MARKDOWN_KEY, "",
           "| claim | where | compares | verdict | ours [95% CI] | paper | detail |", "|---|---|---|---|---|---|---|"]
    for line in lines:
        r = _row(line)
        ours = "–" if r["ours"] is None else (f"{r['ours']:+.3g}" if line.claim.kind == "order" else f"{r['ours']:.4g}")
        if r["ours_ci_low"] is not None:
            ours += f" [{r['ours_ci_low']:+.3g}, {r['ours_ci_high']:+.3g}]"
        paper = "–" if r["paper"] is None else f"{r['paper']:.4g}"
        out.append(f"| {r['claim']} | {r['where']} | {r['compares']} | **{r['verdict']}** | {ours} | {paper} | "
                   f"{r['detail']} |")
    out += ["", "## What the paper says, claim by claim", ""]
    seen = set()
    for line in lines:
        if line.claim.id not in seen:
            seen.add(line.claim.id)
            out.append(f"- **{line.claim.id}** ({line.claim.where}): {line.claim.says}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


MARKDOWN_KEY = [
    "Verdicts come from each table's own statistics (seeds and videos as crossed sources of error, a training run the "
    "unit of replication; `ila.stats`): *reproduced* = the 95% interval of the difference excludes 0 in the paper's "
    "direction, *contradicted* = excludes 0 the other way, *not of the paper's size* = holds 0 but lies below the "
    "paper's effect, *inconclusive* = holds both (the MDE is beside it), *no interval* = one seed, *not run* = the "
    "rows are not in this profile's results, *not comparable* = a number on a dataset this run does not use. "
    "Comparisons are signed so that the paper's direction is positive. The paper's effects are its own numbers' "
    "differences, in its units (Kinetics-400 points): on the embedded synthetic benchmark they say how large a "
    "difference the paper found, not what this benchmark must show. Costs: our ratio (GFLOPs at the paper's "
    "configuration, or measured latency) beside the paper's; its side of 1 decides.",
]


def _sources(lines: list[Line]) -> list[str]:
    """Which run each table's numbers come from: profile, dataset, seeds and commit."""
    seen = {}
    for line in lines:
        if line.source and line.claim.table not in seen:
            seen[line.claim.table] = line.source
    return ["Sources: " + "; ".join(
        f"{t}: {s['profile']} on {s['dataset']}, seeds {s['seeds']}, commit {(s.get('commit') or 'unknown')[:10]}"
        for t, s in sorted(seen.items()))] if seen else ["Sources: no table of this profile has been written yet."]
