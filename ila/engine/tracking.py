"""MLflow tracking: one experiment per table, one run per row; batched metrics; a no-op when switched off.

A fresh SQLite store breaks when many jobs create it at once (alembic migrations race: 16 of 16 concurrent first
runs failed when tried). So :func:`init_store` creates the database and the experiments under a file lock beside the
database: any number of jobs may start at once against a store nobody created (the workflow still creates it once,
up front). Experiments keep their artifacts beside the database (not in the current directory) and open on MLflow's
training-runs view.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ila.ablations import PAPER_MAIN_CONFIG
from ila.config import TrackingConfig, flatten, to_dict
from ila.defaults import mlflow_uri_at
from ila.metrics import cost_key, mlflow_cost_label
from ila.paths import project_root

log = logging.getLogger(__name__)

# MLflow 3's UI opens an experiment on its GenAI overview unless told it holds model training: the experiment-kind
# tag (read by the UI where the kind is per experiment) and ?workflowType=machine_learning in the addresses we print
# (MLflow 3.17 takes the kind from a global switch that this parameter sets).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
UI_QUERY = "workflowType=machine_learning"
# A shared view of the runs table (the UI's "shared view state", an experiment tag) with the key figures as columns,
# best top-1 first; `ila compare` prints its address.
VIEW_KEY = "ila"
_PAPER_COST = mlflow_cost_label(cost_key(PAPER_MAIN_CONFIG["backbone"], PAPER_MAIN_CONFIG["num_frames"]))
KEY_COLUMNS = [
    "metrics.`eval/top1`", "metrics.`eval/top5`", "metrics.`eval/top1_temporal`", "metrics.`eval/top1_static`",
    "metrics.`eval/twin_order_accuracy`", f"metrics.`cost/{_PAPER_COST}/gflops`", "metrics.`cost/run_config/gflops`",
    "metrics.`cost/run_config/params_operator`", "tags.`paper.top1`", "tags.`paper.gflops`", "tags.`seed`",
]  # fmt: skip
EXPERIMENT_TAGS = {
    **EXPERIMENT_KIND,
    f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(
        {"selectedColumns": KEY_COLUMNS, "orderByKey": "metrics.`eval/top1`", "orderByAsc": False}
    ),
}


def tracking_uri(cfg: TrackingConfig | None = None) -> str:
    if cfg is not None and cfg.uri:
        return cfg.uri
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow_uri_at(project_root())


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if not uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(uri).path)
    if path in ("", "/:memory:"):
        return None
    # sqlite:///rel.db -> "/rel.db" relative to the cwd; sqlite:////abs.db -> "//abs.db"
    return Path(path[1:]).resolve() if not path.startswith("//") else Path(path[1:])


def _store_lock(uri: str):
    from filelock import FileLock

    db = sqlite_path(uri)
    if db is None:
        return nullcontext()
    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(db) + ".lock", timeout=600)


def artifact_root(uri: str) -> Path:
    """Where a store's runs keep their files: beside a SQLite database, else the project's ``mlruns/``."""
    db = sqlite_path(uri)
    return (db.parent if db is not None else project_root()) / "mlruns"


def init_store(uri: str, experiments: list[str]) -> dict[str, str]:
    """Create the tracking database and experiments (idempotent, safe under concurrency); ids by name."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    ids = {}
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)  # a SQLite store migrates its schema here, under the lock
        for name in experiments:
            exp = client.get_experiment_by_name(name)
            if exp is None:
                location = artifact_root(uri) / re.sub(r"[^\w.-]", "_", name)
                try:
                    ids[name] = client.create_experiment(name, artifact_location=location.as_uri(),
                                                         tags=EXPERIMENT_TAGS)
                except MlflowException:  # created meanwhile by a job on another machine (server stores)
                    ids[name] = client.get_experiment_by_name(name).experiment_id
            else:
                ids[name] = exp.experiment_id
                for key, value in EXPERIMENT_TAGS.items():
                    if exp.tags.get(key) != value:
                        client.set_experiment_tag(exp.experiment_id, key, value)
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
        self._command_tags: dict[str, str] = {}

    def add_tags(self, tags: dict[str, str]) -> None:
        """Tags of this command (e.g. its environment, :mod:`ila.engine.provenance`): set when the run starts, on a
        new run and on one continued (an evaluation joining its training's run, a resumed training), or at once when
        it has started."""
        if not self.active:
            return
        self._command_tags.update(tags)
        if self.run_id is not None:
            self._log_tags(tags)

    def _log_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), 100):  # MLflow's limit on tags per batch
            self._client.log_batch(self.run_id, tags=items[i : i + 100])

    def start(self, config: Any, tags: dict[str, str]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(self.cfg)
        exp_id = init_store(uri, [self.cfg.experiment])[self.cfg.experiment]
        self._client = MlflowClient(tracking_uri=uri)  # after init_store: building a client opens (migrates) the store
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
            all_tags = {"git_commit": git_commit(), "seed": str(getattr(config, "seed", "")), **tags,
                        **{k: str(v) for k, v in self.cfg.tags.items()}}
            for i in range(0, len(params), 100):
                self._client.log_batch(self.run_id, params=params[i : i + 100])
            self._log_tags(all_tags)
            config_file = self.run_dir / "config.yaml"
            if config_file.is_file():  # the resolved config, beside the params, from the run's first minute
                self.log_artifact(config_file)
        if self._command_tags:
            self._log_tags(self._command_tags)
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


def log_table(experiment: str, files: list[str | Path], tags: dict[str, str], uri: str | None = None,
              runs: dict[str, str] | None = None, shared_runs: list[str] | None = None) -> str:
    """Attach a table's files (CSV, Markdown, ...) to one table-level run in the table's experiment.

    The run is found again by its tags (``ila.kind=table`` and the profile), so rebuilding a table updates its
    run instead of adding another. ``runs`` (``"<row>-seed<N>"`` -> run id) become its ``run.<row>-seed<N>`` tags:
    the table links every run it reads. ``shared_runs`` are the runs of rows shared from another table: they stay in
    that table's experiment (they were trained once, there) and get the tag ``ila.shared_in.<experiment>=true``, so
    ``tags.`ila.shared_in.<experiment>` = 'true'`` finds them from this table. Returns the run id."""
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    exp_id = init_store(uri, [experiment])[experiment]
    client = MlflowClient(tracking_uri=uri)
    query = f"tags.`ila.kind` = 'table' and tags.profile = '{tags.get('profile', '')}'"
    found = client.search_runs([exp_id], query, max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = client.create_run(exp_id, run_name=f"{experiment} (table)", tags={"ila.kind": "table"}).info.run_id
    all_tags = {**tags, **{f"run.{name}": rid for name, rid in (runs or {}).items()}}
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
    for shared in shared_runs or []:
        client.set_tag(shared, f"ila.shared_in.{experiment}", "true")
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id


def row_runs(experiment: str, uri: str | None = None) -> list:
    """The finished row runs a table reads, oldest first: its experiment's own (not the table-level run) and the
    runs of rows it shares from other tables (tagged ``ila.shared_in.<experiment>`` when the table was written)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    order = ["attributes.start_time ASC"]
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", order_by=order)
    others = [e.experiment_id for e in client.search_experiments() if e.experiment_id != exp.experiment_id]
    if others:
        shared = f"attributes.status = 'FINISHED' and tags.`ila.shared_in.{experiment}` = 'true'"
        runs += client.search_runs(others, shared, order_by=order)
    return [r for r in runs if r.data.tags.get("ila.kind") != "table"]


def ui_urls(experiment: str, uri: str | None = None, base: str = "http://127.0.0.1:5000") -> dict[str, str]:
    """MLflow UI addresses for a table: ``runs`` (its runs table with the key figures as columns, best first) and
    ``compare`` (every finished row run side by side: metrics, parameters, parallel coordinates, scatter plots)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment {experiment!r} at {uri or tracking_uri()}")
    base = base.rstrip("/")
    found = row_runs(experiment, uri)
    runs = json.dumps([r.info.run_id for r in found], separators=(",", ":"))
    # A table that shares rows compares runs of several experiments: the page needs every one of them.
    exps = json.dumps(sorted({exp.experiment_id, *(r.info.experiment_id for r in found)}), separators=(",", ":"))
    return {
        "runs": f"{base}/#/experiments/{exp.experiment_id}/runs?{UI_QUERY}&viewStateShareKey={VIEW_KEY}",
        "compare": f"{base}/#/compare-runs?runs={runs}&experiments={exps}&{UI_QUERY}",
    }
