"""Figures: the geometry of Figure 5's boxes against the masks they stand for, and every plot on small inputs."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from ila import figures
from ila.models.operators.ila import interactive_masks

REPO = Path(__file__).resolve().parents[1]


def load_make_figures():
    """analysis/make_figures.py, the script the workflow's figure rules run (not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location("make_figures", REPO / "analysis" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("grid,patch", [((4, 4), 8), ((7, 7), 32)])
def test_a_box_is_the_masks_full_weight_region(grid, patch):
    """A token whose mask weight is 1 has its centre inside the point's box; a token with less, outside."""
    points = torch.rand(64, 2, generator=torch.Generator().manual_seed(0)) * 1.5 - 0.75
    masks = interactive_masks(points, grid)  # [N, H, W]
    h, w = grid
    cy, cx = np.meshgrid((np.arange(h) + 0.5) * patch, (np.arange(w) + 0.5) * patch, indexing="ij")
    for p, m in zip(points.tolist(), masks.numpy(), strict=False):
        x0, y0, x1, y1 = figures.point_box(tuple(p), grid, patch)
        inside = (cx >= x0 - 1e-6) & (cx <= x1 + 1e-6) & (cy >= y0 - 1e-6) & (cy <= y1 + 1e-6)
        assert np.array_equal(inside, m >= 1 - 1e-6), (p, m)
    # The box's size is the flat region's: 2 x 0.25 of the [-1, 1] axis, in token-centre pixels.
    x0, _, x1, _ = figures.point_box((0.0, 0.0), grid, patch)
    assert x1 - x0 == pytest.approx(0.5 / 2 * (w - 1) * patch)


def _table_csv(path):
    rows = [{"id": "a", "row": "A", "source": "ours", "variant": "baseline", "top1": "40", "top1_ci_low": "38",
             "top1_ci_high": "42", "paper_top1": "79.8", "gflops_paper_config": "38.5", "gflops_run_config": "0.5",
             "views": "2x1"},
            {"id": "b", "row": "B", "source": "ours", "variant": "ila", "top1": "45", "top1_ci_low": "",
             "top1_ci_high": "", "paper_top1": "", "gflops_paper_config": "44.2", "gflops_run_config": "0.6",
             "views": "2x1"},
            {"id": "c", "row": "C", "source": "cited [1]", "variant": "", "top1": "", "top1_ci_low": "",
             "top1_ci_high": "", "paper_top1": "80", "gflops_paper_config": "", "gflops_run_config": "",
             "views": ""}]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _errorbar_points(container):
    """An errorbar container's points and its bars' ends: ``(x, y, [(x0, y0, x1, y1), ...])``."""
    data_line, (bars,) = container.lines[0], container.lines[2]
    ends = [tuple(float(v) for v in np.asarray(s).ravel()) for s in bars.get_segments()]
    return [float(v) for v in data_line.get_xdata()], [float(v) for v in data_line.get_ydata()], ends


def check_table_plot(fig, rows: list[dict[str, str]], measure: str) -> None:
    """A table plot shows each row's mean at its label with the 95% interval as the bar (none: a zero-length bar),
    and the paper's value, where there is one, on the twin axis at the same row."""
    ax = fig.axes[0]
    n = len(rows)
    labels = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    assert labels == {r["row"]: n - 1 - i for i, r in enumerate(rows)}
    xs, ys, bars = _errorbar_points(ax.containers[0])
    mean = [float(r[measure]) for r in rows]
    assert xs == pytest.approx(mean) and ys == [n - 1 - i for i in range(n)]
    for r, m, y, bar in zip(rows, mean, ys, bars, strict=True):
        lo = float(r.get(f"{measure}_ci_low") or m)
        hi = float(r.get(f"{measure}_ci_high") or m)
        assert bar == pytest.approx((lo, y, hi, y)), r["row"]
    paper = [(float(r[f"paper_{measure}"]), n - 1 - i) for i, r in enumerate(rows) if r.get(f"paper_{measure}")]
    twins = [a for a in fig.axes[1:] if a.lines]
    if paper:
        [twin] = twins
        got = [(float(x), float(y)) for x, y in zip(twin.lines[0].get_xdata(), twin.lines[0].get_ydata(), strict=True)]
        assert np.allclose(got, paper) and len(got) == len(paper)
        assert twin.get_xlabel() == f"paper: {measure}"
    else:
        assert not twins
    assert ax.get_xlabel() == f"ours: {measure}"


def test_table_plot_shows_the_tables_values(tmp_path, drawn):
    table = _table_csv(tmp_path / "t.csv")
    with table.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] == "ours"]  # a cited row is the paper's, not plotted
    figures.table_plot(table, tmp_path / "t", title="T")
    check_table_plot(drawn[-1], rows, "top1")
    assert drawn[-1].axes[0].get_title() == "T"
    # Another measure is read from its own columns (Table 5's EMD), and no paper axis without paper values.
    for r, emd in zip(rows, ("0.31", "0.12"), strict=True):
        r.update(emd=emd, emd_ci_low="", emd_ci_high="", paper_emd="")
    rows[0].update(emd_ci_low="0.25", emd_ci_high="0.4")
    with (tmp_path / "e.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figures.table_plot(tmp_path / "e.csv", tmp_path / "e", measure="emd")
    check_table_plot(drawn[-1], rows, "emd")


def test_figure1_plots_the_papers_table1_and_our_rows(tmp_path, drawn):
    from ila.ablations import load_table

    table = _table_csv(tmp_path / "t.csv")
    figures.figure1(table, tmp_path / "f1")
    left, right = drawn[-1].axes
    # Left: the ablation file's Table 1, cited rows and ILA's own, with the paper's GFLOPs, views and top-1.
    spec = load_table(figures.PAPER_TABLE1)
    paper = [r for r in spec.rows if r.paper.get("gflops") is not None and r.paper.get("top1") is not None
             and r.paper.get("views")]
    assert len(paper) >= 20 and sum(not r.cited for r in paper) == 6
    points = [tuple(float(v) for v in c.get_offsets()[0]) for c in left.collections]
    expected = [(r.paper["gflops"] * np.prod([int(v) for v in r.paper["views"].split("x")]), r.paper["top1"])
                for r in paper]
    assert np.allclose(points, expected)
    labels = [t.get_text() for t in left.texts]
    assert labels[: sum(r.cited is None for r in paper)] == ["ILA-ViT-B-32 8f", "ILA-ViT-B-32 16f", "ILA-ViT-B-16 8f",
                                                             "ILA-ViT-B-16 16f", "ILA-ViT-L-14 8f",
                                                             "ILA-ViT-L-14-336 16f"]
    ila = [i for i, r in enumerate(paper) if not r.cited]
    assert all(left.collections[i].get_sizes()[0] == 50 for i in ila)
    assert all(c.get_sizes()[0] == 25 for i, c in enumerate(left.collections) if i not in ila)
    # Ours: (GFLOPs of the run x its views, top-1) per row with the interval as the bar; the ILA row highlighted.
    assert [t.get_text() for t in right.texts] == ["A", "B"]
    a_x, a_y, a_bars = _errorbar_points(right.containers[0])
    assert (a_x, a_y) == ([2 * 0.5], [40.0]) and a_bars == [(1.0, 38.0, 1.0, 42.0)]
    b = right.containers[1]
    assert (list(b.lines[0].get_xdata()), list(b.lines[0].get_ydata())) == ([2 * 0.6], [45.0])
    assert b.lines[0].get_marker() == "*" and right.containers[0].lines[0].get_marker() == "o"


def test_points_and_heatmaps_of_a_model():
    from ila.models import create_model

    torch.manual_seed(0)
    model = create_model({"variant": "ila", "backbone": "ILA-mini-32", "num_frames": 4, "head": "linear"},
                         ["a", "b"]).eval()
    video = torch.randn(2, 4, 3, 32, 32)
    points = figures.capture_points(model, video, [0, 3])
    assert set(points) == {0, 3} and points[0].shape == (2, 3, 4)
    # The point head starts at zero: every point at the centre.
    assert torch.allclose(points[3], torch.zeros_like(points[3]))
    maps = figures.token_norm_maps(model, video[0], 1, (4, 4))
    assert maps.shape == (4, 4, 4) and maps.min() == 0 and maps.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="no alignment module"):
        figures.capture_points(create_model({"variant": "baseline", "backbone": "ILA-mini-32", "num_frames": 4},
                                            ["a", "b"]), video, [0])


# --------------------------------------------------------------------------- the figures' content, on real runs


@pytest.fixture
def drawn(monkeypatch):
    """Every Figure a figure function saves, kept open for inspection (``figures.save`` still writes the files)."""
    figs, real = [], figures.save

    def keep(fig, out):
        figs.append(fig)
        paths = real(fig, out)
        assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)
        return paths

    monkeypatch.setattr(figures, "save", keep)
    return figs


def _independent_points(model, video: torch.Tensor, block: int) -> np.ndarray:
    """The alignment module of ``block`` applied by hand to the adjacent pairs of the tokens entering the block:
    ``[B, T-1, 4]`` (not through ``figures.capture_points``)."""
    from ila.models.operators.ila import to_maps

    op = model.video_vit.operator_at(block)
    seen = {}

    def keep(module, inputs, output):  # returns None: the operator's output is left as it is
        seen["x"] = inputs[0].detach()

    handle = op.register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(video)
    finally:
        handle.remove()
    b, t = video.shape[:2]
    x = seen["x"]
    patches = x.reshape(b, t, x.shape[1], x.shape[2])[:, :, 1:]
    grid = model.video_vit.grid
    with torch.no_grad():
        points, _ = op.align(to_maps(patches[:, :-1], grid).flatten(0, 1), to_maps(patches[:, 1:], grid).flatten(0, 1))
    return points.reshape(b, t - 1, 4).numpy()


def _check_boxes(fig, model, clips, rgb, blocks, patch):
    """Each frame's boxes: solid = its point as the first frame of (t, t+1), dashed = as the second of (t-1, t), each
    the mask's flat region (0.25 either side of the point on the [-1, 1] token grid) centred on the point's position
    in the image (imshow coordinates: pixel i is centred at i)."""
    from matplotlib.patches import Rectangle

    from ila.models.operators.ila import MASK_FLAT

    n, t = rgb.shape[:2]
    h, w = model.video_vit.grid
    axes = np.array(fig.axes).reshape(n * len(blocks), t)
    expected = {blk: _independent_points(model, clips, blk) for blk in blocks}
    moved = []
    for r, (c, blk) in enumerate((c, blk) for c in range(n) for blk in blocks):
        pts = expected[blk][c]
        for f in range(t):
            ax = axes[r, f]
            assert np.array_equal(ax.images[0].get_array(), rgb[c, f])
            want = ([("-", pts[f, :2])] if f < t - 1 else []) + ([("--", pts[f - 1, 2:])] if f > 0 else [])
            boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
            assert [b.get_linestyle() for b in boxes] == [s for s, _ in want], (r, f)
            for box, (_, (x, y)) in zip(boxes, want, strict=True):
                cx = (x + 1) / 2 * (w - 1) * patch + (patch - 1) / 2
                cy = (y + 1) / 2 * (h - 1) * patch + (patch - 1) / 2
                assert box.get_x() + box.get_width() / 2 == pytest.approx(cx, abs=1e-4), (r, f, x)
                assert box.get_y() + box.get_height() / 2 == pytest.approx(cy, abs=1e-4), (r, f, y)
                assert box.get_width() == pytest.approx(MASK_FLAT * (w - 1) * patch, abs=1e-4)
                assert box.get_height() == pytest.approx(MASK_FLAT * (h - 1) * patch, abs=1e-4)
                moved.append(abs(x) + abs(y))
    return moved


def test_figure5_boxes_are_the_points_the_alignment_module_predicts(trained_runs, drawn, tmp_path):
    """`make_figures.py figure5` as the workflow runs it, on a trained ILA run; then the same figure with the point
    heads perturbed (a few training steps barely move the zero-initialised points off the centre), so a figure that
    drew every box at the centre, or the pair's other point, would fail."""
    make_figures = load_make_figures()
    from ila.config import load_run_config
    from ila.engine.runs import load_trained, to_rgb

    run = trained_runs["ila"]
    make_figures.main(["figure5", "--run", str(run), "--clips", "2", "--out", str(tmp_path / "figure5_ila")])
    assert (tmp_path / "figure5_ila.png").is_file() and (tmp_path / "figure5_ila.pdf").is_file()
    [fig] = drawn
    cfg = load_run_config(run / "run.yaml")
    model, val = load_trained(cfg)
    clips, _ = make_figures._temporal_clips(val, 2)
    rgb = np.stack([to_rgb(c) for c in clips])
    depth = model.video_vit.depth
    patch = cfg.data.input_size // model.video_vit.grid[0]
    _check_boxes(fig, model, clips, rgb, [0, depth - 1], patch)
    assert "interactive points" in fig._suptitle.get_text()

    torch.manual_seed(1)
    with torch.no_grad():
        for op in model.video_vit.operators.values():
            for p in op.align.point_head.parameters():
                p.add_(torch.randn_like(p) * 0.5)
    figures.figure5(model, clips, rgb, [1, 2], model.video_vit.grid, patch, tmp_path / "perturbed", "perturbed")
    moved = _check_boxes(drawn[-1], model, clips, rgb, [1, 2], patch)
    assert min(moved) > 0.05 and len(set(np.round(moved, 4))) >= 10  # off the centre, and not all the same


def _block_output_norms(model, video: torch.Tensor, block: int) -> np.ndarray:
    """Per-token L2 norm ``[T, H, W]`` of the patch tokens leaving ``block``, from hooks on the block's own
    submodules (its second LayerNorm's input plus its MLP branch), scaled to [0, 1] over the clip."""
    blk = model.video_vit.visual.transformer.resblocks[block]
    seen = {}
    hooks = [blk.ln_2.register_forward_hook(lambda m, inp, out: seen.__setitem__("mid", inp[0].detach())),
             blk.ls_2.register_forward_hook(lambda m, inp, out: seen.__setitem__("mlp", out.detach()))]
    try:
        with torch.no_grad():
            model(video[None])
    finally:
        for hk in hooks:
            hk.remove()
    tokens = (seen["mid"] + seen["mlp"])[:, 1:]
    norms = tokens.norm(dim=-1).reshape(video.shape[0], *model.video_vit.grid).numpy()
    return (norms - norms.min()) / (norms.max() - norms.min())


@pytest.mark.parametrize("depth", ["middle", "last"])
def test_heatmaps_are_the_token_norms_of_the_chosen_block(trained_runs, drawn, tmp_path, depth):
    """Figures 6 and 7 as the workflow draws them (three runs, one clip): every heatmap cell is its token's norm after
    the block the figure names (the middle or the last), the frames underneath are the clip."""
    make_figures = load_make_figures()
    from ila.config import load_run_config
    from ila.engine.runs import load_trained, to_rgb

    names = {"Divided ST": "divided_st", "ATA": "ata", "ILA": "ila"}
    make_figures.main(["heatmaps", *[a for n, row in names.items() for a in ("--run", f"{n}={trained_runs[row]}")],
                       "--depth", depth, "--out", str(tmp_path / "figure")])
    [fig] = drawn
    models = {n: load_trained(load_run_config(trained_runs[row] / "run.yaml")) for n, row in names.items()}
    _, val = models["ILA"]
    clip = make_figures._temporal_clips(val, 1)[0][0]
    rgb = to_rgb(clip)
    t, size = clip.shape[0], rgb.shape[1:3]
    axes = np.array(fig.axes).reshape(len(names), t)
    for r, (name, (model, _)) in enumerate(models.items()):
        n_blocks = model.video_vit.depth
        block = n_blocks - 1 if depth == "last" else n_blocks // 2 - 1
        want = _block_output_norms(model, clip, block)
        assert axes[r, 0].get_ylabel() == f"{name}\nblock {block}"
        for f in range(t):
            frame, heat = axes[r, f].images
            assert np.array_equal(frame.get_array(), rgb[f])
            np.testing.assert_allclose(np.asarray(heat.get_array()), want[f], atol=1e-5)
            assert heat.get_extent() == [-0.5, size[1] - 0.5, size[0] - 0.5, -0.5]
    # The three runs' maps differ (a figure that drew one model's map three times would not).
    maps = [np.asarray(axes[r, 0].images[1].get_array()) for r in range(len(names))]
    assert not np.allclose(maps[0], maps[2])


def test_training_curves_are_the_logged_history(trained_runs, drawn, tmp_path):
    """One line per run and key, its points the MLflow history of the run, which is what train.log printed."""
    import re

    runs = {"ILA": [trained_runs["ila"]], "ATA": [trained_runs["ata"]]}
    uri = f"sqlite:///{trained_runs['ila'].parents[2] / 'mlflow.db'}"
    figures.training_curves(runs, tmp_path / "curves", uri)
    [fig] = drawn
    for ax, key in zip(fig.axes, ("train/loss", "train/lr"), strict=True):
        assert ax.get_title() == key
        assert [ln.get_label() for ln in ax.lines] == ["ILA", "ATA"]
        for line, (_, [run]) in zip(ax.lines, runs.items(), strict=True):
            logged = [re.search(rf"step (\d+)/3 .*{key}=(\S+)", ln) for ln in (run / "train.log").read_text()
                      .splitlines()]
            steps, values = zip(*[(int(m[1]), float(m[2])) for m in logged if m], strict=True)
            assert list(line.get_xdata()) == list(steps) == [1, 2, 3]
            np.testing.assert_allclose(line.get_ydata(), values, rtol=1e-3)
    # The two rows' losses are not the same curve.
    loss = fig.axes[0].lines
    assert not np.allclose(loss[0].get_ydata(), loss[1].get_ydata())


@pytest.mark.parametrize("kind, rows", [("synth", ["Baseline (SSv2 recipe)", "ILA (SSv2 recipe)"]),
                                        ("ssv2", ["ILA-ViT-B/16, 8 frames", "ILA-ViT-B/16, 16 frames",
                                                  "ILA-ViT-L/14, 8 frames", "ILA-ViT-L/14@336px, 16 frames"])])
def test_training_curves_plot_only_the_rows_the_profiles_dataset_runs(monkeypatch, tmp_path, kind, rows):
    """Table 2's curves on the embedded benchmark plot its two synth rows, not its SSv2 rows (which have no run
    directory there: the figure failed on them), and the reverse on SSv2."""
    make_figures = load_make_figures()
    plotted = {}
    monkeypatch.setattr(make_figures.figures, "training_curves",
                        lambda runs, out, uri=None: plotted.update(runs))
    make_figures.main(["curves", "--table", str(REPO / "ablations" / "table2.yaml"), "--runs", str(tmp_path),
                       "--seeds", "0", "1", "--dataset-kind", kind, "--out", str(tmp_path / "curves")])
    assert list(plotted) == rows
    assert all(len(dirs) == 2 for dirs in plotted.values())
