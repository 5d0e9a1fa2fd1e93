"""Figures: the geometry of Figure 5's boxes against the masks they stand for, and every plot on small inputs."""

import csv

import numpy as np
import pytest
import torch

from ila import figures
from ila.models.operators.ila import interactive_masks


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
    rows = [{"id": "a", "row": "A", "variant": "baseline", "top1": "40", "top1_ci_low": "38", "top1_ci_high": "42",
             "paper_top1": "79.8", "gflops_paper_config": "38.5"},
            {"id": "b", "row": "B", "variant": "ila", "top1": "45", "top1_ci_low": "", "top1_ci_high": "",
             "paper_top1": "", "gflops_paper_config": "44.2"}]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_table_plot_and_figure1_write_png_and_pdf(tmp_path):
    table = _table_csv(tmp_path / "t.csv")
    for paths in (figures.table_plot(table, tmp_path / "t"), figures.figure1(table, tmp_path / "f1")):
        assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


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
    assert model.video_vit.kept == {} and model.video_vit.keep_blocks == set()
    with pytest.raises(ValueError, match="no alignment module"):
        figures.capture_points(create_model({"variant": "baseline", "backbone": "ILA-mini-32", "num_frames": 4},
                                            ["a", "b"]), video, [0])
