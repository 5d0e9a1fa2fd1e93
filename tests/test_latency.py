"""Latency measurement (ila.latency, behind benchmarks/latency.py and the workflow's latency rule)."""

import json

import pytest

from ila.ablations import load_table
from ila.latency import measure_table


def test_every_row_is_timed_in_one_run_and_a_failing_row_is_reported(tmp_path):
    path = tmp_path / "lat.yaml"
    path.write_text("table: lat\ntitle: L\nreference: ila\nrows:\n"
                    "  - {id: ila, name: ILA, model: {variant: ila}}\n"
                    "  - {id: base, name: Baseline, model: {variant: baseline}}\n"
                    "  - {id: broken, name: Broken, model: {variant: ila, blocks: [9]}}\n")
    res = measure_table(load_table(path), "embedded", batches=(1, 2), reps=1, device="cpu")
    assert set(res["ms_per_clip"]) == {"ila", "base"} and "blocks" in res["failed"]["broken"]
    assert all(set(v) == {1, 2} and min(v.values()) > 0 for v in res["by_batch"].values())
    assert res["ms_per_clip"]["ila"] == res["by_batch"]["ila"][1]
    assert res["device"].startswith("CPU") and res["precision"] == "fp32" and res["config"].startswith("embedded")
    json.dumps(res)  # the latency rule writes it as JSON
    with pytest.raises(ValueError, match="latency config"):
        measure_table(load_table(path), "huge")
