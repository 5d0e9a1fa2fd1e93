"""Every ablation file and every row in it: loads, resolves to a valid run config, and builds a model that trains
(one forward/backward on the mini-CLIP) and that has the row's settings, as timm tests every registered model."""

from dataclasses import fields
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ila.ablations import ABLATIONS_DIR, AblationError, deep_merge, load_table, row_run_config, table_files
from ila.config import ModelConfig, resolve_run_config
from ila.data.kinds import check_dataset_kind
from ila.errors import ConfigError
from ila.models import create_model, resolve_model_config
from ila.models.aggregators import MultiframeIntegration
from ila.models.operators.ila import WindowAttentionInteraction
from ila.models.video_clip import VideoSpecificPrompt
from ila.operator_options import ILAOptions

TABLES = [p.stem for p in table_files()]
ROWS = [(t, r.id) for t in TABLES for r in load_table(t).available_rows()]
MINI_BASE = {"data": {"num_frames": 4}, "model": {"backbone": "ILA-mini-32", "head": "linear"}}
SMALL_OPERATORS = {"ila": {"hidden": 16}, "ila_released": {"hidden": 16}}
ILA_DEFAULTS = {f.name: f.default for f in fields(ILAOptions)}


def row_asks_for(row) -> dict:
    """The model a row asks for, from the ablation file itself: the row's own `model:` (and `overrides: model:`) over
    its variant's registered defaults and the tests' base (mini backbone, linear head unless the row sets one); not
    through row_run_config, so a setting that it or the config resolution dropped is still expected."""
    variant = resolve_model_config({"variant": row.variant})
    own = deep_merge(row.model, row.overrides.get("model", {}))
    base = MINI_BASE["model"]
    want = {f.name: own.get(f.name, base.get(f.name, getattr(variant, f.name))) for f in fields(ModelConfig)}
    want["operator_args"] = {**variant.operator_args, **own.get("operator_args", {})}
    # The model takes the clips' frame count: the row's own (Table 1's 16 frames) or the tests' base.
    want["num_frames"] = row.overrides.get("data", {}).get("num_frames", MINI_BASE["data"]["num_frames"])
    return want


def mini_row(row):
    """The row on the tests' mini-CLIP: its own backbone and input size are left out (they are the paper's, built on
    the meta device in tests/test_scale_tables.py); its frames and everything else kept."""
    data = {k: v for k, v in row.overrides.get("data", {}).items() if k != "input_size"}
    return type(row)(row.id, row.name, row.model, row.paper, {**row.overrides, "data": data})


def adjacent_or_anchor_pairs(strategy: str, t: int) -> list[tuple[int, int]]:
    """The frame pairs the paper's strategies align (§3.2, Table 6): (t, t+1), or every other frame with the first
    or the middle frame."""
    if strategy == "adjacent":
        return [(i, i + 1) for i in range(t - 1)]
    anchor = {"first": 0, "middle": t // 2}[strategy]
    return [(i, anchor) for i in range(t) if i != anchor]


def check_row_reaches_model(row, cfg, model) -> None:
    """The row's distinguishing settings in the built model (and, for the loss weight, in the run config the trainer
    reads): operator and its blocks, ILA's strategy, MI token, alignment operator and loss features, time embedding,
    head, prompt generator, MIT, frozen towers, alignment-loss weight."""
    want = row_asks_for(row)
    vit = model.video_vit
    depth = vit.depth
    t = want["num_frames"]
    assert vit.num_frames == t
    if want["operator"] is None:
        assert len(vit.operators) == 0, f"{row.id}: operators {list(vit.operators)} in a model without one"
    else:
        if want["block_group"] is not None:
            k, n = want["block_group"]
            blocks = list(range((k - 1) * depth // n, k * depth // n))
        else:
            blocks = list(range(depth)) if want["blocks"] is None else sorted(want["blocks"])
        assert sorted(int(i) for i in vit.operators) == blocks, (row.id, list(vit.operators), blocks)
        assert {op.registry_name for op in vit.operators.values()} == {want["operator"]}
    if want["operator"] == "ila":
        args = {**ILA_DEFAULTS, **SMALL_OPERATORS["ila"], **want["operator_args"]}
        x = torch.randn(2 * t, 1 + vit.grid[0] * vit.grid[1], vit.backbone.width)
        for op in vit.operators.values():
            pairs = list(zip(op.pair_first.tolist(), op.pair_second.tolist(), strict=True))
            assert pairs == adjacent_or_anchor_pairs(args["strategy"], t), (row.id, pairs)
            # The MI token's form, by what the operator returns: one token, none (added in place), or every token.
            with torch.no_grad():
                out = op.eval()(x, t)
            extra = None if out.extra is None else out.extra.shape[1]
            assert (op.mi_token, extra) == (args["mi_token"], {"pool_concat": 1, "add": None,
                                                              "concat_all": x.shape[1] - 1}[args["mi_token"]])
            assert torch.equal(out.x, x) != (args["mi_token"] == "add")
            window = any(isinstance(m, WindowAttentionInteraction) for m in op.align.modules())
            assert window == (args["operator"] == "window_attention"), row.id
            assert op.align_features == args["align_features"], row.id
    assert (vit.time_embed is not None) == bool(want["time_embed"]), row.id
    if vit.time_embed is not None:
        assert tuple(vit.time_embed.shape) == (t, vit.backbone.width)
    assert model.aggregator.registry_name == want["aggregator"], row.id
    assert isinstance(model.aggregator, MultiframeIntegration) == (want["aggregator"] == "mit"), row.id
    assert model.head_type == want["head"] and (model.classifier is not None) == (want["head"] == "linear"), row.id
    if model.classifier is not None:
        assert model.classifier.out_features == len(model.class_names)
    prompt = want["head"] == "text" and want["prompt_generator"]
    assert isinstance(model.prompt, VideoSpecificPrompt) == prompt and (model.prompt is None) != prompt, row.id
    visual = [p.requires_grad for p in model.clip.visual.parameters()]
    assert visual and all(r != want["freeze_visual"] for r in visual), row.id
    # The loss weight is the trainer's (ila.engine.train: ce + align_loss_weight * aux_loss), read from the run config.
    assert cfg.model.align_loss_weight == want["align_loss_weight"], row.id


def test_every_table_has_a_valid_reference_and_unique_rows():
    assert "table4" in TABLES and "diagnostics" in TABLES
    for name in TABLES:
        table = load_table(name)
        assert table.table == name, f"{name}.yaml: `table:` must match the file name"
        ids = [r.id for r in table.rows]
        assert len(ids) == len(set(ids))
        assert table.reference_row() in table.rows


def test_every_row_is_a_model_at_its_paper_configuration():
    """What model_costs.py counts (the row at the paper's backbone, frames and head) is a valid model config for
    every row the paper has a configuration for: EVL, say, keeps its linear head in every table that shares it."""
    from ila.config import resolve_model_config

    for name in TABLES:
        table = load_table(name)
        for row in table.available_rows():
            if row.datasets != ["synth"]:
                resolve_model_config(table.paper_model_config(row), f"{name}.yaml row {row.id!r}")


@pytest.mark.parametrize("table,row_id", ROWS, ids=[f"{t}-{r}" for t, r in ROWS])
def test_every_row_builds_and_trains(table, row_id):
    spec = load_table(table)
    row = spec.row(row_id)
    cfg = resolve_run_config(row_run_config(MINI_BASE, spec, mini_row(row), SMALL_OPERATORS, seed=3))
    assert cfg.seed == 3 and cfg.tracking.run_name == f"{row_id}-seed3" and cfg.tracking.tags["row"] == row_id
    torch.manual_seed(0)
    model = create_model(cfg.model, ["a", "b", "c"]).train()
    t = cfg.data.num_frames
    out = model(torch.randn(2, t, 3, 32, 32))
    loss = F.cross_entropy(out.logits, torch.tensor([0, 2])) + cfg.model.align_loss_weight * out.aux_loss
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None for p in model.param_groups()["new"])
    check_row_reaches_model(row, cfg, model)
    # The representation the head sees: the frames' mean (Eq. 8), or the registered aggregator's (MIT over the
    # frames, EVL's decoder over the last blocks).
    with torch.no_grad():
        x = torch.randn(2, t, 3, 32, 32)
        out = model.eval()(x)
        agg = model.aggregator
        features = model.video_vit(x, agg.intermediate_blocks, agg.attention_qk)
        rep = out.frames.mean(1) if cfg.model.aggregator == "mean" else agg(features)
    assert torch.allclose(out.video, rep, atol=1e-6)
    if cfg.model.operator in ("ila", "ila_released"):
        assert out.aux_loss > 0  # so that the loss weight changes the training loss


# Rows told apart by their model settings; a row on a backbone of its own (Tables 1, 2, 10) is told apart by that, which
# its run config carries (tests/test_scale_tables.py).
DISTINGUISHED = [(t, r) for t, r in ROWS if not load_table(t).row(r).shared_from and not load_table(t).row(r).backbone]


@pytest.mark.parametrize("table,row_id", DISTINGUISHED, ids=[f"{t}-{r}" for t, r in DISTINGUISHED])
def test_a_row_whose_settings_are_lost_fails_the_check(table, row_id):
    """The check above is not vacuous: the row built without its own settings (its `model:` reduced to the variant,
    or, for a row that is only a variant, another variant) fails it."""
    spec = load_table(table)
    row = spec.row(row_id)
    own = {k: v for k, v in row.model.items() if k != "variant"}
    lost = {"variant": row.variant} if own else {"variant": "ila" if row.variant != "ila" else "baseline"}
    cfg = resolve_run_config(row_run_config(MINI_BASE, spec, type(row)(row.id, row.name, lost), SMALL_OPERATORS))
    model = create_model(cfg.model, ["a", "b", "c"])
    with pytest.raises(AssertionError):
        check_row_reaches_model(row, cfg, model)


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
    # The rows' typed fields (ila.config.build), named by row and dotted key:
    ("  - {id: x, name: X, model: {variant: ila}, datasets: [k400]}\n",
     r"row 'x': datasets\[0\]: expected one of 'synth', 'kinetics400', 'ssv2', got 'k400'"),
    ("  - {id: x, name: X, model: {variant: ila}, backbone: {name: ViT-B-16, pretraining: clip}}\n",
     r"row 'x': backbone.pretraining: expected one of 'contrastive', 'supervised', got 'clip'"),
    ("  - {id: x, name: X, model: {variant: ila}, backbone: {tag: openai}}\n", r"row 'x': backbone.name: missing"),
    ("  - {id: x, name: X, model: {variant: ila}, paper_config: {frames: 8}}\n",
     r"row 'x': paper_config.frames: unknown key; expected one of \['backbone', 'head', 'image_size', 'num_frames'\]"),
    ("  - {id: x, name: X, model: {variant: ila}, modle: {}}\n", r"rows\[0\]: unknown keys \['modle'\]"),
    # What each kind of row may set: its own fields, not its source's.
    ("  - {id: x, name: X, cited: '[1]', model: {variant: ila}}\n",
     r"rows\[0\]: a cited row .* may only set \['cited', 'id', 'label', 'name', 'paper'\], not \['model'\]"),
    ("  - {id: ila, probe: table4/ila, overrides: {}}\n", r"a probe row .* not \['overrides'\]"),
])  # fmt: skip
def test_bad_shared_rows_and_references_are_named(tmp_path, body, match):
    for name in ("table4",):
        (tmp_path / f"{name}.yaml").write_text((ABLATIONS_DIR / f"{name}.yaml").read_text())
    path = tmp_path / "probe.yaml"
    path.write_text("table: probe\ntitle: probe\nrows:\n" + body)
    with pytest.raises(AblationError, match=match):
        load_table(path)
    assert Path(path).is_file()


def test_the_workflow_refuses_a_dataset_kind_it_cannot_run_on():
    """The workflow's dataset.kind: a kind a row may name under `datasets:`, or the user's own lists."""
    assert check_dataset_kind("lists") == "lists" and check_dataset_kind("ssv2") == "ssv2"
    expected = r"^dataset.kind: expected one of \['synth', 'kinetics400', 'ssv2', 'lists'\], got 'k400'$"
    with pytest.raises(ConfigError, match=expected):
        check_dataset_kind("k400")
