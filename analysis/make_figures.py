"""Draw the paper's figures and the suite's own from the workflow's outputs (PNG + PDF; functions in ila.figures).

    python analysis/make_figures.py table   --csv results/table4.csv --out results/figures/table4
    python analysis/make_figures.py figure1 --csv results/table1.csv --out results/figures/figure1
    python analysis/make_figures.py figure5 --run results/table4/ila/seed0 --out results/figures/figure5_ila
    python analysis/make_figures.py heatmaps --run divided_st=results/table4/divided_st/seed0 \
        --run ata=results/table4/ata/seed0 --run ila=results/table4/ila/seed0 --depth middle \
        --out results/figures/figure6
    python analysis/make_figures.py curves --table ablations/table4.yaml --runs results/table4 --seeds 0 1 2 \
        --out results/figures/curves_table4

Clips for Figures 5-7 are the first validation videos of classes that need frame order (the benchmark's
``temporal`` group, objects that move), first deterministic view, so every run of the workflow draws the same ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ila import figures
from ila.data.kinds import WORKFLOW_DATASET_KINDS


def _run_config(run_dir: str | Path):
    from ila.config import load_run_config

    path = Path(run_dir) / "run.yaml"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; expected a run directory of the workflow (results/<table>/<row>/seed<N>)")
    return load_run_config(path)


def _temporal_clips(val, count: int) -> tuple[torch.Tensor, list[int]]:
    """The first validation video of each of the first ``count`` temporal classes, first view:
    ``[count, T, 3, S, S]``."""
    groups = {c.id: c.group for c in val.classes}
    picked, seen = [], set()
    for i, rec in enumerate(val.records):
        if groups.get(rec.label) == "temporal" and rec.label not in seen and len(picked) < count:
            picked.append(i)
            seen.add(rec.label)
    if not picked:
        picked = list(range(min(count, len(val))))
    return torch.stack([val[i]["video"][0] for i in picked]), picked


def cmd_table(args) -> None:
    figures.table_plot(args.csv, args.out, args.measure, args.title)


def cmd_figure1(args) -> None:
    figures.figure1(args.csv, args.out)


def cmd_figure5(args) -> None:
    from ila.engine.runs import load_trained, to_rgb

    cfg = _run_config(args.run)
    model, val = load_trained(cfg)
    depth = model.video_vit.depth
    blocks = sorted({0, depth - 1}) if args.blocks is None else args.blocks
    clips, picked = _temporal_clips(val, args.clips)
    grid = tuple(model.video_vit.grid)
    patch = cfg.data.input_size // grid[0]
    rgb = torch.stack([torch.from_numpy(to_rgb(c)) for c in clips]).numpy()
    names = ", ".join(val.class_names[val.records[i].label] for i in picked)
    figures.figure5(model, clips, rgb, blocks, grid, patch, args.out,
                    f"{cfg.model.variant}: interactive points (box = the mask's full-weight region), blocks "
                    f"{blocks}\nclips: {names}")


def cmd_heatmaps(args) -> None:
    from ila.engine.runs import load_trained, to_rgb

    models, block_of, grid, clip, val = {}, {}, None, None, None
    for item in args.run:
        name, _, run_dir = item.partition("=")
        cfg = _run_config(run_dir)
        model, val = load_trained(cfg)
        depth = model.video_vit.depth
        block_of[name] = depth - 1 if args.depth == "last" else depth // 2 - 1
        models[name] = model
        grid = tuple(model.video_vit.grid)
        if clip is None:
            clips, picked = _temporal_clips(val, 1)
            clip, label = clips[0], val.class_names[val.records[picked[0]].label]
    which = "last block" if args.depth == "last" else "an intermediate block"
    figures.heatmap_figure(models, clip, to_rgb(clip), block_of, grid, args.out,
                           f"Patch-token L2 norm after {which} (scaled to [0, 1] per model over the clip); "
                           f"clip: {label}")


def cmd_curves(args) -> None:
    from ila.ablations import load_table
    from ila.tables import row_run_dir

    table = load_table(args.table)
    # Only the rows the profile's dataset runs: a row of another dataset (Table 2's SSv2 rows on the embedded
    # benchmark) has no run directory to plot.
    runs = {row.name: [row_run_dir(Path(args.runs), row, s) for s in args.seeds]
            for row in table.available_rows(args.dataset_kind)}
    figures.training_curves(runs, args.out, args.mlflow_uri)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="figure", required=True)
    t = sub.add_parser("table", help="a table as a plot: our mean and 95%% CI per row, the paper's value marked")
    t.add_argument("--csv", required=True)
    t.add_argument("--measure", default="top1")
    t.add_argument("--title")
    t.set_defaults(func=cmd_table)
    f1 = sub.add_parser("figure1", help="top-1 against GFLOPs: the paper's Table 1 and our Table 1 rows")
    f1.add_argument("--csv", required=True, help="results/table1.csv")
    f1.set_defaults(func=cmd_figure1)
    f5 = sub.add_parser("figure5", help="interactive points as boxes on validation clips")
    f5.add_argument("--run", required=True, help="a run directory of an ILA row")
    f5.add_argument("--clips", type=int, default=3)
    f5.add_argument("--blocks", type=int, nargs="+", help="blocks to draw (default: the first and the last)")
    f5.set_defaults(func=cmd_figure5)
    hm = sub.add_parser("heatmaps", help="feature heatmaps of several runs over one clip (Figures 6 and 7)")
    hm.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR")
    hm.add_argument("--depth", choices=["middle", "last"], default="last")
    hm.set_defaults(func=cmd_heatmaps)
    cu = sub.add_parser("curves", help="training loss and learning rate of every row of a table")
    cu.add_argument("--table", required=True)
    cu.add_argument("--runs", required=True)
    cu.add_argument("--seeds", type=int, nargs="+", default=[0])
    cu.add_argument("--mlflow-uri")
    cu.add_argument("--dataset-kind", choices=WORKFLOW_DATASET_KINDS,
                    help="plot the rows run on this kind of dataset, as the table rule does (default: every row)")
    cu.set_defaults(func=cmd_curves)
    for sp in (t, f1, f5, hm, cu):
        sp.add_argument("--out", required=True, help="output path without suffix (.png and .pdf are written)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.func(args)


if __name__ == "__main__":
    main()
