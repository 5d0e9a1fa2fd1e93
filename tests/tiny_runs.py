"""The suite's tiny trained runs, trained once per test session and shared by every module that reads a trained run
(tests/conftest.py: the ``trained_baseline`` and ``trained_runs`` fixtures; under pytest-xdist, once for all the
workers). Tests read them and never write into them: a test that evaluates or trains again works on a copy
(:func:`copy_run`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Table 4's rows that the figures compare (Figure 5 and the heatmaps), and that the linear probe and the ILA probe
# script read: ILA, Divided ST and ATA.
TABLE4_ROWS = ("ila", "divided_st", "ata")


def engine_config(root, out, *extra, steps=60):
    """A run on the tiny preset, shrunk to seconds, tracked in ``<out>/../mlflow.db`` (experiment ``tests``)."""
    from ila.config import load_run_config

    return load_run_config(None, [
        f"data.root={root}", "data.input_size=32", "data.num_frames=8", "data.hflip=remap", "data.batch_size=16",
        "data.test_clips=2", "model.variant=baseline", "model.backbone=ILA-mini-32", f"train.steps={steps}",
        "train.mixup=0", "train.cutmix=0", "train.label_smoothing=0", "train.optim.lr=2e-3", "train.optim.min_lr=1e-5",
        "train.optim.new_lr_mult=1", "train.optim.warmup_steps=5", "train.log_every=5", "train.checkpoint_every=10",
        "train.threads=1", f"output_dir={out}", f"tracking.uri=sqlite:///{out.parent / 'mlflow.db'}",
        "tracking.experiment=tests", *extra,
    ])  # fmt: skip


def train_baseline(dataset: Path, root: Path) -> None:
    """The baseline variant trained 60 steps and evaluated (``<root>/baseline``); the metrics ``train`` returned are
    kept beside it (``returned_metrics.json``), for tests that compare them with what the run wrote."""
    from ila.engine.train import train

    metrics = train(engine_config(dataset, root / "baseline"))
    (root / "returned_metrics.json").write_text(json.dumps(metrics))


def load_baseline(root: Path):
    """``(cfg, metrics, run_dir)`` of :func:`train_baseline`'s run."""
    from ila.config import load_run_config

    out = root / "baseline"
    return load_run_config(out / "config.yaml"), json.loads((root / "returned_metrics.json").read_text()), out


def train_table4_rows(dataset: Path, root: Path) -> None:
    """Table 4's ILA, Divided ST and ATA rows as the workflow writes and trains them (``run.yaml`` in
    ``<root>/table4/<row>/seed0``), three steps each without evaluation, tracked in ``<root>/mlflow.db``."""
    import yaml

    from ila.ablations import load_table, row_run_config
    from ila.config import load_run_config
    from ila.engine.train import train

    spec = load_table("table4")
    base = {"data": {"root": str(dataset), "input_size": 32, "hflip": "remap", "batch_size": 8},
            "model": {"backbone": "ILA-mini-32", "head": "linear"},
            "train": {"steps": 3, "log_every": 1, "threads": 1},
            "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}", "tags": {"profile": "test"}}}
    for row in TABLE4_ROWS:
        run_dir = root / "table4" / row / "seed0"
        run_dir.mkdir(parents=True)
        cfg = row_run_config(base, spec, spec.row(row), {"ila": {"hidden": 16}}, output_dir=str(run_dir), seed=0)
        (run_dir / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        train(load_run_config(run_dir / "run.yaml"), run_eval=False)


def copy_run(run_dir: Path, dest: Path, *overrides: str):
    """A private copy of a shared run in ``dest``, untracked, with its config (``config.yaml``) rewritten to point
    there: ``(cfg, dest)``. For tests that evaluate or train again, which write into the run's directory."""
    import yaml

    from ila.config import load_run_config, to_dict

    shutil.copytree(run_dir, dest)
    cfg = load_run_config(dest / "config.yaml", [f"output_dir={dest}", "tracking.enabled=false", *overrides])
    (dest / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))  # as the trainer writes it
    return cfg, dest
