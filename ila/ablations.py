"""Ablation tables as declarative files (``ablations/<table>.yaml``): rows, their overrides, the paper's numbers.

The workflow builds its jobs from these files and the table writer reads them back; nothing else lists rows.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ila.config import resolve_model_config
from ila.paths import PRETRAINING_OBJECTIVES
from ila.variants import list_variants

ABLATIONS_DIR = Path(__file__).resolve().parents[1] / "ablations"


class AblationError(ValueError):
    """A malformed ablation file."""


@dataclass
class Row:
    id: str
    name: str
    model: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    requires: str | None = None
    label: str | None = None
    flops_note: str | None = None  # our explanation of a FLOPs gap to the paper (not the paper's words)
    # Another table whose row of the same id this row *is* (trained once, reused): its runs live under that table.
    shared_from: str | None = None
    # The dataset kinds (synth, kinetics400, ssv2) the row is run on; None: every one. A table can then hold the
    # paper's own rows for its dataset and the embedded default's analogues side by side.
    datasets: list[str] | None = None
    # The row's own backbone, {name, tag, pretraining} (ila.paths.backbone_weights_file), instead of the profile's.
    backbone: dict[str, Any] | None = None
    # The row's own configuration as the paper reports it (backbone, num_frames, head), over the table's; the row's
    # GFLOPs "at the paper's config" are counted there.
    paper_config: dict[str, Any] = field(default_factory=dict)
    # The row another row is compared with (default: the table's reference), e.g. each scale's ILA with that scale's
    # Baseline.
    reference: str | None = None
    # A row the paper cites from another paper (its reference, e.g. "[15]"): numbers only, never run, never in our
    # statistics.
    cited: str | None = None
    # A linear probe (Table 12): the source row's runs ("<table>/<row>", where they are trained), each frozen with a
    # new linear head trained on the profile's probe dataset (seed for seed).
    probe: str | None = None

    @property
    def run_table(self) -> str | None:
        """The table whose run directories hold this row's runs (None: the row's own table)."""
        return self.shared_from

    @property
    def variant(self) -> str:
        return self.model.get("variant", "ila")

    def available(self) -> bool:
        return self.cited is None and self.variant in list_variants()

    def runs_on(self, dataset_kind: str | None) -> bool:
        return dataset_kind is None or self.datasets is None or dataset_kind in self.datasets


@dataclass
class Table:
    table: str
    title: str
    rows: list[Row]
    paper_config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    reference: str | None = None  # the row every other row is compared with (default: the first)
    primary: str | None = None  # the measure rows are compared on (ila.tables.PRIMARY_MEASURES; default top1)
    columns: list[str] | None = None  # the Markdown's metric columns (default: ila.tables.DEFAULT_COLUMNS)
    latency: bool = False  # a measured latency column (the workflow's `latency` rule)
    notes: list[str] = field(default_factory=list)  # our words for the Markdown's notes (what limits the table)

    def available_rows(self, dataset_kind: str | None = None) -> list[Row]:
        """The rows the workflow trains on ``dataset_kind`` (None: on any)."""
        return [r for r in self.rows if r.available() and r.runs_on(dataset_kind)]

    def pending_rows(self, dataset_kind: str | None = None) -> list[Row]:
        """Rows whose method is not built yet (``requires:``)."""
        return [r for r in self.rows if not r.cited and not r.available() and r.runs_on(dataset_kind)]

    def cited_rows(self) -> list[Row]:
        return [r for r in self.rows if r.cited]

    def reference_row(self, dataset_kind: str | None = None) -> Row:
        """The table's reference row; where it is not run on ``dataset_kind``, the first row that is."""
        if self.reference and self.row(self.reference).runs_on(dataset_kind):
            return self.row(self.reference)
        rows = [r for r in self.rows if not r.cited and r.runs_on(dataset_kind)]
        if not rows:
            raise AblationError(f"{self.path}: no row runs on dataset {dataset_kind!r}")
        return rows[0]

    def reference_of(self, row: Row, dataset_kind: str | None = None) -> Row:
        """The row ``row`` is compared with: its own reference where that runs on ``dataset_kind``, else the
        table's."""
        if row.reference and self.row(row.reference).runs_on(dataset_kind):
            return self.row(row.reference)
        return self.reference_row(dataset_kind)

    def paper_config_of(self, row: Row) -> dict[str, Any]:
        return {**self.paper_config, **row.paper_config}

    def paper_model_config(self, row: Row, backbone: str | None = None, frames: int | None = None) -> dict[str, Any]:
        """The row's model as the paper built it (its backbone, frames and head), for its GFLOPs at the paper's
        configuration; ``backbone`` / ``frames`` count it at another."""
        paper = self.paper_config_of(row)
        return {**row.model, "backbone": backbone or paper.get("backbone", "ViT-B-32"),
                "num_frames": frames or paper.get("num_frames", 8),
                "head": paper.get("head", row.model.get("head", "text"))}

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(f"{self.path}: no row with id {row_id!r}")


TABLE_KEYS = {"table", "title", "paper_config", "reference", "primary", "columns", "latency", "notes", "rows"}
ROW_KEYS = {"id", "name", "model", "paper", "overrides", "requires", "label", "flops_note", "from", "datasets",
            "backbone", "paper_config", "reference", "cited", "probe"}
# What a probe row ({id: ..., probe: <table>/<row>}) may set; its model, backbone and overrides are the source's.
PROBE_ROW_KEYS = {"id", "probe", "name", "paper", "label", "datasets", "paper_config", "reference", "requires"}
# What a shared row ({id: ..., from: <table>}) may set for itself; its model and overrides are the source row's.
SHARED_ROW_KEYS = {"id", "from", "name", "paper", "label", "flops_note", "datasets", "paper_config", "reference"}
CITED_ROW_KEYS = {"id", "name", "cited", "paper", "label"}
BACKBONE_KEYS = {"name", "tag", "pretraining"}
DATASET_KINDS = ("synth", "kinetics400", "ssv2")
PAPER_CONFIG_KEYS = {"backbone", "num_frames", "image_size", "head"}


def load_table(name_or_path: str | Path) -> Table:
    path = Path(name_or_path)
    if not path.suffix:
        path = ABLATIONS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise AblationError(f"{path}: ablation file not found")
    data = yaml.safe_load(path.read_text()) or {}
    for key in ("table", "title", "rows"):
        if key not in data:
            raise AblationError(f"{path}: missing top-level key {key!r}")
    unknown = set(data) - TABLE_KEYS
    if unknown:
        raise AblationError(f"{path}: unknown top-level keys {sorted(unknown)}; expected a subset of "
                            f"{sorted(TABLE_KEYS)}")
    if data["table"] != path.stem:
        raise AblationError(f"{path}: table: {data['table']!r} must be the file's name ({path.stem!r}): the workflow "
                            "finds a table's file by it")
    rows, seen = [], set()
    for i, raw in enumerate(data["rows"]):
        row = _row(raw, f"{path}: rows[{i}]", path)
        if row.id in seen:
            raise AblationError(f"{path}: rows[{i}]: duplicate id {row.id!r}")
        seen.add(row.id)
        rows.append(row)
    table = Table(data["table"], data["title"], rows, data.get("paper_config", {}), path, data.get("reference"),
                  data.get("primary"), data.get("columns"), bool(data.get("latency", False)),
                  list(data.get("notes", [])))
    if table.reference is not None and table.reference not in seen:
        raise AblationError(f"{path}: reference {table.reference!r} is not a row id ({', '.join(sorted(seen))})")
    for row in rows:
        if row.reference is not None and (row.reference not in seen or table.row(row.reference).cited):
            raise AblationError(f"{path}: row {row.id!r}: reference {row.reference!r} is not the id of a row the "
                                f"suite runs ({', '.join(sorted(r.id for r in rows if not r.cited))})")
    return table


def _row(raw: Any, where: str, path: Path) -> Row:
    if not isinstance(raw, dict):
        raise AblationError(f"{where}: expected a mapping")
    unknown = set(raw) - ROW_KEYS
    if unknown:
        raise AblationError(f"{where}: unknown keys {sorted(unknown)}; expected a subset of {sorted(ROW_KEYS)}")
    if "cited" in raw:
        extra = set(raw) - CITED_ROW_KEYS
        if extra:
            raise AblationError(f"{where}: a cited row (cited: {raw['cited']}) is the paper's numbers for another "
                                f"paper's method; it may only set {sorted(CITED_ROW_KEYS)}, not {sorted(extra)}")
    elif "from" in raw:
        raw = _shared_row(raw, where, path)
    elif "probe" in raw:
        raw = _probe_row(raw, where, path)
    for key in ("id", "name") + (() if "cited" in raw else ("model",)):
        if key not in raw:
            raise AblationError(f"{where}: missing {key!r}")
    if not re.fullmatch(r"[a-z0-9_]+", str(raw["id"])):
        raise AblationError(f"{where}: id {raw['id']!r} must be lower-case letters, digits and '_'")
    where = f"{path}: row {raw['id']!r}"
    _check_row_fields(raw, where)
    row = Row(**{("shared_from" if k == "from" else k): v for k, v in raw.items()})
    if not row.cited and not row.available() and not row.requires:
        raise AblationError(f"{where}: model.variant: unknown model variant {row.variant!r}; expected one of "
                            f"{list_variants()} (a row whose method is not built yet names what it waits for under "
                            "`requires:` and is skipped)")
    return row


def _check_row_fields(raw: dict[str, Any], where: str) -> None:
    """The keys that say where and on what a row runs: datasets, backbone, paper_config."""
    datasets = raw.get("datasets")
    if datasets is not None and (not isinstance(datasets, list) or not datasets
                                 or any(d not in DATASET_KINDS for d in datasets)):
        raise AblationError(f"{where}: datasets: expected a list of dataset kinds from {list(DATASET_KINDS)}, got "
                            f"{datasets!r}")
    backbone = raw.get("backbone")
    if backbone is not None:
        if not isinstance(backbone, dict) or "name" not in backbone or set(backbone) - BACKBONE_KEYS:
            raise AblationError(f"{where}: backbone: expected a mapping with `name` and optionally `tag` (fetched "
                                f"weights) or `pretraining` (the embedded default's), keys {sorted(BACKBONE_KEYS)}; "
                                f"got {backbone!r}")
        if backbone.get("pretraining", "contrastive") not in PRETRAINING_OBJECTIVES:
            raise AblationError(f"{where}: backbone.pretraining: expected one of {list(PRETRAINING_OBJECTIVES)}, got "
                                f"{backbone['pretraining']!r}")
    extra = set(raw.get("paper_config") or {}) - PAPER_CONFIG_KEYS
    if extra:
        raise AblationError(f"{where}: paper_config: unknown keys {sorted(extra)}; expected a subset of "
                            f"{sorted(PAPER_CONFIG_KEYS)}")


def _shared_row(raw: dict[str, Any], where: str, path: Path) -> dict[str, Any]:
    """A row reused from another table: the source row's fields, with this table's name, paper numbers and label."""
    extra = set(raw) - SHARED_ROW_KEYS
    if extra:
        raise AblationError(f"{where}: a shared row (from: {raw['from']}) takes its model from there; it may only set "
                            f"{sorted(SHARED_ROW_KEYS)}, not {sorted(extra)}")
    source_path = path.parent / f"{raw['from']}.yaml"
    if source_path.resolve() == path.resolve():
        raise AblationError(f"{where}: a row cannot be shared from its own table")
    source = load_table(source_path)
    try:
        src = source.row(str(raw.get("id")))
    except KeyError:
        raise AblationError(f"{where}: {source_path.name} has no row {raw.get('id')!r} to share") from None
    if src.shared_from:
        raise AblationError(f"{where}: {raw['from']}'s row {src.id!r} is itself shared from {src.shared_from}; "
                            "name that table")
    out = {**_run_fields(src), "id": src.id, "flops_note": src.flops_note}
    out.update({k: v for k, v in raw.items()})
    return out


def _run_fields(src: Row) -> dict[str, Any]:
    """What a row that runs another row's model (a shared row, a probe) takes from it: what it trains and on what,
    under the source's name, without the source's paper numbers."""
    return {"name": src.name, "model": src.model, "overrides": src.overrides, "paper": {}, "requires": src.requires,
            "backbone": src.backbone, "datasets": src.datasets, "paper_config": src.paper_config}


def _probe_row(raw: dict[str, Any], where: str, path: Path) -> dict[str, Any]:
    """A linear probe of another table's row: that row's model, backbone and overrides (so its run config is the
    source run's), ``probe`` naming the table whose run directories hold the source's runs."""
    extra = set(raw) - PROBE_ROW_KEYS
    if extra:
        raise AblationError(f"{where}: a probe row (probe: {raw['probe']}) takes its model from the source row; it "
                            f"may only set {sorted(PROBE_ROW_KEYS)}, not {sorted(extra)}")
    table, _, row_id = str(raw["probe"]).partition("/")
    source_path = path.parent / f"{table}.yaml"
    if not row_id or not source_path.is_file() or source_path.resolve() == path.resolve():
        raise AblationError(f"{where}: probe: expected '<table>/<row>' naming a row of another ablation file, got "
                            f"{raw['probe']!r}")
    try:
        src = load_table(source_path).row(row_id)
    except KeyError:
        raise AblationError(f"{where}: probe: {source_path.name} has no row {row_id!r}") from None
    if src.cited or src.probe:
        raise AblationError(f"{where}: probe: {raw['probe']} is not a trained row (cited or itself a probe)")
    out = {**_run_fields(src), **raw}
    out["probe"] = f"{src.run_table or table}/{src.id}"
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def row_run_config(base: dict[str, Any], table: Table, row: Row, operator_args: dict[str, dict] | None = None,
                   output_dir: str | None = None, seed: int | None = None, probe_from: str | None = None,
                   probe_run: dict[str, Any] | None = None) -> dict[str, Any]:
    """A row's run config: the profile's base, the row's model and overrides, the profile's per-operator options,
    and (given) the seed of this run of the row. A probe row is its source's model with a linear head on the source
    run's checkpoint ``probe_from``, with the profile's settings for the probe dataset (``probe_run``) over the
    source's overrides (every probe is tested alike)."""
    cfg = deep_merge(base, {"model": row.model})
    cfg = deep_merge(cfg, row.overrides)
    if row.probe:
        cfg = deep_merge(cfg, probe_run or {})
        cfg["model"].update(head="linear", probe_from=probe_from)
    operator = resolve_model_config(cfg.get("model", {})).operator
    if operator and operator_args and operator in operator_args:
        cfg["model"]["profile_operator_args"] = dict(operator_args[operator])
    cfg.setdefault("tracking", {})
    # MLflow: one experiment per table, one run per row; the tags say which row it is and what the paper reported
    # for it, so the UI can set the two side by side (the tracker adds the seed from the config).
    tags = {**cfg["tracking"].get("tags", {}), "table": table.table, "row": row.id, "row_name": row.name,
            **{f"paper.{k}": str(v) for k, v in row.paper.items()}}
    run_name = row.id if seed is None else f"{row.id}-seed{seed}"
    cfg["tracking"] = {**cfg["tracking"], "experiment": table.table, "run_name": run_name, "tags": tags}
    if seed is not None:
        cfg["seed"] = seed
    if output_dir is not None:
        cfg["output_dir"] = output_dir
    return cfg
