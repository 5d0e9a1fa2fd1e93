"""The Snakemake workflow: dry-runs of every profile, lint, and an end-to-end smoke run in a temporary directory."""

import csv
import json
import re
from pathlib import Path

import pytest
from workflow_runner import snakemake

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "workflow" / "config"


@pytest.mark.parametrize("profile", ["default", "paper-k400", "paper-ssv2", "smoke"])
def test_dry_run_lists_every_row_of_every_table(profile, tmp_path):
    """`tables` plans every row of every paper table once per seed; a row shared from another table (`from:`) is
    that table's job only, so it is trained once. Table 5 (every row shared from Table 4) adds one `ila emd` job per
    (row, seed) on Table 4's runs."""
    res = snakemake("-n", "tables", "--configfile", str(CONFIGS / f"{profile}.yaml"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    import yaml

    from ila.ablations import load_table

    profile_cfg = yaml.safe_load((CONFIGS / f"{profile}.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    seeds = profile_cfg.get("seeds", schema["properties"]["seeds"].get("default", [0]))
    tables = profile_cfg.get("tables", schema["properties"]["tables"]["default"])
    assert {"table1", "table2", "table4", "table5", "table6", "table7", "table8", "table9", "table10", "table11",
            "table13"} <= set(tables)
    # Rows run on the profile's dataset; a table with none there (Table 2 on Kinetics-400) is left out of `tables`.
    kind = profile_cfg.get("dataset", {}).get("kind", "synth")
    tables = [t for t in tables if load_table(t).available_rows(kind)]
    assert ("table2" in tables) == (kind != "kinetics400") and ("table1" in tables) == (kind != "ssv2")
    owned = set()
    for name in tables:
        assert f"results/{name}.csv" in out and f"results/{name}.md" in out
        for row in load_table(name).available_rows(kind):
            for seed in seeds:
                assert f"results/{row.run_table or name}/{row.id}/seed{seed}/train.done" in out
                if row.run_table:
                    assert f"results/{name}/{row.id}/seed{seed}" not in out, (name, row.id)
                else:
                    owned.add((name, row.id, seed))
    # One training job per owned (row, seed), none for shared rows, and Table 9's latency is measured.
    assert f"train_row {len(owned)}" in " ".join(out.split()) and "results/latency/table9.json" in out
    # Table 5: the EMD of each of its rows' runs (Table 4's), one emd_row job each, read by the table job.
    emd = [f"results/table4/{row.id}/seed{seed}/emd.json" for row in load_table("table5").available_rows(kind)
           for seed in seeds]
    assert all(row.run_table == "table4" for row in load_table("table5").available_rows())
    assert all(path in out for path in emd) and len(emd) >= 8 * len(seeds)
    assert f"emd_row {len(emd)}" in " ".join(out.split())
    assert "results/table5.csv" in out and "results/table5.md" in out
    assert "train_row" in out and "evaluate_row" in out


@pytest.mark.parametrize("profile,data_rules", [
    ("paper-k400", ["k400_download", "k400_extract", "preprocess_videos", "dataset_lists"]),
    ("paper-ssv2", ["ssv2_extract", "dataset_lists"]),
])  # fmt: skip
def test_paper_profiles_plan_data_to_tables(profile, data_rules, tmp_path):
    """`snakemake -n all` of a paper profile starts from nothing: the data's download or extraction, re-encoding
    and lists, the CLIP weights, then training, evaluation, tables and figures, in that order of dependencies.
    Figure 1 plots Table 1, whose rows are Kinetics-400's: an SSv2 profile has no Figure 1 to make."""
    res = snakemake("-n", "all", "--configfile", str(CONFIGS / f"{profile}.yaml"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    stats = out[out.index("Job stats:"):]
    for rule in [*data_rules, "fetch_clip_weights", "train_row", "evaluate_row", "table", "all"]:
        assert f"\n{rule} " in stats, rule
    assert ("\nfigure1 " in stats) == (profile == "paper-k400"), stats
    # Jobs are listed in an order that respects dependencies: the data's first job comes before any training.
    first = {rule: out.index(f"rule {rule}:") for rule in [*data_rules, "train_row", "evaluate_row", "table"]}
    assert list(first) == sorted(first, key=first.get), first
    if profile == "paper-k400":
        for split in ("train", "val", "replacement"):
            assert f"data/kinetics400/downloads/{split}.done" in out
        assert "data/kinetics400/videos_s256/train.done" in out


def test_lint_is_clean(tmp_path):
    res = snakemake("--lint", cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.parametrize("bad,message", [
    ("pretrain: {steps: -3}", "config error: pretrain.steps: -3 is less than the minimum of 1"),
    ("run: {train: {steps: -3}}", "config error: train.steps: expected a positive integer, got -3"),
    ("run: {train: {stepz: 3}}", "config error: train.stepz: unknown key"),
    ("run: {data: {hflip: sideways}}", "config error: data.hflip: expected one of"),
])  # fmt: skip
def test_bad_config_fails_before_any_job(tmp_path, bad, message):
    """A real (not dry) run: the error names the key and nothing was generated, trained or logged."""
    (tmp_path / "bad.yaml").write_text(bad + "\n")
    res = snakemake("--cores", "1", "results/table4.csv", "--configfile", str(CONFIGS / "smoke.yaml"),
                    str(tmp_path / "bad.yaml"), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and message in out, out[-3000:]
    assert "Building DAG" not in out and "rule " not in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == ["bad.yaml"]


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    res = snakemake("--cores", "2", "results/table4.csv", "--configfile", str(CONFIGS / "smoke.yaml"), cwd=tmp_path,
                    timeout=900)
    assert res.returncode == 0, res.stderr[-5000:]
    from ila.ablations import load_table

    rows = {r.id: r for r in load_table("table4").available_rows()}
    with (tmp_path / "results" / "table4.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["id"] for r in table] == list(rows)
    assert {"top1", "top1_ci_low", "top1_ci_high", "top5", "top1_temporal", "top1_static", "top1_diff_vs_ref",
            "top1_diff_p", "gflops_paper_config", "gflops_run_config", "params_m", "paper_top1", "paper_gflops",
            "profile", "dataset"} <= set(table[0])
    seeds = [0, 1]  # smoke.yaml
    for r in table:
        ms = [json.loads((tmp_path / "results" / "table4" / r["id"] / f"seed{s}" / "metrics.json").read_text())
              for s in seeds]
        assert int(r["seeds"]) == 2
        for key in ("top1", "top5", "top1_static"):
            assert float(r[key]) == pytest.approx(sum(100 * m[key] for m in ms) / 2, abs=0.006)
            assert float(r[f"{key}_ci_low"]) <= float(r[key]) <= float(r[f"{key}_ci_high"])
        assert r["top1_per_seed"] == ";".join(f"{100 * m['top1']:.2f}" for m in ms)
        assert (r["top1_diff_vs_ref"] == "") == (r["id"] == "baseline")
        assert float(r["gflops_paper_config"]) == round(ms[0]["cost"]["ViT-B-32@8f"]["gflops"], 2)
        assert r["paper_top1"] == ("" if rows[r["id"]].paper.get("top1") is None else str(rows[r["id"]].paper["top1"]))
        assert r["profile"] == "smoke" and r["dataset"] == "synth-tiny"
    md = (tmp_path / "results" / "table4.md").read_text()
    assert "Paper Top-1" in md and "## Notes" in md and "authors' released code" in md
    assert "Kendall's tau" in md and "over 2 seeds (0, 1)" in md
    # MLflow: one experiment for the table, one run per row (tagged), and the table's files on a table-level run.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("table4").experiment_id])
    row_runs = {(r.data.tags["row"], r.data.tags["seed"]): r for r in runs if r.data.tags.get("ila.kind") != "table"}
    assert set(row_runs) == {(row, str(s)) for row in rows for s in seeds}
    for (row_id, seed), run in row_runs.items():
        assert run.info.status == "FINISHED" and run.data.tags["table"] == "table4"
        assert run.info.run_name == f"{row_id}-seed{seed}" and run.data.tags["profile"] == "smoke"
        assert "eval/top1" in run.data.metrics and "cost/at_ViT-B-32_8f/gflops" in run.data.metrics
        assert run.data.tags.get("paper.top1") == (None if rows[row_id].paper.get("top1") is None
                                                  else str(rows[row_id].paper["top1"]))
    [table_run] = [r for r in runs if r.data.tags.get("ila.kind") == "table"]
    assert {a.path for a in client.list_artifacts(table_run.info.run_id)} == {"table4.csv", "table4.md"}
    again = snakemake("-n", "--cores", "2", "results/table4.csv", "--configfile", str(CONFIGS / "smoke.yaml"),
                      cwd=tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    _smoke_tables_sharing_table4(tmp_path, client)
    _smoke_claims(tmp_path, client)
    _smoke_training_curves(tmp_path)


def _smoke_training_curves(tmp_path):
    """The training-curve rule, executed on the trained runs: its shell line (the profile's dataset kind included)
    reaches make_figures.py, which reads every run's MLflow history and draws the PNG and PDF; nothing is retrained."""
    res = snakemake("--cores", "1", "-p", "results/figures/curves_table4.png", "--configfile",
                    str(CONFIGS / "smoke.yaml"), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    assert set(re.findall(r"\b(?:local)?rule (\w+):", out)) == {"training_curves"}, out[-3000:]
    assert "--dataset-kind synth" in out, out[-3000:]
    for suffix in (".png", ".pdf"):
        assert (tmp_path / "results" / "figures" / f"curves_table4{suffix}").stat().st_size > 0


def _smoke_claims(tmp_path, client):
    """The ledger alone after Tables 4, 5, 9 and 13: it judges those tables from their statistics (rewriting none,
    training nothing) and says "not run" for the others; attached to the `claims` experiment."""
    res = snakemake("--cores", "2", "results/claims.md", "--configfile", str(CONFIGS / "smoke.yaml"), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    assert set(re.findall(r"\b(?:local)?rule (\w+):", out)) == {"claims"}, out[-3000:]
    assert "Exception" not in out, out[-3000:]
    with (tmp_path / "results" / "claims.csv").open() as fh:
        lines = list(csv.DictReader(fh))
    by_table = {}
    for line in lines:
        by_table.setdefault(line["table"], set()).add(line["verdict"])
    for table in ("table4", "table5", "table9", "table13"):
        assert by_table[table] - {"not run"}, (table, by_table[table])  # judged (Table 4's X-CLIP, ...)
    assert by_table["table6"] == {"not run"} and by_table["table12"] == {"not run"}
    ila_vs_baseline = next(x for x in lines if x["claim"] == "t4-ila-above-others" and "Baseline" in x["compares"])
    t4 = {r["id"]: r for r in csv.DictReader((tmp_path / "results" / "table4.csv").open())}
    assert float(ila_vs_baseline["ours"]) == pytest.approx(float(t4["ila"]["top1_diff_vs_ref"]), abs=0.006)
    assert float(ila_vs_baseline["ours_ci_low"]) == pytest.approx(float(t4["ila"]["top1_diff_ci_low"]), abs=0.006)
    assert ila_vs_baseline["profile"] == "smoke" and ila_vs_baseline["seeds"] == "0 1"
    md = (tmp_path / "results" / "claims.md").read_text()
    assert "comparisons from" in md and "table4: smoke on synth-tiny, seeds [0, 1], commit" in md
    [run] = client.search_runs([client.get_experiment_by_name("claims").experiment_id])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"claims.csv", "claims.md"}


def _smoke_table5(tmp_path, out):
    """Table 5 on the Table 4 runs: one `ila emd` job per (row, seed), nothing trained for it; its EMD column is the
    mean over seeds of the runs' emd.json, the per-seed values listed, the paper's EMD beside them; its plot shows
    those values."""
    from test_figures import check_table_plot

    from ila import figures
    from ila.ablations import load_table

    rows = load_table("table5").available_rows()
    seeds = [0, 1]  # smoke.yaml
    assert " ".join(out.split()).count("rule emd_row:") == len(rows) * len(seeds)
    with (tmp_path / "results" / "table5.csv").open() as fh:
        t5 = list(csv.DictReader(fh))
    assert [r["id"] for r in t5] == [row.id for row in rows]
    by_id = {row.id: row for row in rows}
    for r in t5:
        emds = [json.loads((tmp_path / "results" / "table4" / r["id"] / f"seed{s}" / "emd.json").read_text())
                for s in seeds]
        values = [e["emd"] for e in emds]
        assert all(v > 0 for v in values) and all(len(e["per_video"]["emd"]) > 0 for e in emds)
        assert float(r["emd"]) == pytest.approx(sum(values) / len(values), abs=6e-5), r["id"]
        assert float(r["emd_ci_low"]) <= float(r["emd"]) <= float(r["emd_ci_high"])
        assert r["emd_per_seed"] == ";".join(f"{v:.4f}" for v in values)
        assert r["run_table"] == "table4" and int(r["seeds"]) == 2
        paper = by_id[r["id"]].paper.get("emd")
        assert r["paper_emd"] == ("" if paper is None else str(paper))
        metrics = [json.loads((tmp_path / "results" / "table4" / r["id"] / f"seed{s}" / "metrics.json").read_text())
                   for s in seeds]
        assert float(r["top1"]) == pytest.approx(sum(100 * m["top1"] for m in metrics) / 2, abs=0.006)
    assert [r["id"] for r in t5 if r["emd_diff_vs_ref"] == ""] == ["baseline"]  # the reference row
    assert "EMD" in (tmp_path / "results" / "table5.md").read_text()
    # The table as a plot (the workflow's figure_table rule) shows these numbers.
    drawn = []
    real_save = figures.save
    figures.save = lambda fig, path: drawn.append(fig) or real_save(fig, path)
    try:
        figures.table_plot(tmp_path / "results" / "table5.csv", tmp_path / "results" / "figures" / "table5", "emd")
    finally:
        figures.save = real_save
    check_table_plot(drawn[0], t5, "emd")


def _smoke_tables_sharing_table4(tmp_path, client):
    """Table 9 (two new rows, ILA shared from Table 4, a measured latency) and Table 13 (every row shared, the
    temporal score as its measure) on top of the Table 4 runs: only Table 9's two new rows and Table 3's EVL (Table
    13's EVL row) are trained."""
    res = snakemake("--cores", "2", "results/table9.csv", "results/table13.csv", "results/table5.csv", "--configfile",
                    str(CONFIGS / "smoke.yaml"), cwd=tmp_path, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    assert " ".join(out.split()).count("rule train_row:") == 6  # mi_add, mi_concat_all and EVL, 2 seeds each
    _smoke_table5(tmp_path, out)
    with (tmp_path / "results" / "table9.csv").open() as fh:
        t9 = {r["id"]: r for r in csv.DictReader(fh)}
    assert list(t9) == ["mi_add", "mi_concat_all", "ila"] and t9["ila"]["run_table"] == "table4"
    assert t9["ila"]["latency_ratio_vs_ref"] == "1.0" and float(t9["mi_add"]["latency_ms"]) > 0
    latency = json.loads((tmp_path / "results" / "latency" / "table9.json").read_text())
    assert set(latency["ms_per_clip"]) == {"mi_add", "mi_concat_all", "ila"}
    assert latency["config"].startswith("embedded")
    md9 = (tmp_path / "results" / "table9.md").read_text()
    assert "Latency x Pooling & concatenation (ILA)" in md9 and "Paper latency x" in md9
    with (tmp_path / "results" / "table13.csv").open() as fh:
        t13 = {r["id"]: r for r in csv.DictReader(fh)}
    from ila.ablations import load_table

    assert set(t13) == {r.id for r in load_table("table13").available_rows("synth")}
    assert t13["evl"]["run_table"] == "table3"  # Table 3's EVL runs, trained once
    ila = json.loads((tmp_path / "results/table4/ila/seed0/metrics.json").read_text())
    assert float(t13["ila"]["top1_temporal"]) == pytest.approx(
        100 * (ila["top1_temporal"] + json.loads((tmp_path / "results/table4/ila/seed1/metrics.json").read_text())[
            "top1_temporal"]) / 2, abs=0.006)
    assert "temporal_score_diff_vs_ref" in t13["xclip"]
    # MLflow: Table 9's own runs in its experiment; the shared ILA runs stay in Table 4's, tagged as used by Table 9,
    # and Table 9's table-level run links every run it read.
    t9_exp = client.get_experiment_by_name("table9").experiment_id
    own = {r.data.tags["row"] for r in client.search_runs([t9_exp]) if r.data.tags.get("ila.kind") != "table"}
    assert own == {"mi_add", "mi_concat_all"}
    t4_exp = client.get_experiment_by_name("table4").experiment_id
    shared = client.search_runs([t4_exp], "tags.`ila.shared_in.table9` = 'true'")
    assert sorted(r.info.run_name for r in shared) == ["ila-seed0", "ila-seed1"]
    [table_run] = client.search_runs([t9_exp], "tags.`ila.kind` = 'table'")
    assert table_run.data.tags["run.ila-seed0"] == next(r.info.run_id for r in shared if r.info.run_name == "ila-seed0")
    # `ila compare table9` compares all six, across the two experiments.
    from ila.engine.tracking import row_runs, ui_urls

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert sorted(r.info.run_name for r in row_runs("table9", uri)) == sorted(
        f"{row}-seed{s}" for row in ("mi_add", "mi_concat_all", "ila") for s in (0, 1))
    assert f'"{t4_exp}"' in ui_urls("table9", uri)["compare"]
