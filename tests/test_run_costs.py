"""`ila costs` (``ila.run_costs``): each table's jobs and time from Snakemake benchmark records laid out as the
workflow lays them out, its MDEs from a statistics file the table writer wrote, and the folders it refuses."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from ila.cli import main
from ila.run_costs import SHARED, RunCostsError, owner, table_costs
from ila.stats import paired_difference
from ila.tables import TableResult, pairwise_differences, write_stats

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
# benchmark record (under results/benchmarks) -> (wall seconds, CPU seconds); None: "NA", as Snakemake writes it
# where the platform measured nothing
RECORDS = {
    "table4/ila/seed0.train.tsv": (100.0, 90.0),
    "table4/ila/seed1.train.tsv": (110.0, 95.0),
    "table4/ila/seed0.evaluate.tsv": (30.0, 25.0),
    "table4/ila/seed0.config.tsv": (1.0, 1.0),
    "table4/ila/seed0.emd.tsv": (5.0, 4.0),
    "tables/table4.tsv": (2.0, 2.0),
    "figures/curves_table4.tsv": (3.0, 3.0),
    "mlflow/table4.tsv": (4.0, 4.0),
    "table10/x/seed0.train.tsv": (20.0, 19.0),
    "figures/figure1.tsv": (6.0, 6.0),
    "data/synth-default.tsv": (50.0, 48.0),
    "pretrain/ILA-mini-32.tsv": (140.0, 130.0),
    "table10/x/seed1.train.tsv": None,
}


def _results(tmp_path):
    for name, times in RECORDS.items():
        path = tmp_path / "results" / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        s, cpu = ("NA", "NA") if times is None else times
        path.write_text(HEADER + f"{s}\t0:00:01\t100\t200\t50\t60\t0\t0\t90\t{cpu}\n")
    return tmp_path / "results"


def _stats(results, seeds=3, videos=300):
    """table4's statistics file as the table writer writes it; the comparisons with the reference row."""
    rng = np.random.default_rng(3)
    outcomes = {row: 100.0 * (rng.random((seeds, videos)) < p) for row, p in {"base": 0.5, "a": 0.6, "b": 0.4}.items()}
    rows = [{"id": "base", "row": "Base", "compared_with": None}, {"id": "a", "row": "A", "compared_with": "base"},
            {"id": "b", "row": "B", "compared_with": "base"}]
    summary = {"seeds": list(range(seeds)), "videos": videos, "primary": "top1", "dataset_kind": "synth",
               "pairs_by_measure": {"top1": pairwise_differences(outcomes, None)}}
    (results / "stats").mkdir(exist_ok=True)
    write_stats(TableResult(SimpleNamespace(table="table4"), rows, [], summary=summary),
                results / "stats" / "table4.json", "0123456789abcdef")
    return [paired_difference(outcomes[row], outcomes["base"]) for row in ("a", "b")]


def test_each_job_is_counted_once_for_the_table_that_owns_it(tmp_path):
    costs = {c.table: c for c in table_costs(_results(tmp_path), tables=["table10", "table4", "table6"])}
    assert list(costs) == ["table4", "table10", SHARED]  # table order; table6 ran nothing
    t4 = costs["table4"]
    assert t4.jobs == {"train": 2, "evaluate": 1, "other": 5}
    assert t4.seconds == pytest.approx({"train": 210.0, "evaluate": 30.0, "other": 15.0})
    assert t4.cpu_seconds == pytest.approx(224.0)
    assert costs["table10"].jobs == {"train": 1}  # the "NA" record measured nothing: not counted
    assert costs[SHARED].jobs == {"other": 3} and costs[SHARED].total_seconds == pytest.approx(196.0)


@pytest.mark.parametrize("path, table", [("table4/ila/seed0.train.tsv", "table4"), ("figures/curves_table4.tsv",
                                          "table4"), ("latency/table9.tsv", "table9"), ("figures/figure5_ila.tsv",
                                          SHARED), ("tables/claims.tsv", SHARED), ("weights/ViT-B-32-openai.tsv",
                                          SHARED)])
def test_owner(path, table):
    from pathlib import Path

    assert owner(Path(path), {"table4", "table9"}) == table


def test_mdes_are_the_comparisons_with_each_rows_reference(tmp_path):
    results = _results(tmp_path)
    differences = _stats(results)
    t4 = next(c for c in table_costs(results, tables=["table4"]) if c.table == "table4")
    assert t4.mdes == pytest.approx([d.mde for d in differences])
    assert (t4.seeds, t4.videos, t4.commit) == (3, 300, "0123456")


def test_the_command_prints_a_markdown_table_with_a_total(tmp_path, capsys):
    results = _results(tmp_path)
    differences = _stats(results)
    assert main(["costs", str(results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| table | commit | seeds x videos | trainings |")
    cells = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]}
    assert cells["table4"][1:6] == ["0123456", "3 x 300", "2", "1", "5"]
    assert cells["table4"][9] == f"{255 / 60:.1f}"  # job minutes: 210 + 30 + 15 seconds
    low, high = sorted(d.mde for d in differences)
    assert cells["table4"][-1] == f"{low:.3g}-{high:.3g}"
    assert cells["total"][3:6] == ["3", "1", "8"]  # every project table, and the shared jobs
    assert cells["total"][9] == f"{(255 + 20 + 196) / 60:.1f}"


def test_a_results_folder_without_records_is_refused_naming_it(tmp_path, capsys):
    assert main(["costs", str(tmp_path)]) == 2
    assert f"{tmp_path}/benchmarks: no benchmark records" in capsys.readouterr().err


def test_a_broken_statistics_file_is_named(tmp_path):
    results = _results(tmp_path)
    (results / "stats").mkdir()
    (results / "stats" / "table4.json").write_text(json.dumps({"rows": {}}))
    with pytest.raises(RunCostsError, match="stats/table4.json: not a table's statistics file"):
        table_costs(results, tables=["table4"])
