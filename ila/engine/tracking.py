"""MLflow tracking: one experiment per table, one run per row; batched metrics; a no-op when switched off.

A fresh SQLite store breaks when many jobs create it at once (tooling.md), so :func:`init_store` creates the
database and the experiments once, before parallel jobs start (the workflow has a rule for it); runs then only
attach to an existing experiment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from ila.config import TrackingConfig, flatten, to_dict
from ila.paths import project_root

log = logging.getLogger(__name__)


def tracking_uri(cfg: TrackingConfig | None = None) -> str:
    if cfg is not None and cfg.uri:
        return cfg.uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def init_store(uri: str, experiments: list[str]) -> dict[str, str]:
    """Create the tracking database and experiments (idempotent); returns experiment ids by name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = {}
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        ids[name] = exp.experiment_id if exp is not None else client.create_experiment(name)
    return ids


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Tracker:
    """Rank-0 MLflow run; ``active=False`` makes every call a no-op."""

    def __init__(self, cfg: TrackingConfig, run_dir: Path, active: bool = True, flush_every: int = 20):
        self.active = active and cfg.enabled
        self.cfg, self.run_dir, self.flush_every = cfg, run_dir, flush_every
        self._buffer: list = []
        self._client = None
        self.run_id: str | None = None

    def start(self, config: Any, tags: dict[str, str]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(self.cfg)
        self._client = MlflowClient(tracking_uri=uri)
        exp_id = init_store(uri, [self.cfg.experiment])[self.cfg.experiment]
        id_file = self.run_dir / "mlflow_run_id"
        if id_file.exists():  # a resumed run continues its MLflow run
            self.run_id = id_file.read_text().strip()
            self._client.update_run(self.run_id, status="RUNNING")
        else:
            name = self.cfg.run_name or self.run_dir.name
            run = self._client.create_run(exp_id, run_name=name)
            self.run_id = run.info.run_id
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(self.run_id)
            params = [Param(k, str(v)[:6000]) for k, v in flatten(to_dict(config)).items()]
            all_tags = {"git_commit": git_commit(), **tags, **{k: str(v) for k, v in self.cfg.tags.items()}}
            for i in range(0, len(params), 100):
                self._client.log_batch(self.run_id, params=params[i : i + 100])
            self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
        log.info("MLflow run %s in experiment %r at %s", self.run_id, self.cfg.experiment, uri)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if not self.active:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if len(self._buffer) >= self.flush_every * max(1, len(metrics)):
            self.flush()

    def flush(self) -> None:
        if self.active and self._buffer:
            for i in range(0, len(self._buffer), 1000):
                self._client.log_batch(self.run_id, metrics=self._buffer[i : i + 1000])
            self._buffer = []

    def log_artifact(self, path: str | Path) -> None:
        if self.active:
            self._client.log_artifact(self.run_id, str(path))

    def end(self, status: str = "FINISHED") -> None:
        if self.active and self.run_id:
            self.flush()
            self._client.set_terminated(self.run_id, status=status)
