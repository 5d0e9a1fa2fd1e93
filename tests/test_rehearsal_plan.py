"""The rehearsal's plan and summary, without training: what the overlay keeps and shrinks, where its outputs go, the
rows it skips by name, and the summary it prints from the jobs' logs and benchmark records."""

import os
import time
from pathlib import Path

import pytest
import yaml
from workflow_runner import snakemake

from ila.plan import Plan, PlanError, load_profile, validate_profile
from ila.rehearsal import job_kind, job_records, rehearsal_summary

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "workflow" / "config"
PAPER_K400 = str(CONFIGS / "paper-k400.yaml")
REHEARSAL = [str(CONFIGS / "rehearsal.yaml"), str(CONFIGS / "rehearsal-cpu.yaml")]


@pytest.mark.parametrize("name,kind", [
    ("table4/ila/seed0.train", "train"), ("table12/ila_probe_b16/seed3.evaluate", "evaluate"),
    ("data/k400-download-replacement", "data/k400-download"), ("data/preprocess-s256-val", "data/preprocess"),
    ("data/ssv2-extract", "data/ssv2-extract"), ("data/lists", "data/lists"), ("figures/curves_table4", "figures"),
    ("weights/ViT-B-32-quickgelu-openai", "weights"), ("mlflow/table4", "mlflow"),
])  # fmt: skip
def test_job_kind_from_the_log_name(name, kind):
    assert job_kind(name) == kind


def _job(results: Path, name: str, seconds: float | None, rss: float = 512.0, age: float = 0.0) -> None:
    """A job's log and, for a job that succeeded (seconds given), its Snakemake benchmark record."""
    log = results / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("...")
    paths = [log]
    if seconds is not None:
        bench = results / "benchmarks" / f"{name}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                         f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t0\t0\n")
        paths.append(bench)
    for path in paths:
        os.utime(path, (time.time() - age, time.time() - age))


def test_summary_counts_jobs_run_failed_and_skipped_with_time_and_memory_per_kind(tmp_path):
    results = tmp_path / "rehearsal"
    start = time.time() - 100
    _job(results, "table4/ila/seed0.train", 30.0, rss=4096)
    _job(results, "table4/baseline/seed0.train", 10.0, rss=2048)
    _job(results, "table4/ila/seed0.evaluate", None)  # failed: a log, no benchmark record
    _job(results, "data/lists", 2.0)
    _job(results, "table8/ila/seed0.train", 99.0, age=3600)  # an earlier invocation's: not this one's
    records = job_records(results, start)
    assert [(r.name, r.ok) for r in records] == [("data/lists", True), ("table4/baseline/seed0.train", True),
                                                 ("table4/ila/seed0.evaluate", False), ("table4/ila/seed0.train", True)]
    lines = rehearsal_summary(results, start, {"table1/ila_l14_336_16f": "too big"})
    assert lines[0] == f"ILA rehearsal ({results}/): 3 jobs ran, 1 failed, 1 skipped"
    train = next(line for line in lines if line.startswith("  train "))
    assert train.split() == ["train", "2", "20", "s", "30", "s", "4.0", "GB"]
    assert f"  failed: table4/ila/seed0.evaluate (log: {results}/logs/table4/ila/seed0.evaluate.log)" in lines
    assert lines[-1] == "  skipped: table1/ila_l14_336_16f: too big"


def _dry_run(tmp_path, *targets, overlay=None):
    files = [PAPER_K400, *REHEARSAL] + ([overlay] if overlay else [])
    return snakemake("-n", "-p", "--cores", "2", *targets, "--configfile", *files, cwd=tmp_path)


@pytest.mark.workflow
@pytest.mark.slow
def test_the_rehearsal_plans_the_paper_rows_under_its_own_directory_and_skips_by_name(tmp_path):
    """Table 1 under paper-k400 + rehearsal + rehearsal-cpu: every row but the one skipped, in rehearsal/, the table
    told about the skipped row; the paper's settings kept in the run configs (checked when executed, in
    test_rehearsal.py)."""
    res = _dry_run(tmp_path, "rehearsal/table1.csv")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "rehearsal/table1/ila_b16_8f/seed0/train.done" in out and "rehearsal/table1/ila_l14_8f/seed0" in out
    assert "ila_l14_336_16f/seed0" not in out and "results/" not in out.replace("rehearsal/", "")
    assert "--skip 'ila_l14_336_16f=ViT-L/14@336, 16 frames" in out and "--tag rehearsal=true" in out
    assert "--mlflow-uri sqlite:///rehearsal/mlflow.db" in out


def _plan(*overlays, targets=()) -> Plan:
    return Plan(validate_profile(load_profile(PAPER_K400, *REHEARSAL, *overlays)), targets=targets)


def test_the_rehearsal_plan_skips_by_name_and_keeps_its_outputs_apart():
    plan = _plan()
    assert plan.results_dir == "rehearsal" and plan.rehearsal
    outputs = plan.table_inputs("table1")
    assert "rehearsal/table1/ila_b16_8f/seed0/metrics.json" in outputs
    assert all(path.startswith("rehearsal/") for path in outputs) and not any("ila_l14_336_16f" in p for p in outputs)
    assert plan.skipped_rows("table1") == {"ila_l14_336_16f": plan.config["rehearsal"]["skip"][
        "table1/ila_l14_336_16f"]}
    assert all(job.config["tracking"]["tags"]["rehearsal"] == "true" for job in plan.jobs.values())
    assert plan.table_mlflow_args() == "--mlflow-uri sqlite:///rehearsal/mlflow.db --tag rehearsal=true"


@pytest.mark.parametrize("key,message", [
    ("table1/ila_l14_336_16F", "names no row"),
    ("table1/ila", "is table4's run, shared: skip table4/ila"),
    ("table4/baseline", "cannot be left out: table4's reference row"),
    ("table4/ata", "cannot be left out: figures 5-7 look inside it"),
])  # fmt: skip
def test_a_skip_the_plan_cannot_take_fails_before_any_job(tmp_path, key, message):
    overlay = tmp_path / "skip.yaml"
    overlay.write_text(yaml.safe_dump({"rehearsal": {"skip": {key: "why"}}}))
    with pytest.raises(PlanError, match=f"rehearsal.skip: {key!r} {message}"):
        _plan(overlay)


def test_a_target_under_the_other_results_directory_says_where_to_look():
    with pytest.raises(PlanError) as err:
        _plan(targets=["results/table8.csv"])
    assert str(err.value) == ("target results/table8.csv: this invocation writes under rehearsal/, not results/ "
                              "(config results_dir); ask for rehearsal/table8.csv, or drop "
                              "workflow/config/rehearsal.yaml")
    _plan(targets=["rehearsal/table8.csv", "tables", "all"])  # its own directory and rule names pass


@pytest.mark.workflow
@pytest.mark.slow
def test_a_target_under_the_other_results_directory_stops_the_dry_run(tmp_path):
    """The Snakefile hands Snakemake's own targets to the plan."""
    res = _dry_run(tmp_path, "results/table8.csv")
    assert res.returncode != 0
    assert "target results/table8.csv: this invocation writes under rehearsal/" in res.stdout + res.stderr


@pytest.mark.workflow
@pytest.mark.slow
def test_a_failed_job_is_named_in_the_summary(tmp_path):
    """Snakemake's onerror: the summary counts the failed job and names its log (here weights whose sha256 is not
    the mirror's, refused in seconds)."""
    from loopback import LoopbackServer

    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "ViT-B-32.pt").write_bytes(b"not the weights the config expects")
    with LoopbackServer(tmp_path / "mirror") as server:
        overlay = tmp_path / "mirror.yaml"
        overlay.write_text(yaml.safe_dump({"weights": {"ViT-B-32-quickgelu-openai": {
            "url": f"{server.url}/ViT-B-32.pt", "sha256": "0123456789abcdef"}}}))
        work = tmp_path / "work"
        work.mkdir()
        res = snakemake("--cores", "1", "resources/weights/ViT-B-32-quickgelu-openai.pt", "--configfile", PAPER_K400,
                        *REHEARSAL, str(overlay), cwd=work)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "ILA rehearsal (rehearsal/): 0 jobs ran, 1 failed, 2 skipped" in out
    assert ("  failed: weights/ViT-B-32-quickgelu-openai (log: rehearsal/logs/weights/ViT-B-32-quickgelu-openai.log)"
            in out)
    assert "does not match the expected 0123456789abcdef" in (work / "rehearsal" / "logs" / "weights" /
                                                              "ViT-B-32-quickgelu-openai.log").read_text()
