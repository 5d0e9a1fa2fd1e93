"""`ila power` (``ila.power``): seeds per row for a target MDE, read from a statistics file that the table writer
(``ila.tables.write_stats``) wrote from synthetic outcomes, checked against ``VarianceComponents.mde_at`` directly;
and the files it refuses (an older layout, one seed), each named."""

import json
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pytest

from ila.cli import main
from ila.power import PowerError, plan_seeds
from ila.stats import paired_difference
from ila.tables import TableResult, pairwise_differences, write_stats

VIDEOS = 400
NAMES = {"base": "Base", "a": "A", "b": "B", "c": "C"}
REFERENCE = {"base": None, "a": "base", "b": "base", "c": "a"}  # C is compared with a reference of its own


def _outcomes(seeds: int) -> dict[str, np.ndarray]:
    """Per-row ``[seeds, videos]`` top-1 outcomes in points: each row's skill, a seed effect and video difficulty."""
    rng = np.random.default_rng(11)
    difficulty = rng.random(VIDEOS) - 0.5
    out = {}
    for row, skill in {"base": 0.5, "a": 0.56, "b": 0.47, "c": 0.6}.items():
        p = np.clip(skill + 0.04 * rng.standard_normal((seeds, 1)) + 0.4 * difficulty, 0, 1)
        out[row] = 100.0 * (rng.random((seeds, VIDEOS)) < p)
    return out


def _stats_file(path, seeds: int = 3):
    """A table's statistics file as the table writer writes it, from synthetic outcomes; and the outcomes."""
    outcomes = _outcomes(seeds)
    rows = [{"id": row, "row": NAMES[row], "compared_with": REFERENCE[row]} for row in NAMES]
    summary = {"seeds": list(range(seeds)), "videos": VIDEOS, "primary": "top1", "dataset_kind": "synth",
               "pairs_by_measure": {"top1": pairwise_differences(outcomes, None)}}
    write_stats(TableResult(SimpleNamespace(table="t"), rows, [], summary=summary), path, "abc123")
    return outcomes


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _reference_differences(outcomes):
    return {row: paired_difference(outcomes[row], outcomes[ref]) for row, ref in REFERENCE.items() if ref}


def test_the_stats_file_keeps_each_comparisons_variance_components(tmp_path):
    outcomes = _stats_file(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert {r: data["rows"][r]["compared_with"] for r in NAMES} == REFERENCE
    record = next(c for c in data["comparisons"]["top1"] if (c["row"], c["other"]) == ("a", "c"))
    assert record["components"] == asdict(paired_difference(outcomes["a"], outcomes["c"]).components)
    assert set(record["components"]) == {"seed", "video", "residual", "n_seeds", "n_videos"}


@pytest.mark.parametrize("videos", [None, 4 * VIDEOS])
def test_seeds_needed_are_the_fewest_that_mde_at_brings_to_the_target(tmp_path, capsys, videos):
    outcomes = _stats_file(tmp_path / "t.json")
    differences = _reference_differences(outcomes)
    target = 0.6 * min(d.mde for d in differences.values())  # reachable with a few more seeds, not with 3
    argv = ["power", str(tmp_path / "t.json"), "--mde", str(target), "--json"]
    code, out, _ = _run(argv + (["--videos", str(videos)] if videos else []), capsys)
    assert code == 0
    plan = json.loads(out)
    assert (plan["table"], plan["measure"], plan["seeds"], plan["videos"]) == ("t", "top1", 3, VIDEOS)
    assert plan["target_videos"] == (videos or VIDEOS)
    by_row = {c["row"]: c for c in plan["comparisons"]}
    assert {(row, c["reference"]) for row, c in by_row.items()} == {("A", "Base"), ("B", "Base"), ("C", "A")}
    needed = []
    for row, d in differences.items():
        got = by_row[NAMES[row]]
        assert got["measured_mde"] == pytest.approx(d.mde)
        assert got["projected_mde"] == pytest.approx(d.components.mde_at(3, videos))
        n = got["seeds_needed"]
        assert n is not None and n > 3
        assert d.components.mde_at(n, videos) <= target < d.components.mde_at(n - 1, videos)
        needed.append(n)
    assert plan["median_seeds_needed"] == sorted(needed)[1] and plan["most_seeds_needed"] == max(needed)
    assert by_row[plan["most_seeds_needed_by"]]["seeds_needed"] == max(needed)


def test_the_text_names_each_comparison_and_sums_up(tmp_path, capsys):
    _stats_file(tmp_path / "t.json")
    code, out, _ = _run(["power", str(tmp_path / "t.json"), "--mde", "0.5", "--max-seeds", "3"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("t: top1, measured with 3 seeds x 400 videos")
    assert "an MDE of 0.5 at 400 videos" in lines[0]
    assert [line.split()[:2] for line in lines[2:5]] == [["A", "Base"], ["B", "Base"], ["C", "A"]]
    assert all(line.endswith("over 3") for line in lines[2:5])
    assert lines[-1] == "seeds needed: median over 3, maximum over 3 (A)"
    plan = plan_seeds(tmp_path / "t.json", 1e6)  # any design reaches a huge target: the fewest seeds, two
    assert {c.seeds_needed for c in plan.comparisons} == {2}


def test_a_file_of_an_older_version_is_refused_naming_it(tmp_path, capsys):
    _stats_file(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    for record in data["comparisons"]["top1"]:
        del record["components"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(PowerError, match="older version.*no variance components.*--forcerun table results/t.csv"):
        plan_seeds(tmp_path / "old.json", 3)
    for row in data["rows"].values():
        del row["compared_with"]
    (tmp_path / "older.json").write_text(json.dumps(data))
    code, out, err = _run(["power", str(tmp_path / "older.json"), "--mde", "3"], capsys)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1
    assert err.startswith(f"ila power: power error: {tmp_path / 'older.json'}: written by an older version")


def test_a_single_seed_is_refused_naming_the_file(tmp_path, capsys):
    _stats_file(tmp_path / "one.json", seeds=1)
    code, _, err = _run(["power", str(tmp_path / "one.json"), "--mde", "3"], capsys)
    assert code == 2 and f"{tmp_path / 'one.json'}: measured with one seed ([0])" in err


@pytest.mark.parametrize("argv,message", [
    (["--mde", "0"], "expected a number > 0"),
    (["--mde", "3", "--max-seeds", "1"], "two seeds or more"),
])
def test_bad_options_and_missing_or_foreign_files(tmp_path, capsys, argv, message):
    _stats_file(tmp_path / "t.json")
    code, _, err = _run(["power", str(tmp_path / "t.json"), *argv], capsys)
    assert code == 2 and message in err
    code, _, err = _run(["power", str(tmp_path / "none.json"), "--mde", "3"], capsys)
    assert code == 2 and f"{tmp_path / 'none.json'}: no such statistics file" in err
    (tmp_path / "other.json").write_text('{"a": 1}')
    code, _, err = _run(["power", str(tmp_path / "other.json"), "--mde", "3"], capsys)
    assert code == 2 and "not a table's statistics file" in err
