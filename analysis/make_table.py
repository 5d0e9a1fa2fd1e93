"""Write a table (CSV + Markdown) from the runs' ``metrics.json`` with the paper's numbers beside ours.

    python analysis/make_table.py --table ablations/table4.yaml --runs results/table4 --seeds 0 1 2 \
        --csv results/table4.csv --md results/table4.md --profile default --dataset synth-default

Every number in the "ours" columns is computed from the runs' ``results/<table>/<row>/seed<N>/metrics.json``
(accuracy and per-video outcomes from the evaluation, GFLOPs and parameters recorded there by ``ila evaluate
--cost-at``): per-seed means with intervals, paired differences from the table's reference row and their tests
(``ila.stats``). The "paper_" columns come from the ablation file.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ila.ablations import Row, Table, load_table
from ila.config import load_run_config
from ila.reporting import FLOPS_CONVENTION, flops_gap_note
from ila.stats import CONFIDENCE, kendall_tau, mean_ci, paired_difference, proportion_vs_chance

PERCENT_METRICS = ["top1", "top5", "top1_temporal", "top1_static", "twin_order_accuracy"]
# The evaluation's reversal probe (ila.engine.evaluate.ReversalProbe): mean |logit change| when the clip is reversed,
# relative to the logits' spread; 0 for a model blind to frame order.
METRICS = [*PERCENT_METRICS, "reversal_logit_change"]
# Per metric: mean over seeds and its 95% interval; then the paired comparison with the table's reference row.
COLUMNS = [
    "id", "row", "variant", "seeds",
    *[f"{m}{suffix}" for m in METRICS for suffix in ("", "_ci_low", "_ci_high")],
    "top1_per_seed", "top1_diff_vs_ref", "top1_diff_ci_low", "top1_diff_ci_high", "top1_diff_p", "top1_diff_significant",
    "twin_order_p_vs_chance",
    "gflops_paper_config", "gflops_run_config", "params_m", "params_added_by_operator_m",
    "paper_top1", "paper_gflops", "profile", "dataset", "head", "train_steps",
]  # fmt: skip


def _pct(x):
    return None if x is None else round(100 * x, 2)


def _run_head(run_dir: Path) -> str | None:
    """The classifier head a run was trained with, from the resolved config saved beside its outputs."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    return load_run_config(path).model.head


def row_runs_dir(runs: Path, row: Row) -> Path:
    """Where a row's seed directories are: the table's own, or the table it is shared from (a sibling)."""
    return runs.parent / row.run_table / row.id if row.run_table else runs / row.id


def load_seed_metrics(runs: Path, row: Row, seeds: list[int]) -> list[dict]:
    out = []
    for seed in seeds:
        path = row_runs_dir(runs, row) / f"seed{seed}" / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics for row {row.id!r}, seed {seed}; run its evaluation first")
        out.append(json.loads(path.read_text()))
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


def _seed_stats(row: dict, per_seed: list[dict]) -> None:
    for metric in METRICS:
        values = [m.get(metric) for m in per_seed]
        if any(v is None for v in values):
            row.update({metric: None, f"{metric}_ci_low": None, f"{metric}_ci_high": None})
            continue
        scale = 100 if metric in PERCENT_METRICS else 1
        ci = mean_ci([scale * v for v in values])
        nd = 2 if scale == 100 else 4
        row.update({metric: round(ci.mean, nd), f"{metric}_ci_low": _round(ci.low, nd),
                    f"{metric}_ci_high": _round(ci.high, nd)})
    row["top1_per_seed"] = ";".join(f"{100 * m['top1']:.2f}" for m in per_seed)


def _round(x, nd=2):
    return None if x is None else round(x, nd)


def collect(table: Table, runs: Path, profile: str, dataset: str,
            seeds: list[int]) -> tuple[list[dict], list[str], dict]:
    paper_key = f"{table.paper_config.get('backbone', 'ViT-B-32')}@{table.paper_config.get('num_frames', 8)}f"
    rows, notes = [], []
    available = table.available_rows()
    ref = table.reference_row()
    if ref not in available:
        raise ValueError(f"{table.path}: reference row {ref.id!r} has no implemented variant")
    ref_metrics = load_seed_metrics(runs, ref, seeds)
    videos = ref_metrics[0].get("per_video", {}).get("video")
    ref_correct = outcome_matrix(ref_metrics, "correct", videos)
    for row in available:
        per_seed = ref_metrics if row is ref else load_seed_metrics(runs, row, seeds)
        m = per_seed[0]
        cost = m.get("cost", {})
        at_paper, at_run = cost.get(paper_key, {}), cost.get("run_config", {})
        out = {
            "id": row.id, "row": row.name, "variant": row.variant, "seeds": len(seeds),
            "gflops_paper_config": round(at_paper["gflops"], 2) if at_paper else None,
            "gflops_run_config": round(at_run["gflops"], 4) if at_run else None,
            "params_m": round(at_run["params_total"] / 1e6, 3) if at_run else None,
            "params_added_by_operator_m": round(at_paper["params_operator"] / 1e6, 2) if at_paper else None,
            "paper_top1": row.paper.get("top1"), "paper_gflops": row.paper.get("gflops"),
            "profile": profile, "dataset": dataset, "head": _run_head(row_runs_dir(runs, row) / f"seed{seeds[0]}"),
            "train_steps": m.get("train_steps"),
        }  # fmt: skip
        _seed_stats(out, per_seed)
        if row is not ref:
            d = paired_difference(100 * outcome_matrix(per_seed, "correct", videos), 100 * ref_correct)
            out.update({"top1_diff_vs_ref": round(d.diff, 2), "top1_diff_ci_low": round(d.low, 2),
                        "top1_diff_ci_high": round(d.high, 2), "top1_diff_p": round(d.p_value, 4),
                        "top1_diff_significant": d.significant()})
        twin = outcome_matrix(per_seed, "twin_hit", videos)
        has_twin = (twin >= 0).all(0)
        if has_twin.any():
            out["twin_order_p_vs_chance"] = round(proportion_vs_chance(twin[:, has_twin]).p_value, 4)
        rows.append({k: out.get(k) for k in COLUMNS})
        if at_paper and row.paper.get("gflops") is not None:
            note = flops_gap_note(row.name, at_paper["gflops"], at_paper["gflops_operator"], row.paper["gflops"],
                                  row.flops_note)
            if note:
                notes.append(note)
        if row.label:
            notes.append(f"{row.name}: {row.label}.")
        if row.run_table:
            notes.append(f"{row.name}: the same runs as {row.run_table}'s row `{row.id}` (trained once, shared).")
    for row in table.rows:
        if not row.available():
            notes.append(f"{row.name}: not run yet — its method arrives with {row.requires or 'a later issue'}.")
    agreement = kendall_tau([r["top1"] for r in rows], [r["paper_top1"] for r in rows])
    summary = {"reference": ref.name, "kendall_tau": agreement, "seeds": seeds, "videos": len(videos)}
    return rows, notes, summary


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if r[k] is None else r[k] for k in COLUMNS})


def _head_sentence(rows: list[dict]) -> str:
    heads = sorted({r["head"] for r in rows if r["head"]})
    if heads == ["linear"]:
        return ("Every row here has a linear classifier head (cross-entropy on one-hot labels, as the paper does "
                "for SSv2 and in Table 10), so X-CLIP's video-specific prompt, a text-head part, is not used.")
    if heads == ["text"]:
        return "Every row here has the class-name text head (cosine similarity to CLIP text embeddings)."
    return f"Heads used: {', '.join(heads) or 'unknown'} (see the CSV's head column)."


def _mean_pm(r: dict, metric: str, nd: int = 2) -> str:
    if r[metric] is None:
        return "–"
    low, high = r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]
    return f"{r[metric]:.{nd}f}" if low is None else f"{r[metric]:.{nd}f} ± {(high - low) / 2:.{nd}f}"


def _diff_cell(r: dict) -> str:
    if r["top1_diff_vs_ref"] is None:
        return "(reference)"
    text = f"{r['top1_diff_vs_ref']:+.2f} [{r['top1_diff_ci_low']:+.2f}, {r['top1_diff_ci_high']:+.2f}]"
    return f"**{text}**" if r["top1_diff_significant"] else text


def _p(p) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def tau_sentence(summary: dict) -> str:
    k = summary["kendall_tau"]
    if k.tau is None:
        return f"Kendall's tau against the paper's Top-1 order: not defined ({k.n} rows with both numbers, or ties)."
    return (f"Kendall's tau between our mean Top-1 and the paper's Top-1 over the {k.n} rows that have both: "
            f"{k.tau:+.2f} (p = {_p(k.p_value)}; +1 = the paper's order, 0 = unrelated).")


def write_markdown(table: Table, rows: list[dict], notes: list[str], path: Path, profile: str, dataset: str,
                   summary: dict) -> None:
    paper_cfg = table.paper_config
    seeds, ref = summary["seeds"], summary["reference"]
    head = ["Model", "Top-1", f"Δ Top-1 vs {ref} [95% CI]", "p", "Top-5", "Top-1 temporal", "Top-1 static",
            "Twin order", "p vs 50", "Reversal Δlogit", f"GFLOPs ({paper_cfg.get('backbone', '?')}, {paper_cfg.get('num_frames', '?')}f)",
            "GFLOPs (this run)", "Paper Top-1", "Paper GFLOPs"]  # fmt: skip

    def fmt(v):
        return "–" if v is None else str(v)

    spread = (f"mean ± half-width of the 95% Student-t interval over {len(seeds)} seeds ({', '.join(map(str, seeds))})"
              if len(seeds) > 1 else f"one seed ({seeds[0]}): no interval across seeds")
    lines = [f"# {table.title}", "",
             f"Ours: profile `{profile}`, dataset `{dataset}`; accuracies in % on the {summary['videos']} validation "
             f"videos, {spread}. Twin order = how often the true class outscores its time-reversed twin "
             "(50 = chance). Columns marked *Paper* are the paper's reported numbers (Kinetics-400, CLIP ViT-B/32, "
             "8 frames).",
             f"Δ Top-1: each row minus {ref} on the same videos (seed s paired with seed s, each video's difference "
             f"averaged over seeds), with a {int(100 * CONFIDENCE)}% paired-bootstrap interval over videos and a "
             "two-sided sign-flip permutation p-value; **bold** = significant at 5%. *p vs 50*: the twin-order rate "
             "against chance, tested the same way. *Reversal Δlogit*: on 64 validation clips, the mean |logit "
             "change| when the clip is played backwards, relative to the logits' spread (0 = blind to frame order).",
             _head_sentence(rows), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for r in rows:
        vals = [r["row"], _mean_pm(r, "top1"), _diff_cell(r), _p(r["top1_diff_p"]), _mean_pm(r, "top5"),
                _mean_pm(r, "top1_temporal"), _mean_pm(r, "top1_static"), _mean_pm(r, "twin_order_accuracy"),
                _p(r["twin_order_p_vs_chance"]), _mean_pm(r, "reversal_logit_change", 3),
                fmt(r["gflops_paper_config"]), fmt(r["gflops_run_config"]),
                fmt(r["paper_top1"]), fmt(r["paper_gflops"])]
        lines.append("| " + " | ".join(vals) + " |")
    lines += ["", f"FLOPs: {FLOPS_CONVENTION}.", ""]
    notes = [tau_sentence(summary), *notes]
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--runs", required=True, help="directory holding <row id>/metrics.json")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every row (run directories seed<N>)")
    p.add_argument("--profile", default="default")
    p.add_argument("--dataset", default="")
    p.add_argument("--mlflow-uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="do not attach the table to its MLflow experiment")
    args = p.parse_args(argv)
    table = load_table(args.table)
    rows, notes, summary = collect(table, Path(args.runs), args.profile, args.dataset, args.seeds)
    write_csv(rows, Path(args.csv))
    write_markdown(table, rows, notes, Path(args.md), args.profile, args.dataset, summary)
    print(f"wrote {args.csv} and {args.md} ({len(rows)} rows)")
    if not args.no_mlflow:
        from ila.engine.tracking import log_table

        run_id = log_table(table.table, [args.csv, args.md], {"profile": args.profile, "dataset": args.dataset},
                           args.mlflow_uri)
        print(f"attached them to MLflow run {run_id} in experiment {table.table!r}")


if __name__ == "__main__":
    main()
