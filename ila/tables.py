"""A table from its runs: our numbers (read from every (row, seed) run's ``metrics.json``) beside the paper's.

What a table shows comes from its ablation file (:mod:`ila.ablations`): the rows, the reference row every other row
is compared with, the table's primary measure (``primary``, Top-1 unless the table is about something else, as
Table 13's temporal score), the metric columns (``columns``) and whether it has a latency column (``latency``).
Per metric: the mean over seeds and its Student-t interval. For the primary measure: each row's paired difference
from the reference on the same videos, with a bootstrap interval and a permutation p-value (:mod:`ila.stats`), and
Kendall's tau between our order of the rows and the paper's. The ``paper_`` columns come from the ablation file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ila.ablations import Row, Table
from ila.config import load_run_config
from ila.reporting import FLOPS_CONVENTION, flops_gap_note
from ila.stats import CONFIDENCE, kendall_tau, mean_ci, paired_difference, proportion_vs_chance

PERCENT_METRICS = ["top1", "top5", "top1_temporal", "top5_temporal", "top1_static", "temporal_score",
                   "twin_order_accuracy"]  # fmt: skip
# The evaluation's reversal probe (ila.engine.evaluate.ReversalProbe): mean |logit change| when the clip is reversed,
# relative to the logits' spread; 0 for a model blind to frame order.
METRICS = [*PERCENT_METRICS, "reversal_logit_change", "emd"]
# Measures a table can be about, each a mean (or contrast) of a per-video outcome, so that rows can be compared on
# the same videos (ila.stats.paired_difference): the outcome's key in the per-video lists and the factor that turns
# it into the table's unit. Table 5's EMD comes from each run's emd.json (`ila emd`), the others from metrics.json.
PRIMARY_MEASURES = {"top1": ("correct", 100), "temporal_score": ("correct", 100), "emd": ("emd", 1)}
# Markdown columns of a table that names none (Table 4's).
DEFAULT_COLUMNS = ["top5", "top1_temporal", "top1_static", "twin_order_accuracy", "reversal_logit_change",
                   "gflops_paper_config", "gflops_run_config"]  # fmt: skip
LABELS = {
    "top1": "Top-1", "top5": "Top-5", "top1_temporal": "Top-1 (T)", "top5_temporal": "Top-5 (T)",
    "top1_static": "Top-1 (S)", "temporal_score": "TS = Top-1 (T) - Top-1 (S)", "twin_order_accuracy": "Twin order",
    "reversal_logit_change": "Reversal Δlogit", "gflops": "GFLOPs", "latency_ms": "latency (ms/clip)",
    "emd": "EMD (adjacent frames)",
}  # fmt: skip
ROW_COLUMNS = ["id", "row", "variant", "seeds"]
COST_COLUMNS = ["gflops_paper_config", "gflops_run_config", "params_m", "params_added_by_operator_m"]
RUN_COLUMNS = ["profile", "dataset", "head", "train_steps", "run_table"]
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


def primary_measure(table: Table) -> str:
    primary = table.primary or "top1"
    if primary not in PRIMARY_MEASURES:
        raise ValueError(f"{table.path}: primary {primary!r} is not one of {sorted(PRIMARY_MEASURES)}")
    return primary


def csv_columns(table: Table, has_latency: bool) -> list[str]:
    p = primary_measure(table)
    metric_cols = [f"{m}{suffix}" for m in METRICS for suffix in ("", "_ci_low", "_ci_high")]
    diff_cols = [f"{p}_per_seed", f"{p}_diff_vs_ref", f"{p}_diff_ci_low", f"{p}_diff_ci_high", f"{p}_diff_p",
                 f"{p}_diff_significant", "twin_order_p_vs_chance"]  # fmt: skip
    paper_cols = [f"paper_{k}" for k in paper_keys(table)]
    return [*ROW_COLUMNS, *metric_cols, *diff_cols, *COST_COLUMNS, *(LATENCY_COLUMNS if has_latency else []),
            *paper_cols, *RUN_COLUMNS]


def paper_keys(table: Table) -> list[str]:
    """Every number the paper gives for some row, in order of first appearance (top-1 first)."""
    keys = ["top1"] if table.primary in (None, "top1") else []
    for row in table.rows:
        keys += [k for k in row.paper if k not in keys]
    return keys


def row_runs_dir(runs: Path, row: Row) -> Path:
    """Where a row's seed directories are: the table's own, or the table it is shared from (a sibling)."""
    return runs.parent / row.run_table / row.id if row.run_table else runs / row.id


def load_seed_metrics(runs: Path, row: Row, seeds: list[int], with_emd: bool = False) -> list[dict]:
    """Each seed's metrics.json, with its emd.json merged in (``emd`` and the per-video ``emd``) when asked."""
    out = []
    for seed in seeds:
        run_dir = row_runs_dir(runs, row) / f"seed{seed}"
        path = run_dir / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics for row {row.id!r}, seed {seed}; run its evaluation first")
        m = json.loads(path.read_text())
        if with_emd:
            emd_path = run_dir / "emd.json"
            if not emd_path.is_file():
                raise FileNotFoundError(f"{emd_path}: no EMD for row {row.id!r}, seed {seed}; run `ila emd` first")
            emd = json.loads(emd_path.read_text())
            if emd["per_video"]["video"] != m["per_video"]["video"]:
                raise ValueError(f"{emd_path}: measured on other videos than {path}")
            m["emd"] = emd["emd"]
            m["emd_options"] = emd["options"]
            m["per_video"] = {**m["per_video"], "emd": emd["per_video"]["emd"]}
        out.append(m)
    return out


def outcome_matrix(per_seed: list[dict], key: str, videos: list[str]) -> np.ndarray:
    """``[seeds, videos]`` of a per-video outcome, aligned on the reference's video order (rows must have been
    evaluated on the same videos: a paired test means nothing otherwise)."""
    rows = []
    for m in per_seed:
        pv = m.get("per_video")
        if pv is None:
            raise ValueError("metrics.json has no per_video outcomes (written by an older `ila evaluate`): re-run "
                             "the evaluation")
        if pv["video"] != videos:
            raise ValueError("rows were evaluated on different validation videos; a paired test needs the same ones")
        if key == "correct":
            rows.append(np.equal(pv["pred"], pv["label"]).astype(float))
        else:
            rows.append(np.asarray(pv[key], dtype=float))
    return np.stack(rows)


def video_weights(primary: str, metrics: dict) -> np.ndarray | None:
    """Per-video weights that turn the per-video outcome into the primary measure (None: the plain mean)."""
    if primary != "temporal_score":
        return None
    names, groups = metrics["class_names"], metrics["class_groups"]
    group = np.array([groups.get(names[label]) or "" for label in metrics["per_video"]["label"]])
    n_t, n_s = int((group == "temporal").sum()), int((group == "static").sum())
    if not n_t or not n_s:
        raise ValueError("the temporal score needs validation videos of both the temporal and the static group")
    return np.where(group == "temporal", 1 / n_t, np.where(group == "static", -1 / n_s, 0.0))


def _run_head(run_dir: Path) -> str | None:
    """The classifier head a run was trained with, from the resolved config saved beside its outputs."""
    path = run_dir / "config.yaml"
    return load_run_config(path).model.head if path.is_file() else None


def _round(x, nd=2):
    return None if x is None else round(x, nd)


def _seed_stats(out: dict, per_seed: list[dict], primary: str) -> None:
    for metric in METRICS:
        values = [m.get(metric) for m in per_seed]
        if any(v is None for v in values):
            out.update({metric: None, f"{metric}_ci_low": None, f"{metric}_ci_high": None})
            continue
        scale = 100 if metric in PERCENT_METRICS else 1
        ci = mean_ci([scale * v for v in values])
        nd = 2 if scale == 100 else 4
        out.update({metric: round(ci.mean, nd), f"{metric}_ci_low": _round(ci.low, nd),
                    f"{metric}_ci_high": _round(ci.high, nd)})
    scale = PRIMARY_MEASURES[primary][1]
    nd = 2 if scale == 100 else 4
    out[f"{primary}_per_seed"] = ";".join("" if m.get(primary) is None else f"{scale * m[primary]:.{nd}f}"
                                          for m in per_seed)


def _costs(out: dict, m: dict, paper_key: str) -> dict:
    cost = m.get("cost", {})
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
        path = row_runs_dir(runs, row) / f"seed{seed}" / "mlflow_run_id"
        if path.is_file():
            out[f"{row.id}-seed{seed}"] = path.read_text().strip()
    return out


def collect(table: Table, runs: Path, profile: str, dataset: str, seeds: list[int],
            latency: dict | None = None) -> TableResult:
    """Every available row's numbers; ``latency`` is what :func:`ila.latency.measure_table` wrote for the table."""
    primary = primary_measure(table)
    paper_key = f"{table.paper_config.get('backbone', 'ViT-B-32')}@{table.paper_config.get('num_frames', 8)}f"
    available = table.available_rows()
    ref = table.reference_row()
    if ref not in available:
        raise ValueError(f"{table.path}: reference row {ref.id!r} has no implemented variant")
    outcome, scale = PRIMARY_MEASURES[primary]
    with_emd = primary == "emd"
    ref_metrics = load_seed_metrics(runs, ref, seeds, with_emd)
    videos = ref_metrics[0].get("per_video", {}).get("video")
    ref_outcome = scale * outcome_matrix(ref_metrics, outcome, videos)
    weights = video_weights(primary, ref_metrics[0])
    result = TableResult(table, [], csv_columns(table, latency is not None))
    for row in available:
        per_seed = ref_metrics if row is ref else load_seed_metrics(runs, row, seeds, with_emd)
        m = per_seed[0]
        out = {"id": row.id, "row": row.name, "variant": row.variant, "seeds": len(seeds), "profile": profile,
               "dataset": dataset, "head": _run_head(row_runs_dir(runs, row) / f"seed{seeds[0]}"),
               "train_steps": m.get("train_steps"), "run_table": row.run_table or table.table}  # fmt: skip
        out.update({f"paper_{k}": row.paper.get(k) for k in paper_keys(table)})
        at_paper = _costs(out, m, paper_key)
        _seed_stats(out, per_seed, primary)
        if row is not ref:
            d = paired_difference(scale * outcome_matrix(per_seed, outcome, videos), ref_outcome, weights=weights)
            nd = 2 if scale == 100 else 4
            out.update({f"{primary}_diff_vs_ref": round(d.diff, nd), f"{primary}_diff_ci_low": round(d.low, nd),
                        f"{primary}_diff_ci_high": round(d.high, nd), f"{primary}_diff_p": round(d.p_value, 4),
                        f"{primary}_diff_significant": d.significant()})  # fmt: skip
        twin = outcome_matrix(per_seed, "twin_hit", videos)
        has_twin = (twin >= 0).all(0)
        if has_twin.any():
            out["twin_order_p_vs_chance"] = round(proportion_vs_chance(twin[:, has_twin]).p_value, 4)
        if latency is not None:
            _latency(out, latency, row, ref)
        result.rows.append({k: out.get(k) for k in result.columns})
        ids = _run_ids(runs, row, seeds)
        result.runs.update(ids)
        if row.run_table:
            result.shared_runs += list(ids.values())
        result.notes += _row_notes(row, at_paper)
    for row in table.rows:
        if not row.available():
            result.notes.append(f"{row.name}: not run — its method arrives with {row.requires or 'a later issue'}.")
    agreement = kendall_tau([r[primary] for r in result.rows], [r.get(f"paper_{primary}") for r in result.rows])
    result.summary = {"reference": ref.name, "primary": primary, "kendall_tau": agreement, "seeds": seeds,
                      "videos": len(videos), "latency": latency}  # fmt: skip
    if with_emd:
        # The paper's reading of Table 5: lower EMD (more mutual information between frames) goes with higher accuracy.
        result.summary["emd_vs_top1"] = kendall_tau([r["emd"] for r in result.rows], [r["top1"] for r in result.rows])
        result.summary["emd_options"] = ref_metrics[0]["emd_options"]
    return result


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
        for r in result.rows:
            writer.writerow({k: "" if r[k] is None else r[k] for k in result.columns})


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


def _digits(metric: str) -> int:
    return 2 if metric in PERCENT_METRICS else 3


def _diff_cell(r: dict, primary: str) -> str:
    if r[f"{primary}_diff_vs_ref"] is None:
        return "(reference)"
    nd = _digits(primary)
    text = (f"{r[f'{primary}_diff_vs_ref']:+.{nd}f} [{r[f'{primary}_diff_ci_low']:+.{nd}f}, "
            f"{r[f'{primary}_diff_ci_high']:+.{nd}f}]")
    return f"**{text}**" if r[f"{primary}_diff_significant"] else text


def _p(p) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt(v) -> str:
    return "–" if v is None else str(v)


def tau_sentence(summary: dict) -> str:
    k, what = summary["kendall_tau"], LABELS[summary["primary"]]
    if k.tau is None:
        return f"Kendall's tau against the paper's {what} order: not defined ({k.n} rows with both numbers, or ties)."
    return (f"Kendall's tau between our mean {what} and the paper's over the {k.n} rows that have both: "
            f"{k.tau:+.2f} (p = {_p(k.p_value)}; +1 = the paper's order, 0 = unrelated).")


def _metric_cells(table: Table, paper_cfg: dict) -> list[tuple[str, callable]]:
    """(header, cell function) per metric column the table shows."""
    arch = f"{paper_cfg.get('backbone', '?')}, {paper_cfg.get('num_frames', '?')}f"
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
            cells.append((LABELS[col], lambda r, c=col: _mean_pm(r, c, _digits(c))))
        else:
            raise ValueError(f"{table.path}: columns: unknown column {col!r}; expected metrics of {METRICS} or "
                             "gflops_paper_config / gflops_run_config")
    return cells


def write_markdown(result: TableResult, path: Path, profile: str, dataset: str) -> None:
    table, rows, summary = result.table, result.rows, result.summary
    primary, seeds, ref = summary["primary"], summary["seeds"], summary["reference"]
    what = LABELS[primary]
    cells = [("Model", lambda r: r["row"]), (what, lambda r: _mean_pm(r, primary, _digits(primary))),
             (f"Δ {what.split(' =')[0]} vs {ref} [95% CI]", lambda r: _diff_cell(r, primary)),
             ("p", lambda r: _p(r[f"{primary}_diff_p"]))]  # fmt: skip
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
    shown = table.columns or DEFAULT_COLUMNS
    spread = (f"mean ± half-width of the 95% Student-t interval over {len(seeds)} seeds ({', '.join(map(str, seeds))})"
              if len(seeds) > 1 else f"one seed ({seeds[0]}): no interval across seeds")
    pc = table.paper_config
    lines = [f"# {table.title}", "",
             f"Ours: profile `{profile}`, dataset `{dataset}`; accuracies in % on the {summary['videos']} validation "
             f"videos, {spread}. Columns marked *Paper* are the paper's reported numbers (CLIP "
             f"{pc.get('backbone', '?')}, {pc.get('num_frames', '?')} frames).",
             f"Δ: each row minus {ref} on the same videos (seed s paired with seed s, each video's difference "
             f"averaged over seeds), with a {int(100 * CONFIDENCE)}% paired-bootstrap interval over videos and a "
             "two-sided sign-flip permutation p-value; **bold** = significant at 5%."
             + (" TS is compared as a contrast: the bootstrap resamples videos within the temporal and the static "
                "group." if primary == "temporal_score" else ""),
             *([ORDER_SENTENCE] if {"twin_order_accuracy", "reversal_logit_change"} & set(shown) else []),
             _head_sentence(rows), "",
             "| " + " | ".join(h for h, _ in cells) + " |", "|" + "---|" * len(cells)]  # fmt: skip
    for r in rows:
        lines.append("| " + " | ".join(f(r) for _, f in cells) + " |")
    lines += ["", f"FLOPs: {FLOPS_CONVENTION}.", ""]
    notes = [tau_sentence(summary)]
    if "emd_vs_top1" in summary:
        notes.append(emd_sentence(summary))
    if latency is not None:
        notes.append(latency_sentence(latency, ref))
    notes += result.notes + table.notes
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    path.write_text("\n".join(lines))


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
