"""The paper's figures (1, 5, 6, 7) and the suite's own (each table as a plot, training curves), PNG + PDF.

Every function takes what it draws from (tables' CSVs, trained runs, MLflow) and writes ``<out>.png`` and
``<out>.pdf``; ``analysis/make_figures.py`` and the workflow's ``figures`` rule call them. What each figure shows and
which choices are ours is in its docstring and in the caption the workflow's report shows (``workflow/report/``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ila.errors import ConfigError
from ila.models.operators.ila import MASK_FLAT

PAPER_TABLE1 = Path(__file__).resolve().parents[1] / "ablations" / "table1.yaml"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out: str | Path) -> list[Path]:
    """``out`` without suffix -> ``out.png`` (150 dpi) and ``out.pdf``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    _plt().close(fig)
    return paths


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open() as fh:
        return list(csv.DictReader(fh))


def _num(v: str | None) -> float | None:
    return None if v in (None, "") else float(v)


# --------------------------------------------------------------------------- tables as plots


def table_plot(csv_path: str | Path, out: str | Path, measure: str = "top1", title: str | None = None) -> list[Path]:
    """One table as a plot: our mean per row with its 95% interval over seeds, the paper's value as a marker on a
    second axis (the paper's scale is its dataset's, Kinetics-400 or Table 13's benchmark [72], ours the profile's:
    compare orders, not levels). Rows the paper cites from other papers are not plotted."""
    rows = [r for r in read_csv(csv_path) if r.get("source", "ours") == "ours"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    mean = np.array([_num(r[measure]) or np.nan for r in rows])
    low = np.array([_num(r.get(f"{measure}_ci_low")) or np.nan for r in rows])
    high = np.array([_num(r.get(f"{measure}_ci_high")) or np.nan for r in rows])
    err = np.vstack([mean - np.where(np.isnan(low), mean, low), np.where(np.isnan(high), mean, high) - mean])
    ax.errorbar(mean, y, xerr=err, fmt="o", color="C0", capsize=3, label="ours (mean, 95% CI over seeds)")
    ax.set_yticks(y, [r["row"] for r in rows], fontsize=8)
    ax.set_xlabel(f"ours: {measure}")
    paper = [_num(r.get(f"paper_{measure}")) for r in rows]
    if any(p is not None for p in paper):
        twin = ax.twiny()
        pts = [(p, yy) for p, yy in zip(paper, y, strict=False) if p is not None]
        twin.plot([p for p, _ in pts], [yy for _, yy in pts], "D", color="C3", label="the paper's value")
        twin.set_xlabel(f"paper: {measure}", color="C3")
        twin.tick_params(axis="x", colors="C3")
        fig.legend(loc="lower right", fontsize=7)
    else:
        ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title or Path(csv_path).stem, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, out)


# --------------------------------------------------------------------------- Figure 1


def views_count(views: str | int | None) -> int | None:
    """``"4x3"`` (clips x crops) -> 12."""
    if views in (None, ""):
        return None
    if isinstance(views, int):
        return views
    clips, crops = str(views).replace("×", "x").split("x")
    return int(clips) * int(crops)


def paper_table1_points(ablation_file: str | Path = PAPER_TABLE1) -> list[dict]:
    """The paper's Table 1 as points (name, GFLOPs x views, top-1, is ILA): the cited rows and ILA's own, as the
    ablation file records them (the paper's numbers, none of them ours)."""
    from ila.ablations import load_table

    table = load_table(ablation_file)
    points = []
    for row in table.rows:
        p = row.paper
        views = views_count(p.get("views"))
        if p.get("gflops") is None or p.get("top1") is None or views is None:
            continue
        if row.cited:
            name = row.name
        else:
            paper = table.paper_model_config(row)
            name = f"ILA-{paper['backbone']} {paper['num_frames']}f"
        points.append({"name": name, "x": p["gflops"] * views, "top1": p["top1"], "ila": not row.cited})
    return points


def figure1(table1_csv: str | Path, out: str | Path, paper_table1: str | Path = PAPER_TABLE1) -> list[Path]:
    """Left: the paper's Table 1 (top-1 against GFLOPs per view x views, log x), ILA highlighted, the paper's
    numbers. Right: our Table 1 rows, top-1 (mean, 95% CI) against GFLOPs per view x views as each run was built and
    tested (on the embedded default: ILA and the Baseline at two frame counts and two widths)."""
    rows = [r for r in read_csv(table1_csv) if r.get("source", "ours") == "ours"]
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for m in paper_table1_points(paper_table1):
        colour = "C3" if m["ila"] else "C7"
        left.scatter(m["x"], m["top1"], s=50 if m["ila"] else 25, color=colour, zorder=3,
                     marker="*" if m["ila"] else "o")
        left.annotate(m["name"], (m["x"], m["top1"]), fontsize=6, xytext=(3, 2), textcoords="offset points",
                      color=colour if m["ila"] else "0.3")
    left.set_xscale("log")
    left.set_xlabel("GFLOPs x views (paper's Table 1)")
    left.set_ylabel("Kinetics-400 top-1 (%)")
    left.set_title("Paper's numbers (Table 1); ILA highlighted", fontsize=9)
    left.grid(alpha=0.3)
    for r in rows:
        g, t, views = _num(r["gflops_run_config"]), _num(r["top1"]), views_count(r.get("views"))
        if g is None or t is None or views is None:
            continue
        lo, hi = _num(r.get("top1_ci_low")), _num(r.get("top1_ci_high"))
        is_ila = r["variant"] == "ila"
        err = None if lo is None else [[t - lo], [hi - t]]
        right.errorbar(g * views, t, yerr=err, fmt="*" if is_ila else "o", color="C3" if is_ila else "C0",
                       capsize=3, markersize=10 if is_ila else 5)
        right.annotate(r["row"], (g * views, t), fontsize=6, xytext=(3, 2), textcoords="offset points")
    right.set_xscale("log")
    right.set_xlabel("GFLOPs per view x views, as each run was built and tested (counted by the suite)")
    right.set_ylabel("top-1 (%), mean and 95% CI")
    right.set_title("Ours (Table 1 rows of this profile)", fontsize=9)
    right.grid(alpha=0.3)
    fig.subplots_adjust(wspace=0.28)
    return save(fig, out)


# --------------------------------------------------------------------------- Figure 5


def _frame_cell(ax, image: np.ndarray, row_label: str, row: int, frame: int):
    """One frame of a frames-in-a-row figure: the image, the row's label on the first frame, titles on the top row."""
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if frame == 0:
        ax.set_ylabel(row_label, fontsize=7)
    if row == 0:
        ax.set_title(f"frame {frame}", fontsize=7)
    return ax


def point_box(point: tuple[float, float], grid: tuple[int, int], patch: int,
              flat: float = MASK_FLAT) -> tuple[float, float, float, float]:
    """The full-weight region of an interactive point's mask as a pixel box ``(x0, y0, x1, y1)``.

    Points live on the token grid's [-1, 1] coordinates (``torch.linspace(-1, 1, size)`` = the token centres); the
    mask is 1 within ``flat`` of the point on each axis. Grid coordinate g maps linearly to the pixel position of
    the token centres: ``(g + 1) / 2 * (size - 1) * patch + patch / 2``."""
    h, w = grid

    def px(g: float, size: int) -> float:
        return (g + 1) / 2 * (size - 1) * patch + patch / 2

    x, y = point
    return px(x - flat, w), px(y - flat, h), px(x + flat, w), px(y + flat, h)


def capture_points(model, video: torch.Tensor, blocks: list[int]) -> dict[int, torch.Tensor]:
    """Interactive points ``[B, T-1, 4]`` ((x, y) in the pair's first frame, then in its second) predicted in each
    of ``blocks`` for adjacent pairs, by hooking the blocks' alignment modules during one eval forward."""
    vit = model.video_vit
    found, hooks = {}, []
    for i in blocks:
        op = vit.operator_at(i)
        if op is None or not hasattr(op, "align"):
            raise ConfigError(f"block {i} has no alignment module (operator: {type(op).__name__}); pick blocks where "
                              "the row's model has ILA's operator (make_figures.py figure5 --blocks)")
        hooks.append(op.align.register_forward_hook(
            lambda m, inp, out, i=i: found.__setitem__(i, out[0].detach().float())))
    try:
        with torch.no_grad():
            model(video)
    finally:
        for h in hooks:
            h.remove()
    b = video.shape[0]
    return {i: p.reshape(b, -1, 4) for i, p in found.items()}


def figure5(model, clips: torch.Tensor, frames_rgb: np.ndarray, blocks: list[int], grid: tuple[int, int],
            patch: int, out: str | Path, title: str) -> list[Path]:
    """Interactive points as boxes on the frames: one row per (clip, block), the clip's frames in a row. Solid box:
    the point predicted for the frame as the first frame of the pair (t, t+1); dashed: as the second frame of
    (t-1, t). ``frames_rgb``: ``[clips, T, H, W, 3]`` in [0, 1] (what the model saw, before normalisation)."""
    points = capture_points(model, clips, blocks)
    n, t = frames_rgb.shape[:2]
    plt = _plt()
    from matplotlib.patches import Rectangle

    rows = [(c, blk) for c in range(n) for blk in blocks]
    fig, axes = plt.subplots(len(rows), t, figsize=(1.3 * t, 1.4 * len(rows)), squeeze=False)
    for r, (c, blk) in enumerate(rows):
        pts = points[blk][c].cpu().numpy()  # [T-1, 4]
        for f in range(t):
            ax = _frame_cell(axes[r, f], frames_rgb[c, f], f"clip {c}\nblock {blk}", r, f)
            marks = []
            if f < t - 1:
                marks.append((pts[f, :2], "-"))
            if f > 0:
                marks.append((pts[f - 1, 2:], "--"))
            for (x, y), style in marks:
                # point_box is in continuous pixel coordinates (pixel i spans [i, i + 1]); imshow centres pixel i
                # at i, so the whole box shifts by half a pixel (its size stays the flat region's).
                x0, y0, x1, y1 = point_box((float(x), float(y)), grid, patch)
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.2,
                                       ls=style, ec="yellow" if style == "-" else "cyan"))
    fig.suptitle(title, fontsize=9)
    return save(fig, out)


# --------------------------------------------------------------------------- Figures 6 and 7


def token_norm_maps(model, video: torch.Tensor, block: int, grid: tuple[int, int]) -> np.ndarray:
    """``[T, H, W]`` heatmap of one clip: the L2 norm of each patch token after ``block`` (our choice: the paper
    does not say how its heatmaps are computed), scaled to [0, 1] over the clip so frames compare."""
    with torch.no_grad():
        feats = model.video_vit.forward_intermediates(video[None], [block], stop_early=True)
    tokens = feats.intermediates[block][0]  # [T, 1+HW, W]
    norms = tokens[:, 1:].float().norm(dim=-1).reshape(-1, *grid).cpu().numpy()
    lo, hi = norms.min(), norms.max()
    return (norms - lo) / max(hi - lo, 1e-12)


def heatmap_figure(models: dict[str, Any], video: torch.Tensor, frames_rgb: np.ndarray, block_of: dict[str, int],
                   grid: tuple[int, int], out: str | Path, title: str) -> list[Path]:
    """One row per model: the clip's frames with the token-norm heatmap of ``block_of[name]`` over them."""
    t = frames_rgb.shape[0]
    plt = _plt()
    fig, axes = plt.subplots(len(models), t, figsize=(1.3 * t, 1.45 * len(models)), squeeze=False)
    size = frames_rgb.shape[1:3]
    for r, (name, model) in enumerate(models.items()):
        maps = token_norm_maps(model, video, block_of[name], grid)
        for f in range(t):
            ax = _frame_cell(axes[r, f], frames_rgb[f], f"{name}\nblock {block_of[name]}", r, f)
            ax.imshow(maps[f], cmap="inferno", alpha=0.55, extent=(-0.5, size[1] - 0.5, size[0] - 0.5, -0.5),
                      vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    return save(fig, out)


# --------------------------------------------------------------------------- training curves


def training_curves(runs: dict[str, list[Path]], out: str | Path, uri: str | None = None,
                    keys: tuple[str, ...] = ("train/loss", "train/lr")) -> list[Path]:
    """Loss and learning rate of every row (one line per seed) from the runs' MLflow histories (each run directory
    names its run in ``mlflow_run_id``)."""
    from mlflow.tracking import MlflowClient

    from ila.engine.tracking import tracking_uri

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    for k, (row, dirs) in enumerate(runs.items()):
        for d in dirs:
            id_file = Path(d) / "mlflow_run_id"
            if not id_file.is_file():
                raise FileNotFoundError(f"{id_file}: the run has no MLflow run (tracking was off?)")
            run_id = id_file.read_text().strip()
            for ax, key in zip(axes[0], keys, strict=False):
                hist = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
                ax.plot([m.step for m in hist], [m.value for m in hist], color=f"C{k % 10}", lw=0.8, alpha=0.8,
                        label=row if d == dirs[0] else None)
    for ax, key in zip(axes[0], keys, strict=False):
        ax.set_xlabel("step")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, ncol=2)
    return save(fig, out)
