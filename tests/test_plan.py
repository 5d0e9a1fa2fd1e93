"""ila.plan in process: a profile validated with its defaults filled, one job per (table, row, seed) with what its
rules read, the run layout, and what the tables and figures wait for. (The Snakefile reads this plan; the dry runs
in test_workflow.py and the other workflow tests check that it does.)"""

from pathlib import Path

import pytest

from ila.ablations import load_table
from ila.config import PretrainConfig, resolve_run_config
from ila.plan import Plan, PlanError, load_profile, validate_profile

CONFIGS = Path(__file__).resolve().parents[1] / "workflow" / "config"


@pytest.fixture(scope="module")
def plan():
    return Plan(validate_profile(load_profile()))


def test_the_profile_gets_the_schemas_and_the_librarys_defaults():
    config = validate_profile({"profile": "mine", "dataset": {"kind": "lists", "root": "x"}})
    assert config["seeds"] == [0] and config["results_dir"] == "results" and config["rehearsal"]["skip"] == {}
    defaults = PretrainConfig()
    assert (config["pretrain"]["steps"], config["pretrain"]["batch_size"], config["pretrain"]["pool_size"]) == (
        defaults.steps, defaults.batch_size, defaults.pool_size)
    assert config["probe"]["dataset"] == {"kind": "synth", "synth_preset": "transfer", "root": "data/ssv2"}


@pytest.mark.parametrize("bad,message", [
    ({"dataset": {"kind": "k400"}}, "config error: dataset.kind: expected one of ['synth', 'kinetics400', 'ssv2', "
                                    "'lists'], got 'k400'"),
    ({"pretrain": {"steps": 0}}, "config error: pretrain.steps: 0 is less than the minimum of 1"),
    ({"tables": ["table4", "table99"]}, "config error: tables: no ablation file for ['table99']"),
])  # fmt: skip
def test_a_bad_profile_is_named(bad, message):
    with pytest.raises(PlanError) as err:
        Plan(validate_profile({**load_profile(), **bad}))
    assert str(err.value).startswith(message), str(err.value)


def test_one_job_per_row_and_seed_with_its_run_directory_and_config(plan):
    ila = load_table("table4").row("ila")
    for seed in plan.seeds:
        job = plan.job("table4", "ila", seed)
        assert job.run_dir == f"results/table4/ila/seed{seed}"
        assert job.config["output_dir"] == job.run_dir and job.config["seed"] == seed
        assert job.config["tracking"]["run_name"] == f"ila-seed{seed}"
        assert job.weights == "resources/pretrained/ILA-mini-32.pt" and job.probe_source is None
        assert job.dataset["train"] == "data/synth-default/train.txt"
        assert resolve_run_config(job.config).model.variant == ila.variant
    # Shared rows are their source table's jobs (trained once); every job's config was checked when planned.
    assert not [key for key in plan.jobs if key[0] == "table5" and key[1] == "ila"]
    assert len(plan.jobs) == len(plan.seeds) * len({(t, r) for t, r, _ in plan.jobs})


def test_a_probe_job_reads_the_probe_set_and_waits_for_its_source(plan):
    row = next(r for r in plan.rows("table12") if r.probe)
    job = plan.job("table12", row.id, plan.seeds[-1])
    assert job.probe_source == f"results/{row.probe}/seed{plan.seeds[-1]}"
    assert job.config["model"]["probe_from"] == f"{job.probe_source}/checkpoints/last.pt"
    assert job.dataset["train"] == "data/synth-transfer/train.txt"


def test_the_cost_is_counted_at_the_papers_configuration(plan):
    assert plan.job("table4", "ila", 0).cost_at == "ViT-B-32:8:text"
    own = [job for job in plan.jobs.values() if job.row.backbone and "backbone" not in job.row.paper_config]
    assert own and all(job.cost_at is None for job in own)  # a mini-CLIP of its own: no paper configuration


def test_a_table_waits_for_every_rows_metrics_and_its_own_measures(plan):
    inputs = plan.table_inputs("table5")
    assert "results/table4/ila/seed0/metrics.json" in inputs  # shared from Table 4
    assert "results/table4/ila/seed0/emd.json" in inputs  # Table 5 is about the EMD
    assert plan.latency_input("table9") == ["results/latency/table9.json"] and plan.latency_input("table4") == []
    assert "results/figures/figure6.png" in plan.figures() and "results/figures/curves_table4.png" in plan.figures()


def test_a_paper_profile_fetches_weights_from_a_configured_mirror(tmp_path):
    mirror = tmp_path / "mirror.yaml"
    mirror.write_text("weights: {ViT-B-32-quickgelu-openai: {url: 'http://lab/b32.pt', sha256: 0123abcd}}\n")
    plan = Plan(validate_profile(load_profile(CONFIGS / "paper-k400.yaml", mirror)))
    assert plan.weights_source_args("ViT-B-32-quickgelu", "openai") == "--url http://lab/b32.pt --sha256 0123abcd"
    assert plan.weights_source_args("ViT-B-16-quickgelu", "openai") == ""
    assert plan.job("table4", "ila", 0).weights == "resources/weights/ViT-B-32-quickgelu-openai.pt"
