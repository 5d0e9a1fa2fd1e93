"""Every ablation file and every row in it: loads, resolves to a valid run config, and builds a model that trains
(one forward/backward on the mini-CLIP), as timm tests every registered model."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ila.ablations import ABLATIONS_DIR, AblationError, load_table, row_run_config
from ila.config import resolve_run_config
from ila.models import create_model

TABLES = sorted(p.stem for p in ABLATIONS_DIR.glob("*.yaml"))
ROWS = [(t, r.id) for t in TABLES for r in load_table(t).available_rows()]
MINI_BASE = {"model": {"backbone": "ILA-mini-32", "num_frames": 4, "head": "linear"}}


def test_every_table_has_a_valid_reference_and_unique_rows():
    assert "table4" in TABLES and "diagnostics" in TABLES
    for name in TABLES:
        table = load_table(name)
        assert table.table == name, f"{name}.yaml: `table:` must match the file name"
        ids = [r.id for r in table.rows]
        assert len(ids) == len(set(ids))
        assert table.reference_row() in table.rows


@pytest.mark.parametrize("table,row_id", ROWS, ids=[f"{t}-{r}" for t, r in ROWS])
def test_every_row_builds_and_trains(table, row_id):
    spec = load_table(table)
    row = spec.row(row_id)
    small = {"ila": {"hidden": 16}, "ila_released": {"hidden": 16}}
    cfg = resolve_run_config(row_run_config(MINI_BASE, spec, row, small, seed=3))
    assert cfg.seed == 3 and cfg.tracking.run_name == f"{row_id}-seed3" and cfg.tracking.tags["row"] == row_id
    torch.manual_seed(0)
    model = create_model(cfg.model, ["a", "b", "c"]).train()
    out = model(torch.randn(2, 4, 3, 32, 32))
    loss = F.cross_entropy(out.logits, torch.tensor([0, 2])) + cfg.model.align_loss_weight * out.aux_loss
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None for p in model.param_groups()["new"])


def test_shared_rows_are_the_source_tables_runs():
    diag, table4 = load_table("diagnostics"), load_table("table4")
    shared = [r for r in diag.rows if r.shared_from]
    assert {r.id for r in shared} >= {"ila", "baseline", "ila_released"}
    for row in shared:
        src = table4.row(row.id)
        assert row.run_table == "table4" and row.model == src.model and row.overrides == src.overrides
    assert all(r.run_table is None for r in table4.rows)


@pytest.mark.parametrize("body,match", [
    ("  - {id: ila, from: table4, model: {variant: baseline}}\n", "may only set"),
    ("  - {id: nope, from: table4}\n", "has no row 'nope'"),
    ("  - {id: ila, from: nowhere}\n", "ablation file not found"),
    ("  - {id: x, name: X, model: {variant: ila}}\nreference: y\n", "reference 'y' is not a row id"),
])  # fmt: skip
def test_bad_shared_rows_and_references_are_named(tmp_path, body, match):
    for name in ("table4",):
        (tmp_path / f"{name}.yaml").write_text((ABLATIONS_DIR / f"{name}.yaml").read_text())
    path = tmp_path / "probe.yaml"
    path.write_text("table: probe\ntitle: probe\nrows:\n" + body)
    with pytest.raises(AblationError, match=match):
        load_table(path)
    assert Path(path).is_file()
