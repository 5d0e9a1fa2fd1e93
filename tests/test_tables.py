"""The table writer (ila.tables) on runs with known outcomes: shared rows, the primary measure, latency, paper
columns."""

import csv
import json
import shutil

import numpy as np
import pytest
from scipy import stats as sps

from ila.ablations import AblationError, load_table
from ila.metrics import MetricsError, RunMetrics
from ila.stats import minimum_detectable
from ila.tables import collect, write_csv, write_markdown

CLASSES = ["left to right", "right to left", "red square", "blue circle"]
GROUPS = {"left to right": "temporal", "right to left": "temporal", "red square": "static", "blue circle": "static"}
TWIN = {0: 1, 1: 0}


def _metrics(rng, labels, p_correct):
    """A metrics.json as `ila evaluate` writes it, from random per-video outcomes."""
    n = len(labels)
    correct = rng.random(n) < p_correct
    pred = np.where(correct, labels, (labels + 1) % len(CLASSES))
    top5 = np.ones(n, dtype=int)
    twin = np.array([int(c) if y in TWIN else -1 for y, c in zip(labels, correct, strict=False)])
    group = np.array([GROUPS[CLASSES[y]] for y in labels])
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {c: float(correct[labels == i].mean()) if (labels == i).any() else None
                 for i, c in enumerate(CLASSES)}  # fmt: skip
    seen = [v for v in per_class.values() if v is not None]
    m = {
        "num_videos": n, "num_listed": n, "num_skipped": 0,
        "top1": float(correct.mean()), "top5": 1.0, "mean_class_top1": float(np.mean(seen)),
        "top1_temporal": float(correct[group == "temporal"].mean()), "top5_temporal": 1.0,
        "top1_static": float(correct[group == "static"].mean()), "top5_static": 1.0,
        "twin_order_accuracy": float(twin[twin >= 0].mean()), "reversal_logit_change": 0.1,
        "per_class_top1": per_class, "class_groups": GROUPS, "confusion_matrix": confusion.tolist(),
        "class_names": CLASSES, "skipped_files": {}, "train_steps": 4,
        "cost": {"run_config": {"gflops": 0.1, "params_total": 1e6},
                 "ViT-B-32@8f": {"gflops": 38.0, "gflops_operator": 1.0, "params_operator": 1e5}},
        "per_video": {"video": [f"v{i}.mp4" for i in range(n)], "label": labels.tolist(), "pred": pred.tolist(),
                      "top5_hit": top5.tolist(), "twin_hit": twin.tolist()},
    }  # fmt: skip
    m["temporal_score"] = m["top1_temporal"] - m["top1_static"]
    return m


@pytest.fixture
def runs(tmp_path):
    """Two tables: `src` owns rows a and b; `t` shares a from it and adds c, plus a row whose method is not built."""
    abl = tmp_path / "ablations"
    abl.mkdir()
    (abl / "src.yaml").write_text(
        "table: src\ntitle: Source\nrows:\n"
        "  - {id: a, name: Row A, model: {variant: baseline}}\n"
        "  - {id: b, name: Row B, model: {variant: ila}}\n")
    (abl / "t.yaml").write_text(
        "table: t\ntitle: Shared\nreference: a\nlatency: true\nrows:\n"
        "  - {id: a, from: src, name: A here, paper: {top1: 80.0, latency_ms: 50.0}}\n"
        "  - {id: c, name: Row C, model: {variant: ila}, paper: {top1: 81.0, latency_ms: 40.0}}\n"
        "  - {id: d, name: Row D, model: {variant: not_built}, requires: issue 99, paper: {top1: 82.0}}\n")
    (abl / "ts.yaml").write_text(
        "table: ts\ntitle: Temporal score\nreference: a\nprimary: temporal_score\n"
        "columns: [top1_temporal, top5_temporal, top1_static, temporal_score]\nrows:\n"
        "  - {id: a, from: src, paper: {top1_temporal: 70, top1_static: 69, temporal_score: 1.0}}\n"
        "  - {id: b, from: src, paper: {top1_temporal: 80, top1_static: 70, temporal_score: 10.0}}\n")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(CLASSES), 400)
    made = {}
    for table, row, p in (("src", "a", 0.5), ("src", "b", 0.7), ("t", "c", 0.8)):
        for seed in (0, 1):
            d = tmp_path / "results" / table / row / f"seed{seed}"
            d.mkdir(parents=True)
            made[(row, seed)] = _metrics(rng, labels, p)
            (d / "metrics.json").write_text(json.dumps(made[(row, seed)]))
            (d / "mlflow_run_id").write_text(f"run-{row}-{seed}")
    return tmp_path, made


def _correct(m):
    return np.equal(m["per_video"]["pred"], m["per_video"]["label"]).astype(float)


def test_shared_rows_reference_difference_and_latency(runs):
    root, made = runs
    table = load_table(root / "ablations" / "t.yaml")
    latency = {"ms_per_clip": {"a": 100.0, "c": 125.0}, "device": "CPU (test)", "device_short": "CPU",
               "config": "embedded", "batch": 1, "precision": "fp32", "threads": 1, "reps": 1, "warmup": 2}
    res = collect(table, root / "results" / "t", "test", "synth-tiny", [0, 1], latency)
    by_id = {r["id"]: r for r in res.rows}
    assert list(by_id) == ["a", "c"]  # d is not built: listed in the notes only
    assert by_id["a"]["run_table"] == "src" and by_id["c"]["run_table"] == "t"
    assert by_id["c"]["top1"] == pytest.approx(50 * (made[("c", 0)]["top1"] + made[("c", 1)]["top1"]), abs=0.006)
    expected = 100 * np.mean([(_correct(made[("c", s)]) - _correct(made[("a", s)])) for s in (0, 1)])
    assert by_id["c"]["top1_diff_vs_ref"] == pytest.approx(expected, abs=0.006)
    assert by_id["a"]["top1_diff_vs_ref"] is None and by_id["a"]["top1_diff_p"] is None
    assert by_id["c"]["latency_ratio_vs_ref"] == 1.25 and by_id["c"]["latency_ms"] == 125.0
    assert by_id["c"]["paper_latency_ms"] == 40.0 and by_id["a"]["paper_top1"] == 80.0
    assert res.runs == {f"{r}-seed{s}": f"run-{r}-{s}" for r in "ac" for s in (0, 1)}
    assert sorted(res.shared_runs) == ["run-a-0", "run-a-1"]
    write_csv(res, root / "t.csv")
    write_markdown(res, root / "t.md", "test", "synth-tiny")
    with (root / "t.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["a", "c"] and rows[1]["latency_ratio_vs_ref"] == "1.25"
    md = (root / "t.md").read_text()
    assert "| Paper Top-1 |" in md and "Paper latency (ms/clip)" in md and "Paper latency x A here" in md
    assert "| 0.8 |" in md  # the paper's ratio 40 / 50
    assert "Row D: not run — its method arrives with issue 99." in md
    assert "A here: the same runs as src's row `a` (trained once, shared)." in md
    assert "on CPU (test)" in md and "compare the ratios" in md


def test_temporal_score_is_the_primary_measure(runs):
    root, made = runs
    res = collect(load_table(root / "ablations" / "ts.yaml"), root / "results" / "ts", "test", "x", [0, 1])
    b = next(r for r in res.rows if r["id"] == "b")
    per_seed = [100 * (made[("b", s)]["temporal_score"] - made[("a", s)]["temporal_score"]) for s in (0, 1)]
    assert b["temporal_score_diff_vs_ref"] == pytest.approx(np.mean(per_seed), abs=0.006)
    assert b["temporal_score"] == pytest.approx(50 * sum(made[("b", s)]["temporal_score"] for s in (0, 1)), abs=0.006)
    assert "top1_diff_vs_ref" not in res.columns and "paper_top1" not in res.columns
    assert res.summary["kendall_tau"].n == 2  # too few rows for a tau: reported as not defined
    write_markdown(res, root / "ts.md", "test", "x")
    md = (root / "ts.md").read_text()
    assert "| Model | TS = Top-1 (T) - Top-1 (S) | Δ TS vs Row A [95% CI]" in md and "Top-5 (T)" in md
    assert "Kendall's tau against the paper's TS = Top-1 (T) - Top-1 (S) order: not defined" in md


def test_bad_table_files_fail_naming_the_key(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("table: x\ntitle: X\nrowz: []\nrows: []\n")
    with pytest.raises(AblationError, match=r"x.yaml: rowz: unknown key; expected one of \['columns', "):
        load_table(bad)
    bad.write_text("table: y\ntitle: X\nrows: []\n")
    with pytest.raises(AblationError, match="must be the file's name"):
        load_table(bad)
    bad.write_text("table: x\ntitle: X\nprimary: top7\nrows:\n  - {id: a, name: A, model: {variant: ila}}\n")
    with pytest.raises(ValueError, match="primary 'top7' is not one of"):
        collect(load_table(bad), tmp_path, "p", "d", [0])


def test_emd_table_reads_each_runs_emd_and_pairs_videos(runs):
    """Table 5: the EMD of every (row, seed) from its emd.json, compared per video; and its rank against top-1."""
    root, made = runs
    (root / "ablations" / "te.yaml").write_text(
        "table: te\ntitle: EMD\nreference: a\nprimary: emd\ncolumns: [top1]\nrows:\n"
        "  - {id: a, from: src, paper: {emd: 0.56}}\n  - {id: b, from: src, paper: {emd: 0.13}}\n")
    rng = np.random.default_rng(5)
    emd = {}
    for row, level in (("a", 0.5), ("b", 0.3)):
        for seed in (0, 1):
            values = (level + 0.05 * rng.random(400)).tolist()
            emd[(row, seed)] = values
            (root / "results" / "src" / row / f"seed{seed}" / "emd.json").write_text(json.dumps({
                "emd": float(np.mean(values)), "options": {"normalize": True, "metric": "euclidean"},
                "per_video": {"video": made[(row, seed)]["per_video"]["video"], "emd": values}}))
    res = collect(load_table(root / "ablations" / "te.yaml"), root / "results" / "te", "test", "x", [0, 1])
    b = next(r for r in res.rows if r["id"] == "b")
    expected = np.mean([np.subtract(emd[("b", s)], emd[("a", s)]) for s in (0, 1)])
    assert b["emd_diff_vs_ref"] == pytest.approx(expected, abs=1e-4) and b["emd_diff_significant"]
    assert b["emd"] == pytest.approx(np.mean([np.mean(emd[("b", s)]) for s in (0, 1)]), abs=1e-4)
    write_markdown(res, root / "te.md", "test", "x")
    md = (root / "te.md").read_text()
    assert "Kendall's tau between our EMD and our Top-1 across rows" in md and "euclidean ground metric" in md
    (root / "results" / "src" / "a" / "seed1" / "emd.json").unlink()
    with pytest.raises(FileNotFoundError, match="run `ila emd` first"):
        collect(load_table(root / "ablations" / "te.yaml"), root / "results" / "te", "test", "x", [0, 1])


def _write_run(root, table, row, seed, correct, twin, labels):
    """A metrics.json whose per-video outcomes are given, not drawn."""
    m = _metrics(np.random.default_rng(0), labels, 1.0)
    m["per_video"]["pred"] = np.where(correct, labels, (labels + 1) % len(CLASSES)).tolist()
    m["per_video"]["twin_hit"] = twin.tolist()
    m["top1"], m["twin_order_accuracy"] = float(np.mean(correct)), float(twin[twin >= 0].mean())
    d = root / "results" / table / row / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps(m))


def test_statistical_columns_by_value_on_known_outcomes(tmp_path):
    """Two seeds, outcomes built so that the video term vanishes (the row gains on other videos in each seed): the
    difference's interval is then exactly the t interval over the two per-seed differences, with 1 degree of
    freedom (t = 12.71; a z interval would be 6.5x narrower), its p-value the t test's, and the twin-order test the
    t test of the per-seed rates against 50%."""
    (tmp_path / "ablations").mkdir()
    spec = tmp_path / "ablations" / "k.yaml"
    spec.write_text("table: k\ntitle: Known\nreference: a\nrows:\n"
                    "  - {id: a, name: A, model: {variant: baseline}, paper: {top1: 1}}\n"
                    "  - {id: c, name: C, model: {variant: ila}, paper: {top1: 2}}\n")
    n = 400
    labels = np.where(np.arange(n) % 2 == 0, 0, 2)  # class 0 has a twin, class 2 is static
    twin_videos = labels == 0
    k = int(twin_videos.sum())
    ref = np.arange(n) >= 200  # 50% correct, the same videos in both seeds
    gains = {0: np.arange(n) < 30, 1: (np.arange(n) >= 100) & (np.arange(n) < 150)}  # +7.5 and +12.5 points
    twin_rate = {0: 0.6, 1: 0.7}
    for seed in (0, 1):
        hits = np.arange(k) < twin_rate[seed] * k if seed == 0 else np.arange(k) >= k - twin_rate[seed] * k
        twin = np.full(n, -1)
        twin[twin_videos] = hits  # different videos in each seed
        _write_run(tmp_path, "k", "a", seed, ref, np.where(twin_videos, 1, -1), labels)
        _write_run(tmp_path, "k", "c", seed, ref | gains[seed], twin, labels)
    res = collect(load_table(spec), tmp_path / "results" / "k", "test", "x", [0, 1])
    c = next(r for r in res.rows if r["id"] == "c")
    per_seed = [7.5, 12.5]
    t = sps.ttest_1samp(per_seed, 0.0)
    ci = t.confidence_interval(0.95)
    assert c["top1_diff_vs_ref"] == 10.0 and c["top1_diff_df"] == 1.0
    assert (c["top1_diff_ci_low"], c["top1_diff_ci_high"]) == pytest.approx((ci.low, ci.high), abs=0.006)
    assert c["top1_diff_ci_high"] - 10.0 == pytest.approx(12.706 * 2.5, abs=0.006)  # t_{0.975,1} * se
    assert c["top1_diff_p"] == pytest.approx(t.pvalue, abs=1e-4) and not c["top1_diff_significant"]
    assert c["top1_diff_mde"] == pytest.approx(minimum_detectable(2.5, 1), abs=0.006)
    twin_t = sps.ttest_1samp([0.6 - 0.5, 0.7 - 0.5], 0.0)
    assert c["twin_order_p_vs_chance"] == pytest.approx(twin_t.pvalue, abs=1e-4)
    # Seeds-only columns: the Student-t interval over the two seeds' values, cut to [0, 100].
    twin_ci = sps.ttest_1samp([60.0, 70.0], 0.0).confidence_interval(0.95)
    assert c["twin_order_accuracy_ci_low"] == max(0.0, round(twin_ci.low, 2))
    assert c["twin_order_accuracy_ci_high"] == min(100.0, round(twin_ci.high, 2)) == 100.0
    write_markdown(res, tmp_path / "k.md", "test", "x")
    md = (tmp_path / "k.md").read_text()
    assert "| +10.00 [-21.77, +41.77] |" in md  # not bold: not significant
    assert "Power: the minimum detectable difference" in md and "A training run is the unit of replication" in md
    assert "Of the 1 pairs of rows, 0 differ significantly" in md


def test_a_skipped_row_is_left_out_and_named_in_the_notes(runs):
    """A rehearsal's skipped row (make_table --skip): no run read, no comparison, its reason in the notes."""
    root, _ = runs
    table = load_table(root / "ablations" / "src.yaml")
    shutil.rmtree(root / "results" / "src" / "b")
    res = collect(table, root / "results" / "src", "test", "synth-tiny", [0, 1], skipped={"b": "too big here"})
    assert [r["id"] for r in res.rows] == ["a"]
    assert "Row B: not run here (too big here)." in res.notes
    with pytest.raises(FileNotFoundError, match="no metrics for row 'b'"):
        collect(table, root / "results" / "src", "test", "synth-tiny", [0, 1])


# metrics.json's keys in the order the evaluation (ila.engine.evaluate) writes them.
EVALUATION_ORDER = [
    "num_videos", "num_listed", "num_skipped", "top1", "top5", "mean_class_top1", "top1_static", "top5_static",
    "top1_temporal", "top5_temporal", "temporal_score", "twin_order_accuracy", "per_class_top1", "class_groups",
    "confusion_matrix", "class_names", "skipped_files", "reversal_logit_change", "reversal_top1_flip",
    "reversal_probe_clips", "per_video", "eval_world_size", "eval_videos_per_rank", "train_steps",
    "train_clips_per_s", "train_data_wait_frac", "train_precision", "cost",
]  # fmt: skip


def test_metrics_json_keeps_the_evaluations_bytes_and_names_the_file_of_a_bad_field(tmp_path):
    """RunMetrics writes the evaluation's metrics byte for byte (same keys, same order, same formatting); a file
    that lacks a field, or holds one of the wrong type, fails naming the file and the field; an older file without
    the optional fields still reads."""
    made = _metrics(np.random.default_rng(0), np.arange(8) % len(CLASSES), 0.5)
    made.update(reversal_top1_flip=0.0, reversal_probe_clips=8, eval_world_size=1, eval_videos_per_rank=[8],
                train_clips_per_s=1.5, train_data_wait_frac=0.1, train_precision="fp32")
    evaluation = {key: made[key] for key in EVALUATION_ORDER}
    path = RunMetrics.from_json(evaluation, "the evaluation", strict=True).write(tmp_path / "metrics.json")
    assert path.read_text() == json.dumps(evaluation, indent=2) + "\n"
    read = RunMetrics.read(path)
    assert read.as_json() == evaluation and read.value("top1_temporal") == evaluation["top1_temporal"]
    assert read.train_steps == 4 and read.value("top1_unknown_group") is None
    with pytest.raises(ValueError, match="'extra' is not a field of ila.metrics.RunMetrics"):
        RunMetrics.from_json({**evaluation, "extra": 1}, "the evaluation", strict=True)
    for change, message in (({"top1": None}, "top1: expected a number, got None"),
                            ({"num_videos": "8"}, "num_videos: expected a whole number, got '8'"),
                            ({"top5_static": "x"}, "top5_static: expected a number or null")):
        path.write_text(json.dumps({**evaluation, **change}))
        with pytest.raises(MetricsError, match=f"{path}: {message}"):
            RunMetrics.read(path)
    older = {k: v for k, v in evaluation.items() if not k.startswith(("per_video", "eval_", "reversal", "cost"))}
    path.write_text(json.dumps({**older, "retired_field": 1}))
    assert RunMetrics.read(path).cost is None
    with pytest.raises(MetricsError, match=f"{path}: no per_video outcomes"):
        RunMetrics.read(path).per_video_column("video")
    path.write_text(json.dumps({k: v for k, v in older.items() if k != "class_names"}))
    with pytest.raises(MetricsError, match=f"{path}: no 'class_names'"):
        RunMetrics.read(path)
