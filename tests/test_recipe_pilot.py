"""The recipe pilot's summary (benchmarks/recipe_pilot.py) reports what ila.stats computes from the runs' per-video
outcomes (the trainings themselves are the trainer's, tested in test_engine)."""

import importlib.util
from pathlib import Path

import numpy as np
from test_tables import _metrics

from ila.metrics import RunMetrics
from ila.stats import paired_difference

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_pilot.py"


def _pilot():
    spec = importlib.util.spec_from_file_location("recipe_pilot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_prints_each_comparisons_difference_mde_and_projection(tmp_path, capsys):
    pilot, rng = _pilot(), np.random.default_rng(0)
    labels = np.arange(40) % 4
    correct = {}
    for weights, shift in (("last", 0.0), ("average", 0.05)):
        for row, p in (("baseline", 0.5), ("xclip", 0.7)):
            for seed in (0, 1, 2):
                m = _metrics(rng, labels, p + shift)
                RunMetrics.from_json(m, "test", strict=True).write(
                    tmp_path / "steps10" / weights / row / f"seed{seed}" / "metrics.json")
                hits = 100.0 * np.equal(m["per_video"]["pred"], m["per_video"]["label"])
                correct.setdefault((weights, row), []).append(hits)
    pilot.summarise(tmp_path, [10], ["baseline", "xclip"], [0, 1, 2], [(5, 80)])
    out = capsys.readouterr().out
    for weights in pilot.WEIGHTS:
        d = paired_difference(np.stack(correct[weights, "xclip"]), np.stack(correct[weights, "baseline"]))
        line = next(x for x in out.split("\n\n") if x.strip().startswith(f"10 steps, {weights} weights"))
        assert f"xclip - baseline: {d.diff:+.2f}," in line and f"MDE {d.mde:.2f}" in line, line
        assert f"5x80: {d.components.mde_at(5, 80):.2f}" in line
