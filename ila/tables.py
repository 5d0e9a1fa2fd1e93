"""A table from its runs: our numbers (read from every (row, seed) run's ``metrics.json``) beside the paper's.

What a table shows comes from its ablation file (:mod:`ila.ablations`): the rows, the reference row every other row
is compared with, the table's primary measure (``primary``, Top-1 unless the table is about something else, as
Table 13's temporal score), the metric columns (``columns``) and whether it has a latency column (``latency``).
Per metric: the mean over seeds and its Student-t interval over seeds (cut to the metric's range). For the primary
measure: each row's own interval and its paired difference from the reference on the same videos, both with seeds
and videos as crossed sources of error (a training run is the unit of replication; :mod:`ila.stats`), the difference's
p-value and minimum detectable difference; which pairs of rows differ at all; and Kendall's tau between our order of
the rows and the paper's. The ``paper_`` columns come from the ablation file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ila import paths
from ila.ablations import PAIRED_MEASURES, AblationError, Row, Table
from ila.config import load_run_config
from ila.metrics import MetricsError, RunMetrics, cost_key
from ila.reporting import FLOPS_CONVENTION, flops_gap_note
from ila.stats import (
    CONFIDENCE,
    MAX_SEEDS,
    POWER,
    Difference,
    crossed_mean,
    kendall_tau,
    mean_ci,
    median_seeds,
    paired_difference,
    proportion_vs_chance,
    seeds_for_mde,
)

PERCENT_METRICS = ["top1", "top5", "top1_temporal", "top5_temporal", "top1_static", "temporal_score",
                   "twin_order_accuracy"]  # fmt: skip
# The evaluation's reversal probe (ila.engine.evaluate.ReversalProbe): mean |logit change| when the clip is reversed,
# relative to the logits' spread; 0 for a model blind to frame order.
METRICS = [*PERCENT_METRICS, "reversal_logit_change", "emd"]
# The measures a table can be about (ila.ablations.PAIRED_MEASURES), each a mean (or contrast) of a per-video
# outcome, so that rows can be compared on the same videos (ila.stats.paired_difference): the outcome's key in the
# per-video lists and the factor that turns it into the table's unit. Table 5's EMD comes from each run's emd.json
# (`ila emd`); the others are hit rates in %, from metrics.json.
PRIMARY_MEASURES = {m: ("emd", 1) if m == "emd" else ("correct", 100) for m in PAIRED_MEASURES}
# The per-video weights of a measure that is a mean over one group of classes, or a contrast of two (weight
# 1/n_group on a group, 0 elsewhere; the temporal score: +1/n_T on the temporal group, -1/n_S on the static one).
GROUP_WEIGHTS = {"top1_temporal": {"temporal": 1}, "top1_static": {"static": 1},
                 "temporal_score": {"temporal": 1, "static": -1}}  # fmt: skip
# Markdown columns of a table that names none (Table 4's).
DEFAULT_COLUMNS = ["top5", "top1_temporal", "top1_static", "twin_order_accuracy", "reversal_logit_change",
                   "gflops_paper_config", "gflops_run_config"]  # fmt: skip
LABELS = {
    "top1": "Top-1", "top5": "Top-5", "top1_temporal": "Top-1 (T)", "top5_temporal": "Top-5 (T)",
    "top1_static": "Top-1 (S)", "temporal_score": "TS = Top-1 (T) - Top-1 (S)", "twin_order_accuracy": "Twin order",
    "reversal_logit_change": "Reversal Δlogit", "gflops": "GFLOPs", "latency_ms": "latency (ms/clip)",
    "emd": "EMD (adjacent frames)",
}  # fmt: skip
ROW_COLUMNS = ["id", "row", "source", "variant", "seeds", "compared_with"]
COST_COLUMNS = ["gflops_paper_config", "gflops_run_config", "params_m", "params_added_by_operator_m"]
RUN_COLUMNS = ["profile", "dataset", "backbone", "frames", "input_size", "views", "head", "train_steps", "run_table"]
LATENCY_COLUMNS = ["latency_ms", "latency_ratio_vs_ref", "latency_device"]


@dataclass
class TableResult:
    table: Table
    rows: list[dict]
    columns: list[str]  # the CSV's, in order
    notes: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)  # "<row>-seed<N>" -> MLflow run id (where recorded)
    shared_runs: list[str] = field(default_factory=list)  # of those, the runs another table owns
    cited: list[dict] = field(default_factory=list)  # the paper's rows for other papers' methods (CSV columns too)


@dataclass(frozen=True)
class SeedRun:
    """One seed's run as a table reads it: its metrics.json and, for a table about EMD, its emd.json."""

    metrics: RunMetrics
    emd: float | None = None
    emd_options: dict | None = None
    per_video_emd: list[float] | None = None

    def value(self, metric: str) -> float | None:
        """A metric of :data:`METRICS`; None where the run has none."""
        return self.emd if metric == "emd" else self.metrics.value(metric)

    def per_video(self, column: str) -> list:
        return self.per_video_emd if column == "emd" else self.metrics.per_video_column(column)


def primary_measure(table: Table) -> str:
    primary = table.primary_measure
    if primary not in PRIMARY_MEASURES:
        raise AblationError(f"{table.path}: primary {primary!r} is not one of {sorted(PRIMARY_MEASURES)}")
    return primary


def csv_columns(table: Table, has_latency: bool) -> list[str]:
    p = primary_measure(table)
    metric_cols = [f"{m}{suffix}" for m in METRICS for suffix in ("", "_ci_low", "_ci_high")]
    diff_cols = [f"{p}_per_seed", f"{p}_diff_vs_ref", f"{p}_diff_ci_low", f"{p}_diff_ci_high", f"{p}_diff_p",
                 f"{p}_diff_significant", f"{p}_diff_df", f"{p}_diff_mde", "twin_order_p_vs_chance"]  # fmt: skip
    paper_cols = [f"paper_{k}" for k in paper_keys(table)]
    return [*ROW_COLUMNS, *metric_cols, *diff_cols, *COST_COLUMNS, *(LATENCY_COLUMNS if has_latency else []),
            *paper_cols, *RUN_COLUMNS]


def paper_keys(table: Table) -> list[str]:
    """Every number the paper gives for some row, in order of first appearance (top-1 first)."""
    keys = ["top1"] if table.primary in (None, "top1") else []
    for row in table.rows:  # cited rows too: their columns are the paper's
        keys += [k for k in row.paper if k not in keys]
    return keys


def row_run_dir(runs: Path, row: Row, seed: int) -> Path:
    """A row's run of one seed, under the table's run directory ``runs`` (``<results>/<table>``), or the table's it
    is shared from (a sibling): the workflow's one layout (ila.paths.run_dir)."""
    return runs.parent / paths.run_dir(row.run_table or runs.name, row.id, seed)


def load_seed_metrics(runs: Path, row: Row, seeds: list[int], with_emd: bool = False) -> list[SeedRun]:
    """Each seed's metrics.json, with its emd.json's ``emd`` and per-video ``emd`` when asked."""
    out = []
    for seed in seeds:
        run_dir = row_run_dir(runs, row, seed)
        path = run_dir / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics for row {row.id!r}, seed {seed}; run its evaluation first")
        metrics = RunMetrics.read(path)
        if not with_emd:
            out.append(SeedRun(metrics))
            continue
        emd_path = run_dir / "emd.json"
        if not emd_path.is_file():
            raise FileNotFoundError(f"{emd_path}: no EMD for row {row.id!r}, seed {seed}; run `ila emd` first")
        emd = json.loads(emd_path.read_text())
        if emd["per_video"]["video"] != metrics.per_video_column("video"):
            raise MetricsError(f"{emd_path}: measured on other videos than {path}")
        out.append(SeedRun(metrics, emd["emd"], emd["options"], emd["per_video"]["emd"]))
    return out


def outcome_matrix(per_seed: list[SeedRun], key: str, videos: list[str]) -> np.ndarray:
    """``[seeds, videos]`` of a per-video outcome, aligned on the reference's video order (rows must have been
    evaluated on the same videos: a paired test means nothing otherwise)."""
    rows = []
    for run in per_seed:
        if run.per_video("video") != videos:
            raise MetricsError(f"{run.metrics.source}: evaluated on other validation videos than the table's reference "
                               "row; a paired test needs the same ones")
        if key == "correct":
            rows.append(np.equal(run.per_video("pred"), run.per_video("label")).astype(float))
        else:
            rows.append(np.asarray(run.per_video(key), dtype=float))
    return np.stack(rows)


def video_weights(measure: str, metrics: RunMetrics) -> np.ndarray | None:
    """Per-video weights that turn the per-video outcome into ``measure`` (None: the plain mean)."""
    signs = GROUP_WEIGHTS.get(measure)
    if signs is None:
        return None
    names, groups = metrics.class_names, metrics.class_groups
    group = np.array([groups.get(names[label]) or "" for label in metrics.per_video_column("label")])
    counts = {g: int((group == g).sum()) for g in signs}
    if not all(counts.values()):
        raise MetricsError(f"{metrics.source}: {LABELS[measure]} needs validation videos of the "
                           f"{' and the '.join(signs)} group")
    weights = np.zeros(len(group))
    for g, sign in signs.items():
        weights[group == g] = sign / counts[g]
    return weights


def metric_bounds(metric: str) -> tuple[float, float]:
    """The range a metric can take, to which its intervals are cut (a rate in %, a score that is a difference of
    two rates, or a non-negative distance)."""
    if metric == "temporal_score":
        return (-100.0, 100.0)
    return (0.0, 100.0) if metric in PERCENT_METRICS else (0.0, float("inf"))


def _run_setup(run_dir: Path) -> dict:
    """What a run was: backbone, frames, input size, test views and head, from the resolved config saved beside its
    outputs (empty where there is none)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    cfg = load_run_config(path)
    return {"backbone": cfg.model.backbone, "frames": cfg.data.num_frames, "input_size": cfg.data.input_size,
            "views": f"{cfg.data.test_clips}x{cfg.data.test_crops}", "head": cfg.model.head}


def decimals(metric: str, markdown: bool = False) -> int:
    """Decimal places of a metric, the tables' one rounding rule: 2 for a percentage (or a difference of two,
    as the temporal score); 4 in the CSV for another measure (a distance, a relative logit change), 3 in the
    Markdown."""
    if metric in PERCENT_METRICS:
        return 2
    return 3 if markdown else 4


def _round(x, nd: int):
    return None if x is None else round(x, nd)


def _seed_stats(out: dict, per_seed: list[SeedRun], primary: str) -> None:
    for metric in METRICS:
        values = [m.value(metric) for m in per_seed]
        if any(v is None for v in values):
            out.update({metric: None, f"{metric}_ci_low": None, f"{metric}_ci_high": None})
            continue
        scale = 100 if metric in PERCENT_METRICS else 1
        ci = mean_ci([scale * v for v in values], bounds=metric_bounds(metric))
        nd = decimals(metric)
        out.update({metric: _round(ci.mean, nd), f"{metric}_ci_low": _round(ci.low, nd),
                    f"{metric}_ci_high": _round(ci.high, nd)})
    scale, nd = PRIMARY_MEASURES[primary][1], decimals(primary)
    out[f"{primary}_per_seed"] = ";".join("" if m.value(primary) is None else f"{scale * m.value(primary):.{nd}f}"
                                          for m in per_seed)


def _costs(out: dict, m: SeedRun, paper_key: str) -> dict:
    cost = m.metrics.cost or {}
    at_paper, at_run = cost.get(paper_key, {}), cost.get("run_config", {})
    out.update({
        "gflops_paper_config": round(at_paper["gflops"], 2) if at_paper else None,
        "gflops_run_config": round(at_run["gflops"], 4) if at_run else None,
        "params_m": round(at_run["params_total"] / 1e6, 3) if at_run else None,
        "params_added_by_operator_m": round(at_paper["params_operator"] / 1e6, 2) if at_paper else None,
    })  # fmt: skip
    return at_paper


def _run_ids(runs: Path, row: Row, seeds: list[int]) -> dict[str, str]:
    out = {}
    for seed in seeds:
        path = row_run_dir(runs, row, seed) / "mlflow_run_id"
        if path.is_file():
            out[f"{row.id}-seed{seed}"] = path.read_text().strip()
    return out


def paper_cost_key(table: Table, row: Row) -> str:
    """The key of the cost ``ila evaluate --cost-at`` recorded at the row's configuration in the paper."""
    paper = table.paper_model_config(row)
    return cost_key(paper["backbone"], paper["num_frames"])


def collect(table: Table, runs: Path, profile: str, dataset: str, seeds: list[int],
            latency: dict | None = None, dataset_kind: str | None = None,
            skipped: dict[str, str] | None = None) -> TableResult:
    """Every available row's numbers on ``dataset_kind`` (None: every row) but the ``skipped`` ones (row -> why, a
    rehearsal's: named in the notes; a row whose own reference is skipped is compared with the table's);
    ``latency`` is what :func:`ila.latency.measure_table` wrote for the table."""
    primary = primary_measure(table)
    skipped = skipped or {}
    available = [row for row in table.available_rows(dataset_kind) if row.id not in skipped]
    ref = table.reference_row(dataset_kind)
    if ref not in available:
        raise AblationError(f"{table.path}: reference row {ref.id!r} has no implemented variant"
                         + (" or is skipped" if ref.id in skipped else ""))
    metrics = {row.id: load_seed_metrics(runs, row, seeds, primary == "emd") for row in available}
    videos = metrics[ref.id][0].per_video("video")
    measured = {m: _measure_outcomes(metrics, m, videos) for m in table.compared_measures()}
    outcomes, weights = measured[primary]
    result = TableResult(table, [], csv_columns(table, latency is not None))
    differences: dict[str, Difference] = {}
    gains: dict[str, np.ndarray] = {}  # rows compared with a reference of their own: their gain over it
    for row in available:
        other = table.reference_of(row, dataset_kind)
        if other.id in skipped:  # its own reference is left out: compared with the table's
            other = ref
        out, at_paper = _row_numbers(table, row, metrics[row.id], outcomes, weights, primary, videos,
                                     {"profile": profile, "dataset": dataset, "seeds": len(seeds),
                                      **_run_setup(row_run_dir(runs, row, seeds[0]))})
        if other is not row:
            out["compared_with"] = other.id
            differences[row.id] = paired_difference(outcomes[row.id], outcomes[other.id], weights=weights)
            _difference(out, differences[row.id], primary)
            if row.reference == other.id:
                gains[row.id] = outcomes[row.id] - outcomes[other.id]
        if latency is not None:
            _latency(out, latency, row, ref)
        result.rows.append({k: out.get(k) for k in result.columns})
        ids = _run_ids(runs, row, seeds)
        result.runs.update(ids)
        if row.run_table:
            result.shared_runs += list(ids.values())
        result.notes += _row_notes(row, at_paper)
    result.notes += [f"{table.row(row_id).name}: not run here ({why})." for row_id, why in skipped.items()]
    for row in table.pending_rows(dataset_kind):
        result.notes.append(f"{row.name}: not run — its method arrives with {row.requires or 'a later issue'}.")
    result.cited = [{"id": r.id, "row": r.name, "source": f"cited {r.cited}",
                     **{f"paper_{k}": r.paper.get(k) for k in paper_keys(table)}} for r in table.cited_rows()]
    agreement = kendall_tau([r[primary] for r in result.rows], [r.get(f"paper_{primary}") for r in result.rows])
    result.summary = {"reference": ref.name, "primary": primary, "kendall_tau": agreement, "seeds": seeds,
                      "videos": len(videos), "latency": latency, "differences": differences,
                      "pairs_by_measure": {m: pairwise_differences(o, w) for m, (o, w) in measured.items()},
                      "gain_contrasts": gain_contrasts(gains, weights), "skipped": skipped,
                      "dataset_kind": dataset_kind}  # fmt: skip
    result.summary["pairs"] = result.summary["pairs_by_measure"][primary]
    if primary == "emd":
        # The paper's reading of Table 5: lower EMD (more mutual information between frames) goes with higher accuracy.
        result.summary["emd_vs_top1"] = kendall_tau([r["emd"] for r in result.rows], [r["top1"] for r in result.rows])
        result.summary["emd_options"] = metrics[ref.id][0].emd_options
    return result


def _measure_outcomes(metrics: dict[str, list[SeedRun]], measure: str,
                      videos: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Each row's ``[seeds, videos]`` outcome of ``measure`` in the measure's unit, and the per-video weights that
    turn it into the measure (the first row's videos decide the groups: every row has the same ones)."""
    outcome, scale = PRIMARY_MEASURES[measure]
    first = next(iter(metrics.values()))[0].metrics
    return ({row_id: scale * outcome_matrix(per_seed, outcome, videos) for row_id, per_seed in metrics.items()},
            video_weights(measure, first))


def _row_numbers(table: Table, row: Row, per_seed: list[SeedRun], outcomes: dict[str, np.ndarray],
                 weights: np.ndarray | None, primary: str, videos: list[str], run: dict) -> tuple[dict, dict]:
    """A row's own numbers (no comparison): run setup, paper numbers, costs, per-metric means and intervals, the
    primary measure's crossed interval, twin order against chance; and its cost at the paper's configuration, for
    its notes."""
    out = {"id": row.id, "row": row.name, "source": "ours", "variant": row.variant, **run,
           "train_steps": per_seed[0].metrics.train_steps, "run_table": row.run_table or table.table,
           **{f"paper_{k}": row.paper.get(k) for k in paper_keys(table)}}  # fmt: skip
    at_paper = _costs(out, per_seed[0], paper_cost_key(table, row))
    _seed_stats(out, per_seed, primary)
    _primary_interval(out, crossed_mean(outcomes[row.id], weights=weights), primary)
    twin = outcome_matrix(per_seed, "twin_hit", videos)
    has_twin = (twin >= 0).all(0)
    if has_twin.any():
        out["twin_order_p_vs_chance"] = _round(proportion_vs_chance(twin[:, has_twin]).p_value, 4)
    return out, at_paper


def _primary_interval(out: dict, d: Difference, primary: str) -> None:
    """The row's own primary measure with seeds and videos as sources of error (replaces the seeds-only interval)."""
    if d.low is None:
        return
    nd = decimals(primary)
    low, high = metric_bounds(primary)
    out[f"{primary}_ci_low"], out[f"{primary}_ci_high"] = round(max(d.low, low), nd), round(min(d.high, high), nd)


def _difference(out: dict, d: Difference, primary: str) -> None:
    nd = decimals(primary)
    out.update({f"{primary}_diff_vs_ref": round(d.diff, nd), f"{primary}_diff_ci_low": _round(d.low, nd),
                f"{primary}_diff_ci_high": _round(d.high, nd), f"{primary}_diff_p": _round(d.p_value, 4),
                f"{primary}_diff_significant": d.significant(), f"{primary}_diff_df": _round(d.df, 1),
                f"{primary}_diff_mde": _round(d.mde, nd)})  # fmt: skip


def pairwise_differences(outcomes: dict[str, np.ndarray], weights: np.ndarray | None) -> dict[tuple, Difference]:
    """Every pair of rows compared as row minus reference is: which rows' order the evidence supports at all."""
    ids = list(outcomes)
    return {(a, b): paired_difference(outcomes[a], outcomes[b], weights=weights)
            for i, a in enumerate(ids) for b in ids[i + 1:]}


def gain_contrasts(gains: dict[str, np.ndarray], weights: np.ndarray | None) -> dict[tuple, Difference]:
    """Each later row's gain over its reference minus each earlier row's (e.g. ILA's gain at 16 frames minus its gain
    at 8): does the gain change between the settings the rows stand for?"""
    ids = list(gains)
    return {(b, a): paired_difference(gains[b], gains[a], weights=weights)
            for i, a in enumerate(ids) for b in ids[i + 1:]}


def _latency(out: dict, latency: dict, row: Row, ref: Row) -> None:
    ms = latency["ms_per_clip"].get(row.id)
    base = latency["ms_per_clip"].get(ref.id)
    out["latency_ms"] = _round(ms, 2)
    out["latency_ratio_vs_ref"] = round(ms / base, 3) if ms and base else None
    out["latency_device"] = latency.get("device")


def _row_notes(row: Row, at_paper: dict) -> list[str]:
    notes = []
    if at_paper and row.paper.get("gflops") is not None:
        note = flops_gap_note(row.name, at_paper["gflops"], at_paper["gflops_operator"], row.paper["gflops"],
                              row.flops_note)
        if note:
            notes.append(note)
    if row.label:
        notes.append(f"{row.name}: {row.label}.")
    if row.run_table:
        notes.append(f"{row.name}: the same runs as {row.run_table}'s row `{row.id}` (trained once, shared).")
    return notes


def write_csv(result: TableResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=result.columns)
        writer.writeheader()
        for r in [*result.rows, *result.cited]:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in result.columns})


STATS_VERSION = 1  # of the statistics file's layout (ila.claims reads it)


def _difference_record(a: str, b: str, d: Difference) -> dict:
    """``components``: the variance components (seed, video, residual, n_seeds, n_videos) that project the MDE to
    other designs (``ila power``); None with one seed."""
    return {"row": a, "other": b, "diff": d.diff, "low": d.low, "high": d.high, "p": d.p_value, "df": d.df,
            "mde": d.mde, "seeds": d.n_seeds, "videos": d.n_videos,
            "components": None if d.components is None else asdict(d.components)}


def write_stats(result: TableResult, path: Path, commit: str | None = None) -> None:
    """The table's statistics as data, for the claims ledger (:mod:`ila.claims`) to read instead of testing again:
    each row's means and intervals, the row it is compared with, costs and latency, every pair of rows compared
    (``row`` minus ``other``, with its variance components) on each of the table's compared measures, and the rank
    correlations; with the profile, dataset, seeds and commit. Keys are only ever added to this layout (readers of
    older files find fewer), so ``STATS_VERSION`` stays."""
    summary = result.summary
    keep = ["id", "row", "compared_with", *METRICS, *(f"{m}_ci_{e}" for m in METRICS for e in ("low", "high")),
            "gflops_paper_config", "latency_ms", "latency_ratio_vs_ref", "latency_device"]
    first = result.rows[0] if result.rows else {}
    data = {
        "version": STATS_VERSION, "table": result.table.table, "commit": commit,
        "profile": first.get("profile"), "dataset": first.get("dataset"), "dataset_kind": summary.get("dataset_kind"),
        "seeds": summary["seeds"], "videos": summary["videos"], "primary": summary["primary"],
        "rows": {r["id"]: {k: r.get(k) for k in keep} for r in result.rows},
        "skipped": summary.get("skipped", {}),
        "comparisons": {m: [_difference_record(a, b, d) for (a, b), d in pairs.items()]
                        for m, pairs in summary["pairs_by_measure"].items()},
        "correlations": {name: {"tau": k.tau, "p": k.p_value, "n": k.n} for name in ("emd_vs_top1",)
                         if (k := summary.get(name)) is not None},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


# --------------------------------------------------------------------------- Markdown


def _head_sentence(rows: list[dict]) -> str:
    heads = sorted({r["head"] for r in rows if r["head"]})
    if heads == ["linear"]:
        return ("Every row here has a linear classifier head (cross-entropy on one-hot labels, as the paper does "
                "for SSv2 and in Table 10), so X-CLIP's video-specific prompt, a text-head part, is not used.")
    if heads == ["text"]:
        return "Every row here has the class-name text head (cosine similarity to CLIP text embeddings)."
    return f"Heads used: {', '.join(heads) or 'unknown'} (see the CSV's head column)."


def _mean_pm(r: dict, metric: str, nd: int = 2) -> str:
    if r.get(metric) is None:
        return "–"
    low, high = r.get(f"{metric}_ci_low"), r.get(f"{metric}_ci_high")
    return f"{r[metric]:.{nd}f}" if low is None else f"{r[metric]:.{nd}f} ± {(high - low) / 2:.{nd}f}"


def _diff_cell(r: dict, primary: str, own_reference: str | None = None) -> str:
    """``own_reference``: the name of the row this one is compared with, where it is not the table's reference."""
    if r[f"{primary}_diff_vs_ref"] is None:
        return "(reference)"
    nd = decimals(primary, markdown=True)
    vs = f" vs {own_reference}" if own_reference else ""
    if r[f"{primary}_diff_ci_low"] is None:
        return f"{r[f'{primary}_diff_vs_ref']:+.{nd}f}{vs} (one seed: no interval)"
    text = (f"{r[f'{primary}_diff_vs_ref']:+.{nd}f} [{r[f'{primary}_diff_ci_low']:+.{nd}f}, "
            f"{r[f'{primary}_diff_ci_high']:+.{nd}f}]")
    return (f"**{text}**" if r[f"{primary}_diff_significant"] else text) + vs


def _p(p) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt(v) -> str:
    return "–" if v is None else str(v)


def tau_sentence(summary: dict) -> str:
    k, what = summary["kendall_tau"], LABELS[summary["primary"]]
    pairs = summary.get("pairs", {})
    differ = sum(d.significant() for d in pairs.values())
    caveat = (f" Of the {len(pairs)} pairs of rows, {differ} differ significantly (the crossed test, every pair); "
              "tau ranks the others too, and where two rows lie inside each other's intervals their order is noise, "
              "so tau is only as meaningful as the pairs that differ." if pairs else "")
    if k.tau is None:
        return (f"Kendall's tau against the paper's {what} order: not defined ({k.n} rows with both numbers, or "
                f"ties).{caveat}")
    return (f"Kendall's tau between our mean {what} and the paper's over the {k.n} rows that have both: "
            f"{k.tau:+.2f} (p = {_p(k.p_value)}; +1 = the paper's order, 0 = unrelated).{caveat}")


def _metric_cells(table: Table, paper_cfg: dict) -> list[tuple[str, callable]]:
    """(header, cell function) per metric column the table shows."""
    arch = f"{paper_cfg.get('backbone', '?')}, {paper_cfg.get('num_frames', '?')}f"
    if any(r.paper_config for r in table.rows):
        arch = "the row's config in the paper"
    cells = []
    for col in table.columns or DEFAULT_COLUMNS:
        if col == "twin_order_accuracy":
            cells += [("Twin order", lambda r: _mean_pm(r, "twin_order_accuracy")),
                      ("p vs 50", lambda r: _p(r["twin_order_p_vs_chance"]))]
        elif col == "reversal_logit_change":
            cells.append(("Reversal Δlogit", lambda r: _mean_pm(r, "reversal_logit_change", 3)))
        elif col == "gflops_paper_config":
            cells.append((f"GFLOPs ({arch})", lambda r: _fmt(r["gflops_paper_config"])))
        elif col == "gflops_run_config":
            cells.append(("GFLOPs (this run)", lambda r: _fmt(r["gflops_run_config"])))
        elif col in METRICS:
            cells.append((LABELS[col], lambda r, c=col: _mean_pm(r, c, decimals(c, markdown=True))))
        else:
            raise AblationError(f"{table.path}: columns: unknown column {col!r}; expected metrics of {METRICS} or "
                             "gflops_paper_config / gflops_run_config")
    return cells


def write_markdown(result: TableResult, path: Path, profile: str, dataset: str) -> None:
    table, rows, summary = result.table, result.rows, result.summary
    primary, ref = summary["primary"], summary["reference"]
    what = LABELS[primary]
    names = {r["id"]: r["row"] for r in rows}
    ref_id = next(r["id"] for r in rows if r[f"{primary}_diff_vs_ref"] is None)

    def own_reference(r: dict) -> str | None:
        return names[r["compared_with"]] if r.get("compared_with") not in (None, ref_id) else None

    cells = [("Model", lambda r: r["row"]), (what, lambda r: _mean_pm(r, primary, decimals(primary, markdown=True))),
             (f"Δ {what.split(' =')[0]} vs {ref} [95% CI]", lambda r: _diff_cell(r, primary, own_reference(r))),
             ("p", lambda r: _p(r[f"{primary}_diff_p"])),
             ("MDE", lambda r: _fmt(r[f"{primary}_diff_mde"]))]  # fmt: skip
    cells += [c for c in _metric_cells(table, table.paper_config) if c[0] != what]
    latency = summary.get("latency")
    if latency is not None:
        cells += [(f"Latency ms/clip ({latency['device_short']})", lambda r: _fmt(r["latency_ms"])),
                  (f"Latency x {ref}", lambda r: _fmt(r["latency_ratio_vs_ref"]))]
    ref_row = next(r for r in rows if r[f"{primary}_diff_vs_ref"] is None)
    for key in paper_keys(table):
        cells.append((f"Paper {LABELS.get(key, key)}", lambda r, k=key: _fmt(r[f"paper_{k}"])))
        base = ref_row.get("paper_latency_ms")
        if key == "latency_ms" and base:
            cells.append((f"Paper latency x {ref}", lambda r, base=base: _fmt(
                None if r["paper_latency_ms"] is None else round(r["paper_latency_ms"] / base, 3))))
    lines = [f"# {table.title}", "", *_intro(result, profile, dataset), "",
             "| " + " | ".join(h for h, _ in cells) + " |", "|" + "---|" * len(cells)]  # fmt: skip
    for r in rows:
        lines.append("| " + " | ".join(f(r) for _, f in cells) + " |")
    lines += ["", f"FLOPs: {FLOPS_CONVENTION}.", "", *cited_lines(result)]
    notes = [tau_sentence(summary), *gain_sentences(summary, names), *mde_sentences(summary)]
    if "emd_vs_top1" in summary:
        notes.append(emd_sentence(summary))
    if latency is not None:
        notes.append(latency_sentence(latency, ref))
    notes += result.notes + table.notes
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    path.write_text("\n".join(lines))


def cited_lines(result: TableResult) -> list[str]:
    """The paper's rows for other papers' methods, as a table of their own: never run here, never in our tests."""
    if not result.cited:
        return []
    keys = [k for k in paper_keys(result.table) if any(r.get(f"paper_{k}") is not None for r in result.cited)]
    header = ["Cited model (the paper's reference)", *[LABELS.get(k, k.replace("_", " ").capitalize()) for k in keys]]
    lines = ["## Cited in the paper (other methods: the paper's numbers, not run by this suite)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in result.cited:
        lines.append("| " + " | ".join([f"{r['row']} {r['source'].removeprefix('cited ')}",
                                        *[_fmt(r.get(f"paper_{k}")) for k in keys]]) + " |")
    return [*lines, ""]


def gain_sentences(summary: dict, names: dict[str, str]) -> list[str]:
    """Rows compared with references of their own (e.g. ILA and the Baseline at each scale): does the gain differ
    between them? The difference of two paired differences, tested the same way (seeds and videos crossed)."""
    out = []
    for (a, b), d in summary.get("gain_contrasts", {}).items():
        nd = decimals(summary["primary"], markdown=True)
        interval = "" if d.low is None else f" [{d.low:+.{nd}f}, {d.high:+.{nd}f}], p = {_p(d.p_value)}"
        out.append(f"Gain of {names[a]} over its reference minus the gain of {names[b]} over its own: "
                   f"{d.diff:+.{nd}f}{interval}" + (" (significant at 5%)." if d.significant() else "."))
    return out


def _intro(result: TableResult, profile: str, dataset: str) -> list[str]:
    table, summary = result.table, result.summary
    primary, seeds, ref = summary["primary"], summary["seeds"], summary["reference"]
    what = LABELS[primary].split(" =")[0]
    spread = (f"other columns: mean ± half-width of the 95% Student-t interval over {len(seeds)} seeds "
              f"({', '.join(map(str, seeds))}), the spread between trainings alone, cut to the metric's range"
              if len(seeds) > 1 else f"one seed ({seeds[0]}): no interval, no test")
    pc = table.paper_config
    shown = table.columns or DEFAULT_COLUMNS
    return [
        f"Ours: profile `{profile}`, dataset `{dataset}`; accuracies in % on the {summary['videos']} validation "
        "videos. "
        f"{what}: mean over seeds ± half-width of its 95% interval with seeds and videos as sources of error; "
        f"{spread}. Columns marked *Paper* are the paper's reported numbers ("
        + ("each row's own backbone and frames)." if any(r.paper_config for r in table.rows) else
           f"CLIP {pc.get('backbone', '?')}, {pc.get('num_frames', '?')} frames)."),
        f"Δ: each row minus {ref}, seed s paired with seed s and video with video. A training run is the unit of "
        f"replication: the {int(100 * CONFIDENCE)}% interval and the two-sided t test (p) include both the "
        "seed-to-seed variation of the trainings and the sampling of the validation videos (crossed random "
        "effects, Satterthwaite degrees of freedom; `ila/stats.py`); **bold** = significant at 5%. MDE = the "
        f"difference this design would detect with {int(100 * POWER)}% power at 5%, from the measured variances: "
        "a Δ well below it is not evidence of no effect."
        + (" TS is compared as a contrast: the video term is taken within the temporal and the static group."
           if primary == "temporal_score" else ""),
        *([ORDER_SENTENCE] if {"twin_order_accuracy", "reversal_logit_change"} & set(shown) else []),
        _head_sentence(result.rows),
    ]


MDE_TARGET = 3.0  # points: the size of most of the paper's differences (0.3-1.5) is out of reach; 3 is the goal


def mde_sentences(summary: dict) -> list[str]:
    """The table's power: the MDE of its comparisons and what it would take to reach MDE_TARGET points."""
    diffs = [d for d in summary["differences"].values() if d.mde is not None]
    if not diffs:
        return ["Power: with one seed the seed-to-seed variance can't be measured, so neither intervals nor a "
                "minimum detectable difference can be given; train more seeds (`--config seeds=[0,1,2]`)."]
    mdes = sorted(d.mde for d in diffs)
    s, v = diffs[0].n_seeds, diffs[0].n_videos
    nd = decimals(summary["primary"], markdown=True)
    text = (f"Power: the minimum detectable difference ({int(100 * POWER)}% power, 5% two-sided) of these "
            "comparisons, from the "
            f"measured seed and video variances, is {mdes[0]:.{nd}f}–{mdes[-1]:.{nd}f} (median "
            f"{float(np.median(mdes)):.{nd}f}) with {s} seeds × {v} videos")
    if summary["primary"] == "emd":
        return [text + "."]
    text += " (in points; the paper's differences are mostly 0.3–1.5 points)."
    needed = [seeds_for_mde(d.components, MDE_TARGET, v) for d in diffs]
    needed4 = [seeds_for_mde(d.components, MDE_TARGET, 4 * v) for d in diffs]
    return [text + f" Reaching {MDE_TARGET:.0f} points for the median comparison would take "
            f"{_median_seeds(needed)} seeds per row at this recipe, or {_median_seeds(needed4)} with 4× the "
            "validation videos (projected from the variance components; `ila power` for other targets)."]


def _median_seeds(needed: list[int | None]) -> str:
    middle = median_seeds(needed)
    return f"over {MAX_SEEDS}" if middle is None else f"about {middle}"


ORDER_SENTENCE = (
    "Twin order = how often the true class outscores its time-reversed twin (50 = chance), *p vs 50* its test "
    "against chance; *Reversal Δlogit*: on 64 validation clips, the mean |logit change| when the clip is played "
    "backwards, relative to the logits' spread (0 = blind to frame order)."
)


def emd_sentence(summary: dict) -> str:
    k, o = summary["emd_vs_top1"], summary["emd_options"]
    corr = ("not defined (fewer than 3 rows, or ties)" if k.tau is None
            else f"{k.tau:+.2f} (p = {_p(k.p_value)}; the paper's reading, lower EMD with higher accuracy, is -1)")
    return (f"EMD (our choices, the paper states none): per video, the mean exact W1 distance (POT `ot.emd2`, "
            f"float64, uniform weights, {o['metric']} ground metric) between adjacent frames' patch tokens after the "
            f"last block{', each L2-normalised' if o['normalize'] else ''}, on the first evaluation view; then the "
            f"mean over videos. Kendall's tau between our EMD and our Top-1 across rows: {corr}.")


def latency_sentence(latency: dict, ref: str) -> str:
    return (f"Latency: measured by the workflow's `latency` rule (ila.latency, the code behind "
            f"benchmarks/latency.py) on {latency['device']}: {latency['config']}, batch {latency['batch']}, "
            f"{latency['precision']}, {latency['threads']} threads, median of {latency['reps']} calls after "
            f"{latency['warmup']} warm-up calls, random weights. The paper's milliseconds come from hardware it does "
            f"not name: compare the ratios to {ref}, not the milliseconds.")
