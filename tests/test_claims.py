"""The claims ledger (ila.claims) on tables whose verdicts are known by construction: every verdict category from the
tables' own statistics (runs written as `ila evaluate` writes them, the table writer's statistics file, the ledger),
a one-seed table, a claim whose rows did not run, and claims files with typos, which fail the plan."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_tables import CLASSES, _metrics

from ila.ablations import ABLATIONS_DIR, load_table, load_tables
from ila.claims import (
    CLAIMS_FILE,
    ClaimsError,
    count_line,
    ledger,
    load_claims,
    read_stats,
    write_csv,
    write_markdown,
)
from ila.plan import Plan, PlanError, load_profile, validate_profile
from ila.tables import collect, write_stats

VIDEOS, SEEDS = 400, [0, 1, 2]
TABLE = """table: k
title: Known answers
reference: base
rows:
  - {id: base, name: Base, model: {variant: baseline}, paper: {top1: 50.0, gflops: 40}}
  - {id: up, name: Up, model: {variant: ila}, paper: {top1: 60.0, gflops: 30}}
  - {id: down, name: Down, model: {variant: ila}, paper: {top1: 55.0, gflops: 30}}
  - {id: same_far, name: Same far, model: {variant: ila}, paper: {top1: 80.0, gflops: 40}}
  - {id: same_near, name: Same near, model: {variant: ila}, paper: {top1: 50.1}}
  - {id: k400_only, name: Only on K400, model: {variant: ila}, datasets: [kinetics400], paper: {top1: 70.0}}
"""
CLAIMS = [
    {"id": "up-above", "kind": "order", "table": "k", "rows": ["up"], "than": ["base"]},
    {"id": "down-above", "kind": "order", "table": "k", "rows": ["down"], "than": ["base"]},
    {"id": "far", "kind": "order", "table": "k", "rows": ["same_far"], "than": ["base"]},
    {"id": "near", "kind": "order", "table": "k", "rows": ["same_near"], "than": ["base"]},
    {"id": "k400-row", "kind": "order", "table": "k", "rows": ["k400_only|up"], "than": ["k400_only"]},
    {"id": "other-table", "kind": "order", "table": "other", "rows": ["a"], "than": ["b"]},
    {"id": "base-value", "kind": "value", "table": "k", "rows": ["base", "up"], "measure": "top1", "data": ["synth"]},
    {"id": "k400-value", "kind": "value", "table": "k", "rows": ["base"], "data": ["kinetics400"]},
    {"id": "cheaper", "kind": "cost", "table": "k", "rows": ["up", "down", "same_far"], "than": ["base"],
     "measure": "gflops", "direction": "lower"},
    {"id": "cited", "kind": "untestable", "why": "another paper's number"},
]  # fmt: skip
GFLOPS = {"base": 40.0, "up": 30.0, "down": 50.0, "same_far": 40.0, "same_near": 40.0}


def _say(claim):
    return {"says": f"the paper says {claim['id']}", "where": "§0", **claim}


def _base_correct(seed):
    """Half the videos right, a few of them flipped per seed (seed-to-seed spread, symmetric around 50%)."""
    correct = (np.arange(VIDEOS) % 2 == 0).astype(int)
    flips = np.arange(10 * seed, 10 * seed + 10) * 2  # ten right ones made wrong, ten wrong ones made right
    correct[flips], correct[flips + 1] = 0, 1
    return correct


def _row_correct(row, seed):
    """Up: 120 more right; Down: 120 fewer; the Same rows: Base's outcome with 10 videos swapped each way (a zero
    difference, with some spread)."""
    base = _base_correct(seed)
    out = base.copy()
    if row == "up":
        out[np.flatnonzero(base == 0)[:120]] = 1
    elif row == "down":
        out[np.flatnonzero(base == 1)[:120]] = 0
    elif row.startswith("same"):
        rng = np.random.default_rng(100 + seed)
        out[rng.choice(np.flatnonzero(base == 1), 10, replace=False)] = 0
        out[rng.choice(np.flatnonzero(base == 0), 10, replace=False)] = 1
    return out


def _write_run(path, correct):
    labels = np.arange(VIDEOS) % len(CLASSES)
    m = _metrics(np.random.default_rng(0), labels, 0.5)
    pred = np.where(correct == 1, labels, (labels + 1) % len(CLASSES))
    m["per_video"]["pred"] = pred.tolist()
    m["top1"] = float(correct.mean())
    m["cost"]["ViT-B-32@8f"]["gflops"] = GFLOPS[path.parent.name]
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(m))


@pytest.fixture
def known(tmp_path):
    """The ablation files (table `k`, and `other`, which never ran), the claims, and `k`'s runs of every seed."""
    abl = tmp_path / "ablations"
    abl.mkdir()
    (abl / "k.yaml").write_text(TABLE)
    (abl / "other.yaml").write_text("table: other\ntitle: Never run\nrows:\n"
                                    "  - {id: a, name: A, model: {variant: ila}}\n"
                                    "  - {id: b, name: B, model: {variant: baseline}}\n")
    (abl / "claims.yaml").write_text(yaml.safe_dump({"claims": [_say(c) for c in CLAIMS]}, sort_keys=False))
    for row in GFLOPS:
        for seed in SEEDS:
            _write_run(tmp_path / "results" / "k" / row / f"seed{seed}", _row_correct(row, seed))
    tables = load_tables(abl)
    return tmp_path, tables, load_claims(abl / "claims.yaml", tables)


def _stats(root, tables, seeds, kind="synth"):
    result = collect(tables["k"], root / "results" / "k", "test", "synth-test", seeds, dataset_kind=kind)
    write_stats(result, root / "results" / "stats" / "k.json", "abc123")
    return read_stats([root / "results" / "stats" / "k.json"])


def _verdicts(lines):
    return {(line.claim.id, line.compares.split(" (")[0]): line.verdict for line in lines}


def test_every_verdict_from_a_table_of_known_outcomes(known):
    root, tables, claims = known
    stats = _stats(root, tables, SEEDS)
    k = stats["k"]
    assert k["commit"] == "abc123" and k["seeds"] == SEEDS and set(k["rows"]) == set(GFLOPS)
    same = next(c for c in k["comparisons"]["top1"] if {c["row"], c["other"]} == {"base", "same_far"})
    assert same["low"] < 0 < same["high"] < 30 and abs(same["diff"]) < 1  # the construction holds
    lines = ledger(claims, stats, tables)
    got = _verdicts(lines)
    assert got == {
        ("up-above", "Up > Base"): "reproduced",
        ("down-above", "Down > Base"): "contradicted",
        ("far", "Same far > Base"): "not of the paper's size",
        ("near", "Same near > Base"): "inconclusive",
        ("k400-row", "Up > Only on K400"): "not run",
        ("other-table", "A > B"): "not run",
        ("base-value", "Base top1"): "reproduced",
        ("base-value", "Up top1"): "contradicted",
        ("k400-value", "Base top1"): "not comparable",
        ("cheaper", "Up cheaper than Base"): "reproduced",
        ("cheaper", "Down cheaper than Base"): "contradicted",
        ("cheaper", "Same far cheaper than Base"): "not of the paper's size",
        ("cited", "–"): "untestable",
    }
    by_id = {(line.claim.id, line.compares.split(" (")[0]): line for line in lines}
    up = by_id["up-above", "Up > Base"]
    assert up.ours == pytest.approx(30.0) and up.paper == pytest.approx(10.0) and up.low > 0
    assert "not run on synth-test" in by_id["k400-row", "Up > Only on K400"].detail
    assert by_id["near", "Same near > Base"].mde is not None and "80% power" in by_id[
        "near", "Same near > Base"].detail
    assert "above the paper's 60.0" in by_id["base-value", "Up top1"].detail
    cheaper = by_id["cheaper", "Up cheaper than Base"]
    assert cheaper.ours == 0.75 and cheaper.paper == 0.75
    assert count_line(lines) == ("13 comparisons from 10 claims: 3 reproduced, 3 contradicted, 2 not of the paper's "
                                 "size, 1 inconclusive, 2 not run, 1 not comparable, 1 untestable")
    write_csv(lines, root / "claims.csv")
    write_markdown(lines, root / "claims.md", "test")
    with (root / "claims.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["verdict"] for r in rows] == [line.verdict for line in lines]
    assert rows[0]["commit"] == "abc123" and rows[0]["profile"] == "test" and rows[0]["seeds"] == "0 1 2"
    md = (root / "claims.md").read_text()
    assert f"**{count_line(lines)}.**" in md and "k: test on synth-test, seeds [0, 1, 2], commit abc123" in md
    assert md.count("| **") == len(lines) and "the paper says up-above" in md


def test_a_one_seed_table_gives_no_interval(known):
    root, tables, claims = known
    lines = ledger(claims, _stats(root, tables, [0]), tables)
    got = _verdicts(lines)
    assert {v for (cid, _), v in got.items() if cid in ("up-above", "down-above", "far", "near")} == {"no interval"}
    assert got["base-value", "Base top1"] == "no interval"
    assert got["cheaper", "Up cheaper than Base"] == "reproduced"  # a cost is counted, not sampled
    assert "1 seed" in next(line for line in lines if line.claim.id == "up-above").detail


def test_a_rehearsal_skip_is_named(tmp_path):
    """A row a rehearsal left out is "not run" with the rehearsal's reason (from the statistics' `skipped`)."""
    (tmp_path / "k.yaml").write_text(TABLE)
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump({"claims": [_say(CLAIMS[0])]}))
    tables = {"k": load_table(tmp_path / "k.yaml")}
    stats = {"k": {"rows": {"base": {}}, "skipped": {"up": "too big for this machine"}, "comparisons": {},
                   "profile": "p", "dataset": "d", "seeds": [0], "commit": None}}
    [line] = ledger(load_claims(tmp_path / "claims.yaml", tables), stats, tables)
    assert line.verdict == "not run" and line.detail == "skipped: too big for this machine"


def test_the_correlation_claim():
    """Table 5's: lower EMD with higher accuracy, judged by the table's Kendall tau and its p-value; the paper's own
    tau from its numbers."""
    tables = {"table5": load_table("table5")}
    claims = [c for c in load_claims(CLAIMS_FILE, _all_tables()) if c.kind == "correlation"]
    assert [c.id for c in claims] == ["t5-lower-emd-higher-accuracy"]
    base = {"rows": {}, "comparisons": {}, "profile": "p", "dataset": "d", "seeds": [0, 1], "commit": None}
    for tau, p, verdict in ((-0.9, 0.01, "reproduced"), (0.9, 0.01, "contradicted"), (-0.5, 0.3, "inconclusive"),
                            (None, None, "inconclusive")):
        stats = {"table5": {**base, "correlations": {"emd_vs_top1": {"tau": tau, "p": p, "n": 5}}}}
        [line] = ledger(claims, stats, tables)
        assert line.verdict == verdict, (tau, p)
        assert line.paper == -1.0  # the paper's five rows: EMD falls as accuracy rises
    [line] = ledger(claims, {}, tables)
    assert line.verdict == "not run"


def _all_tables():
    return load_tables()


# --------------------------------------------------------------------------- the paper's claims file


def test_the_claims_file_covers_every_table_and_every_row_with_a_paper_number():
    """Each table of the paper is in the ledger, and each row the suite runs that has a paper top-1 (or EMD, or
    temporal score) is in some claim: a row added to an ablation file with the paper's number needs its claim."""
    tables = _all_tables()
    claims = load_claims(CLAIMS_FILE, tables)
    named = {(c.table, r.strip()) for c in claims for w in [*c.rows, *c.than] for r in w.split("|")}
    for name, table in tables.items():
        if name == "diagnostics":
            continue
        assert any(c.table == name for c in claims), name
        for row in table.rows:
            measured = {table.primary_measure, "top1"} & set(row.paper)
            if not row.cited and measured and row.available():
                assert (name, row.id) in named, f"{name}/{row.id} has the paper's {measured} but no claim"
    assert {c.kind for c in claims} == {"order", "cost", "value", "correlation", "untestable"}


@pytest.mark.parametrize("edit, message", [
    (lambda c: c[0].update(rows=["ilax"]), "row 'ilax' is not a row table1 runs"),
    (lambda c: c.append({**c[-1], "id": c[-1]["id"]}), "duplicate id"),
    (lambda c: c[0].update(table="table99"), "table: no ablation file table99.yaml"),
    (lambda c: c[0].update(kind="ordr"), "kind"),
    (lambda c: c[0].pop("data"), "data: missing"),
    (lambda c: c.append({"id": "x", "says": "s", "where": "w", "kind": "order", "table": "table4", "rows": ["ila"],
                         "than": ["baseline"], "measure": "emd"}), "measure: 'emd' is not compared in table4"),
    (lambda c: c.append({"id": "x", "says": "s", "where": "w", "kind": "cost", "table": "table4", "rows": ["ila"],
                         "than": ["baseline"], "measure": "latency"}), "expected one of ['gflops']"),
    (lambda c: c.append({"id": "x", "says": "s", "where": "w", "kind": "order", "table": "table1", "rows": ["ila"],
                         "than": ["mvitv2_l_312"]}), "a cited row's numbers are another paper's"),
    (lambda c: c[0].update(colour="red"), "colour: unknown key"),
    (lambda c: c[0].update(rows=["baseline"]), "'baseline' has no paper number for top1 in table1.yaml"),
])  # fmt: skip
def test_a_typo_in_the_claims_fails_the_plan(tmp_path, edit, message):
    """What the Snakefile builds before any job (ila.plan) refuses the claims file, naming it, the claim and the key."""
    folder = tmp_path / "ablations"
    shutil.copytree(ABLATIONS_DIR, folder)
    data = yaml.safe_load((folder / "claims.yaml").read_text())
    edit(data["claims"])
    (folder / "claims.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PlanError) as err:
        Plan(validate_profile(load_profile()), folder)
    assert "claims error" in str(err.value) and "claims.yaml: claims[" in str(err.value), str(err.value)
    assert message in str(err.value), str(err.value)


def test_a_missing_claims_file_is_named(tmp_path):
    with pytest.raises(ClaimsError, match="expected a mapping with a list under `claims:`"):
        load_claims(tmp_path / "claims.yaml", {})


def test_the_ledger_judges_the_tables_whose_runs_exist(tmp_path):
    """Asking for the ledger alone judges the tables whose runs are all there (and trains nothing); with a table as
    a target too, that table; `tables` judges every table of the profile, after writing it."""
    profile = validate_profile(load_profile())
    results = tmp_path / "results"
    profile["results_dir"] = str(results)
    alone = Plan(profile, ABLATIONS_DIR, [f"{results}/claims.md"])
    assert alone.claims_tables() == []
    for path in map(Path, alone.table_inputs("table4")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert alone.claims_tables() == ["table4"]  # Table 4's runs are all there; Table 5 needs their EMD too
    assert alone.claims_inputs() == [f"{results}/stats/table4.json"]
    with_t6 = Plan(profile, ABLATIONS_DIR, [f"{results}/table6.csv", f"{results}/claims.md"])
    assert with_t6.claims_tables() == ["table4", "table6"]
    everything = Plan(profile, ABLATIONS_DIR, ["tables"])
    claimed = {c.table for c in everything.claims if c.table}
    assert set(everything.claims_tables()) == claimed & set(everything.profile_tables())
