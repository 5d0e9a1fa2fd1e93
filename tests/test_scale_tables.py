"""Tables 1, 2, 3 and 10: rows with their own backbone, frames, input size and test views. The paper profiles plan each
table's own rows with every backbone's weights fetched once, and each row's run config says what the paper ran; the
embedded default plans its analogues (a second mini-CLIP width, a supervised pretraining)."""

import re
from functools import cache
from pathlib import Path

import pytest
import yaml
from workflow_runner import snakemake

from ila.ablations import load_table
from ila.config import resolve_run_config
from ila.plan import Plan, PlanError, load_profile, validate_profile

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "workflow" / "config"

# table, profile -> {row: (backbone, weights file, frames, input size, clips x crops, head)}


def openai(backbone: str, frames: int, head: str, size: int = 224) -> tuple:
    """A paper row on OpenAI's CLIP weights, fetched to the suite's path for them, tested with 4x3 views."""
    return (backbone, f"resources/weights/{backbone}-openai.pt", frames, size, (4, 3), head)


PLANS = {
    ("table1", "paper-k400"): {
        "ila": openai("ViT-B-32-quickgelu", 8, "text"),
        "ila_16f": openai("ViT-B-32-quickgelu", 16, "text"),
        "ila_b16_8f": openai("ViT-B-16-quickgelu", 8, "text"),
        "ila_b16_16f": openai("ViT-B-16-quickgelu", 16, "text"),
        "ila_l14_8f": openai("ViT-L-14-quickgelu", 8, "text"),
        "ila_l14_336_16f": openai("ViT-L-14-336-quickgelu", 16, "text", size=336),
    },
    ("table2", "paper-ssv2"): {
        "ila_b16_8f": openai("ViT-B-16-quickgelu", 8, "linear"),
        "ila_b16_16f": openai("ViT-B-16-quickgelu", 16, "linear"),
        "ila_l14_8f": openai("ViT-L-14-quickgelu", 8, "linear"),
        "ila_l14_336_16f": openai("ViT-L-14-336-quickgelu", 16, "linear", size=336),
    },
    ("table10", "paper-k400"): {
        "ila_in21k": ("ViT-B-16-in21k", "resources/weights/ViT-B-16-in21k-augreg_in21k.pt", 32, 224, (4, 3),
                      "linear"),
    },
    ("table3", "paper-k400"): {
        "evl_b16": openai("ViT-B-16-quickgelu", 8, "linear"),
        "evl_ila_b16": openai("ViT-B-16-quickgelu", 8, "linear"),
        "timesformer_in21k": ("ViT-B-16-in21k", "resources/weights/ViT-B-16-in21k-orig_in21k_ft_in1k.pt", 8, 224,
                              (4, 3), "linear"),
        "timesformer_ila_in21k": ("ViT-B-16-in21k", "resources/weights/ViT-B-16-in21k-orig_in21k_ft_in1k.pt", 8,
                                  224, (4, 3), "linear"),
    },
    ("table3", "default"): {
        "evl": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 8, 32, (2, 1), "linear"),
        "evl_ila": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 8, 32, (2, 1), "linear"),
        "timesformer": ("ILA-mini-32", "resources/pretrained/ILA-mini-32-supervised.pt", 8, 32, (2, 1), "linear"),
        "timesformer_ila": ("ILA-mini-32", "resources/pretrained/ILA-mini-32-supervised.pt", 8, 32, (2, 1),
                            "linear"),
    },
    ("table1", "default"): {
        "baseline": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 8, 32, (2, 1), "linear"),
        "ila": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 8, 32, (2, 1), "linear"),
        "baseline_16f": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 16, 32, (2, 1), "linear"),
        "ila_16f": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 16, 32, (2, 1), "linear"),
        "baseline_w64": ("ILA-mini-64", "resources/pretrained/ILA-mini-64.pt", 8, 32, (2, 1), "linear"),
        "ila_w64": ("ILA-mini-64", "resources/pretrained/ILA-mini-64.pt", 8, 32, (2, 1), "linear"),
        "baseline_w64_16f": ("ILA-mini-64", "resources/pretrained/ILA-mini-64.pt", 16, 32, (2, 1), "linear"),
        "ila_w64_16f": ("ILA-mini-64", "resources/pretrained/ILA-mini-64.pt", 16, 32, (2, 1), "linear"),
    },
    ("table10", "default"): {
        "baseline_supervised": ("ILA-mini-32", "resources/pretrained/ILA-mini-32-supervised.pt", 8, 32, (2, 1),
                                "linear"),
        "ila_supervised": ("ILA-mini-32", "resources/pretrained/ILA-mini-32-supervised.pt", 8, 32, (2, 1), "linear"),
        "baseline": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 8, 32, (2, 1), "linear"),
        "ila": ("ILA-mini-32", "resources/pretrained/ILA-mini-32.pt", 8, 32, (2, 1), "linear"),
    },
}


@cache
def _plan(profile: str) -> Plan:
    files = [] if profile == "default" else [CONFIGS / f"{profile}.yaml"]
    return Plan(validate_profile(load_profile(*files)))


@pytest.mark.parametrize("table,profile", list(PLANS))
def test_each_row_runs_at_its_own_configuration(table, profile):
    """Exactly the table's own rows for the profile's dataset are trained, each from its weights file (made by a
    rule: pretrained or fetched), and each row's run config says what the paper ran."""
    expected, plan = PLANS[table, profile], _plan(profile)
    jobs = {row.id: plan.job(row.run_table or table, row.id, 0) for row in plan.rows(table)}
    assert set(jobs) == set(expected)
    for row, (backbone, weights_file, frames, size, (clips, crops), head) in expected.items():
        cfg, job = jobs[row].config, jobs[row]
        assert job.weights == weights_file and cfg["model"]["pretrained"] == weights_file, row
        assert cfg["model"]["backbone"] == backbone, row
        assert cfg["data"]["num_frames"] == frames and cfg["data"].get("input_size", size) == size, row
        assert (cfg["data"]["test_clips"], cfg["data"]["test_crops"]) == (clips, crops), row
        assert resolve_run_config(cfg).model.head == head, row  # the row's, or its variant's (EVL: linear)


@pytest.mark.workflow
def test_the_dry_run_makes_each_weight_file_once_and_writes_the_run_configs(tmp_path):
    """End to end for one table: the workflow trains the plan's rows, builds each weight file with one job, and
    writes each run config as the plan has it."""
    table, profile = "table3", "paper-k400"
    config = ["--configfile", str(CONFIGS / f"{profile}.yaml")]
    dry = snakemake("-n", f"results/{table}.csv", *config, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    out = " ".join((dry.stdout + dry.stderr).split())
    assert set(re.findall(r"results/\w+/(\w+)/seed0/train\.done", out)) == set(PLANS[table, profile])
    weights = {w for _, w, *_ in PLANS[table, profile].values()}
    assert f"fetch_clip_weights {len(weights)}" in out and all(f"output: {w}" in out for w in weights)
    jobs = [_plan(profile).job(table, row, 0) for row in PLANS[table, profile]]
    res = snakemake("--cores", "1", *[f"{job.run_dir}/run.yaml" for job in jobs], *config, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for job in jobs:
        assert yaml.safe_load((tmp_path / job.run_dir / "run.yaml").read_text()) == job.config


@pytest.mark.workflow
def test_a_table_without_rows_on_the_profiles_dataset_is_named(tmp_path):
    plan = _plan("paper-k400")
    with pytest.raises(PlanError, match="table2: no row of ablations/table2.yaml runs on dataset 'kinetics400'"):
        plan.table_inputs("table2")
    # ... and `tables` leaves it out rather than failing.
    assert "table1" in plan.profile_tables() and "table2" not in plan.profile_tables()
    res = snakemake("-n", "results/table2.csv", "--configfile", str(CONFIGS / "paper-k400.yaml"), cwd=tmp_path)
    assert res.returncode != 0
    assert "table2: no row of ablations/table2.yaml runs on dataset 'kinetics400'" in res.stdout + res.stderr


OWN_BACKBONE_ROWS = [(t, r.id) for t in ("table1", "table2", "table3", "table10")
                     for r in load_table(t).available_rows() if r.backbone and "tag" in r.backbone]


@pytest.mark.model
@pytest.mark.parametrize("table,row_id", OWN_BACKBONE_ROWS, ids=[f"{t}-{r}" for t, r in OWN_BACKBONE_ROWS])
def test_a_paper_rows_own_backbone_builds_at_its_frames_and_size(table, row_id):
    """Each paper row's model as its run config asks for it (backbone, frames, input size), built on the meta
    device: one forward of a clip of its size; its cost is what model_costs.py prints."""
    import torch

    from ila.ablations import row_run_config
    from ila.models.factory import create_model

    spec = load_table(table)
    row = spec.row(row_id)
    base = {"model": {"backbone": row.backbone["name"], "head": "linear"}}
    cfg = resolve_run_config(row_run_config(base, spec, row))
    model = create_model(cfg.model, ["a", "b"], device="meta")
    size = cfg.data.input_size
    assert size == (336 if "336" in row.backbone["name"] else 224)
    out = model(torch.empty(1, cfg.data.num_frames, 3, size, size, device="meta"))
    assert tuple(out.logits.shape) == (1, 2) and tuple(out.frames.shape[:2]) == (1, cfg.data.num_frames)


# The paper's batch for both datasets (appendix, Table 14): 256 clips per optimiser step.
PAPER_BATCH = 256


@pytest.mark.parametrize("profile", ["paper-k400", "paper-ssv2"])
def test_every_paper_row_trains_at_the_papers_batch(profile):
    """Per-device batch x accumulation x ranks (torchrun's, gpus_per_job) is the paper's 256 for every job a paper
    profile plans, overrides and probe settings included (paper-ssv2 once trained at 32: no accumulation set)."""
    plan = _plan(profile)
    ranks = max(1, plan.config["gpus_per_job"])
    for job in plan.jobs.values():
        run = resolve_run_config(job.config)
        assert run.data.batch_size * run.train.accum_steps * ranks == PAPER_BATCH, (profile, job.table, job.row.id)
    assert len(plan.jobs) >= 5
