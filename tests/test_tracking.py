"""MLflow tracking: concurrent jobs against a fresh store, where artifacts go, what a row's run records (its
environment included)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from ila.cli import main
from ila.engine.evaluate import evaluate
from ila.engine.provenance import ENVIRONMENT_FILE
from ila.engine.runs import run_dir_of
from ila.engine.tracking import EXPERIMENT_KIND, KEY_COLUMNS, VIEW_KEY, init_store, log_table, ui_urls
from ila.engine.train import train


@pytest.mark.slow
@pytest.mark.workflow  # 16 `ila train` processes
def test_sixteen_concurrent_jobs_into_a_fresh_store(tiny_dataset, tmp_path):
    """Users start jobs by hand: 16 `ila train` processes at once against a store nobody created."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    procs = []
    for i in range(16):
        cmd = [sys.executable, "-m", "ila.cli", "train", f"data.root={tiny_dataset}", "data.input_size=32",
               "data.hflip=remap", "data.batch_size=8", "model.variant=baseline", "model.backbone=ILA-mini-32",
               "train.steps=1", "train.log_every=1", "train.threads=1", f"tracking.uri={uri}",
               "tracking.experiment=concurrent", f"output_dir={tmp_path / f'run{i}'}", "--skip-eval"]
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    failed = [(i, out[-2000:]) for i, (p, out) in enumerate(zip(procs, outputs, strict=False)) if p.returncode != 0]
    assert not failed, failed[0]
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 16 and {r.info.run_name for r in runs} == {f"run{i}" for i in range(16)}
    assert all(r.info.status == "FINISHED" and "train/loss" in r.data.metrics for r in runs)


def test_new_experiments_keep_artifacts_beside_the_store_and_open_on_the_runs(tmp_path, monkeypatch):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    store = tmp_path / "store"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    exp_id = init_store(uri, ["table4"])["table4"]
    assert init_store(uri, ["table4"])["table4"] == exp_id  # idempotent
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment(exp_id)
    assert exp.artifact_location == (store / "mlruns" / "table4").as_uri()
    assert exp.tags["mlflow.experimentKind"] == EXPERIMENT_KIND["mlflow.experimentKind"]
    view = json.loads(exp.tags[f"mlflow.sharedViewState.{VIEW_KEY}"])
    assert view["selectedColumns"] == KEY_COLUMNS and view["orderByKey"] == "metrics.`eval/top1`"
    run = client.create_run(exp_id)
    (tmp_path / "note.txt").write_text("hello")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    assert (store / "mlruns" / "table4" / run.info.run_id / "artifacts" / "note.txt").is_file()
    assert list(cwd.iterdir()) == []  # nothing in the working directory


def test_a_rows_run_records_its_row_paper_numbers_cost_and_config(table4_row_config):
    """The workflow's path: train without evaluation, then `ila evaluate --cost-at` joins the same run."""
    cfg = table4_row_config("ila")
    train(cfg, run_eval=False)
    metrics = evaluate(cfg, cost_at=[("ViT-B-32", 8, "text")])
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    [run] = client.search_runs([client.get_experiment_by_name("table4").experiment_id])
    tags, m = run.data.tags, run.data.metrics
    assert run.info.run_name == "ila" and run.info.status == "FINISHED"
    assert (tags["table"], tags["row"], tags["seed"], tags["profile"]) == ("table4", "ila", "3", "test")
    assert (tags["paper.top1"], tags["paper.gflops"]) == ("81.3", "40")
    paper_cost, run_cost = metrics["cost"]["ViT-B-32@8f"], metrics["cost"]["run_config"]
    assert m["cost/at_ViT-B-32_8f/gflops"] == pytest.approx(paper_cost["gflops"])
    assert m["cost/at_ViT-B-32_8f/params_operator"] == paper_cost["params_operator"]
    assert m["cost/run_config/gflops"] == pytest.approx(run_cost["gflops"])
    assert m["cost/run_config/params_total"] == run_cost["params_total"]
    assert m["eval/top1"] == pytest.approx(metrics["top1"])
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "confusion_matrix.png"} <= names
    # what decided the digits, per command: in the run directory and as tags of the one run both joined
    recorded = json.loads((run_dir_of(cfg) / ENVIRONMENT_FILE).read_text())
    assert set(recorded) == {"train", "evaluate"}
    for command, env in recorded.items():
        assert {k.removeprefix(f"env.{command}."): v for k, v in tags.items() if k.startswith(f"env.{command}.")} == env
        assert env["version.torch"] == torch.__version__ and env["world_size"] == "1"


def test_table_files_attach_to_one_table_run_and_compare_addresses(table4_row_config, tmp_path, capsys):
    cfg = table4_row_config("baseline")
    train(cfg, run_eval=False)
    uri = cfg.tracking.uri
    csv, md = tmp_path / "table4.csv", tmp_path / "table4.md"
    csv.write_text("id,top1\nbaseline,1\n")
    md.write_text("# Table 4\n")
    first = log_table("table4", [csv, md], {"profile": "test", "dataset": "synth-tiny"}, uri)
    assert log_table("table4", [csv, md], {"profile": "test", "dataset": "synth-tiny"}, uri) == first  # reused
    client = MlflowClient(tracking_uri=uri)
    assert {a.path for a in client.list_artifacts(first)} == {"table4.csv", "table4.md"}
    assert client.get_run(first).data.tags["ila.kind"] == "table"
    urls = ui_urls("table4", uri, "http://127.0.0.1:5077")
    row_id = open(tmp_path / "table4" / "baseline" / "mlflow_run_id").read().strip()
    assert f'runs=["{row_id}"]' in urls["compare"] and first not in urls["compare"]  # rows only
    assert urls["runs"].endswith(f"/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")
    assert main(["compare", "table4", "--uri", uri, "--ui", "http://127.0.0.1:5077"]) == 0
    assert urls["compare"] in capsys.readouterr().out
    assert main(["compare", "table9", "--uri", uri]) == 2
