"""Write a table (CSV + Markdown) from the runs' ``metrics.json`` with the paper's numbers beside ours.

    python analysis/make_table.py --table ablations/table4.yaml --runs results/table4 \
        --csv results/table4.csv --md results/table4.md --profile default --dataset synth-default

Every number in the "ours" columns is read from a run's ``metrics.json`` (accuracy from the evaluation, GFLOPs and
parameters recorded there by ``ila evaluate --cost-at``); the "paper_" columns come from the ablation file.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from ila.ablations import Table, load_table
from ila.config import load_run_config
from ila.reporting import FLOPS_CONVENTION, flops_gap_note

COLUMNS = [
    "id", "row", "variant",
    "top1", "top5", "top1_temporal", "top1_static", "twin_order_accuracy",
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


def collect(table: Table, runs: Path, profile: str, dataset: str) -> tuple[list[dict], list[str]]:
    paper_key = f"{table.paper_config.get('backbone', 'ViT-B-32')}@{table.paper_config.get('num_frames', 8)}f"
    rows, notes = [], []
    for row in table.available_rows():
        path = runs / row.id / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no metrics for row {row.id!r}; run its evaluation first")
        m = json.loads(path.read_text())
        cost = m.get("cost", {})
        at_paper, at_run = cost.get(paper_key, {}), cost.get("run_config", {})
        rows.append({
            "id": row.id, "row": row.name, "variant": row.variant,
            "top1": _pct(m["top1"]), "top5": _pct(m["top5"]),
            "top1_temporal": _pct(m.get("top1_temporal")), "top1_static": _pct(m.get("top1_static")),
            "twin_order_accuracy": _pct(m.get("twin_order_accuracy")),
            "gflops_paper_config": round(at_paper["gflops"], 2) if at_paper else None,
            "gflops_run_config": round(at_run["gflops"], 4) if at_run else None,
            "params_m": round(at_run["params_total"] / 1e6, 3) if at_run else None,
            "params_added_by_operator_m": round(at_paper["params_operator"] / 1e6, 2) if at_paper else None,
            "paper_top1": row.paper.get("top1"), "paper_gflops": row.paper.get("gflops"),
            "profile": profile, "dataset": dataset, "head": _run_head(runs / row.id),
            "train_steps": m.get("train_steps"),
        })  # fmt: skip
        if at_paper and row.paper.get("gflops") is not None:
            note = flops_gap_note(row.name, at_paper["gflops"], at_paper["gflops_operator"], row.paper["gflops"],
                                  row.flops_note)
            if note:
                notes.append(note)
        if row.label:
            notes.append(f"{row.name}: {row.label}.")
    for row in table.rows:
        if not row.available():
            notes.append(f"{row.name}: not run yet — its method arrives with {row.requires or 'a later issue'}.")
    return rows, notes


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


def write_markdown(table: Table, rows: list[dict], notes: list[str], path: Path, profile: str, dataset: str) -> None:
    paper_cfg = table.paper_config
    head = ["Model", "Top-1", "Top-5", "Top-1 temporal", "Top-1 static", "Twin order",
            f"GFLOPs ({paper_cfg.get('backbone', '?')}, {paper_cfg.get('num_frames', '?')}f)", "GFLOPs (this run)",
            "Paper Top-1", "Paper GFLOPs"]  # fmt: skip

    def fmt(v):
        return "–" if v is None else str(v)

    lines = [f"# {table.title}", "",
             f"Ours: profile `{profile}`, dataset `{dataset}`; accuracies in % on the validation split, "
             "twin order = how often the true class outscores its time-reversed twin (50 = chance). "
             "Columns marked *Paper* are the paper's reported numbers (Kinetics-400, CLIP ViT-B/32, 8 frames).",
             _head_sentence(rows), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
    for r in rows:
        vals = [r["row"], r["top1"], r["top5"], r["top1_temporal"], r["top1_static"], r["twin_order_accuracy"],
                r["gflops_paper_config"], r["gflops_run_config"], r["paper_top1"], r["paper_gflops"]]
        lines.append("| " + " | ".join(fmt(v) for v in vals) + " |")
    lines += ["", f"FLOPs: {FLOPS_CONVENTION}.", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True)
    p.add_argument("--runs", required=True, help="directory holding <row id>/metrics.json")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--profile", default="default")
    p.add_argument("--dataset", default="")
    p.add_argument("--mlflow-uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="do not attach the table to its MLflow experiment")
    args = p.parse_args(argv)
    table = load_table(args.table)
    rows, notes = collect(table, Path(args.runs), args.profile, args.dataset)
    write_csv(rows, Path(args.csv))
    write_markdown(table, rows, notes, Path(args.md), args.profile, args.dataset)
    print(f"wrote {args.csv} and {args.md} ({len(rows)} rows)")
    if not args.no_mlflow:
        from ila.engine.tracking import log_table

        run_id = log_table(table.table, [args.csv, args.md], {"profile": args.profile, "dataset": args.dataset},
                           args.mlflow_uri)
        print(f"attached them to MLflow run {run_id} in experiment {table.table!r}")


if __name__ == "__main__":
    main()
