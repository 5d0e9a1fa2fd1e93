"""Ablation tables as declarative files (``ablations/<table>.yaml``): rows, their overrides, the paper's numbers.

The workflow builds its jobs from these files and the table writer reads them back; nothing else lists rows.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ila.catalog import DEFAULT_VARIANT, list_variants
from ila.config import KEY, build, mapping_keys, resolve_model_config
from ila.data.kinds import DATASET_KINDS
from ila.errors import ConfigError, IlaError
from ila.paths import PRETRAINING_OBJECTIVES

ABLATIONS_DIR = Path(__file__).resolve().parents[1] / "ablations"
CLAIMS_FILE_NAME = "claims.yaml"  # beside the tables: the paper's claims about them (ila.claims), not a table
# The paper's main configuration (ViT-B/32, 8 frames, the class-name text head): where a table or row that gives no
# `paper_config` was run, and so where its GFLOPs "at the paper's config" are counted.
PAPER_MAIN_CONFIG = {"backbone": "ViT-B-32", "num_frames": 8, "head": "text"}
# Measures with a per-video outcome, so that two rows can be compared on the same videos (ila.tables turns each into
# its outcome; ila.stats.paired_difference compares them): what a table's `primary` and a claim's `measure` may name.
PAIRED_MEASURES = ("top1", "top1_temporal", "top1_static", "temporal_score", "emd")


class AblationError(IlaError, ValueError):
    """A malformed ablation file."""

    kind = "ablation error"


# The kinds of row, each marked by a key of its own (a row with none of them is a run row: the table's own model):
# what a row may set in its file depends on its kind, and a field says which kinds set it (``_set_by``).
RUN, SHARED, PROBE, CITED = "run", "shared", "probe", "cited"
ROW_KIND_MARKS = {"cited": CITED, "from": SHARED, "probe": PROBE}  # the first of these a row sets decides its kind
# Why a row of a kind may set only some keys: the rest come from its source, or mean nothing for it.
FEW_KEYS_BECAUSE = {
    CITED: "a cited row (cited: {cited}) is the paper's numbers for another paper's method",
    SHARED: "a shared row (from: {from}) takes its model from there",
    PROBE: "a probe row (probe: {probe}) takes its model from the source row",
}


def _set_by(*kinds: str, key: str | None = None, **options: Any) -> Any:
    """A row's field that rows of ``kinds`` set in their file (every kind by default); ``key``: its name there."""
    metadata = {"set_by": kinds or (RUN, SHARED, PROBE, CITED), **({KEY: key} if key else {})}
    return field(metadata=metadata, **options)


@dataclass
class BackboneSpec:
    """A row's own backbone (ila.paths.backbone_weights_file), checked here and kept on the row as the file wrote it."""

    name: str  # an open_clip model name
    tag: str | None = None  # fetched weights (the paper profiles)
    pretraining: Literal[PRETRAINING_OBJECTIVES] = "contrastive"  # the embedded default's pretraining of the backbone


@dataclass
class PaperConfig:
    """A table's or a row's configuration as the paper reports it, where its GFLOPs "at the paper's config" are
    counted; checked here and kept as the file wrote it (what it leaves out is the table's, or the defaults)."""

    backbone: str | None = None
    num_frames: int | None = None
    image_size: int | None = None
    head: str | None = None


@dataclass
class Row:
    """A row of an ablation file, filled by :func:`ila.config.build` from the file (a shared or probe row from its
    source row's fields and its own)."""

    id: str = _set_by()
    name: str = _set_by()
    model: dict[str, Any] = _set_by(RUN, default_factory=dict)
    paper: dict[str, Any] = _set_by(default_factory=dict)
    overrides: dict[str, Any] = _set_by(RUN, default_factory=dict)
    requires: str | None = _set_by(RUN, PROBE, default=None)
    label: str | None = _set_by(default=None)
    # Our explanation of a FLOPs gap to the paper (not the paper's words).
    flops_note: str | None = _set_by(RUN, SHARED, default=None)
    # Another table whose row of the same id this row *is* (trained once, reused): its runs live under that table.
    shared_from: str | None = _set_by(SHARED, key="from", default=None)
    # The dataset kinds (ila.data.kinds.DATASET_KINDS) the row is run on; None: every one. A table can then hold the
    # paper's own rows for its dataset and the embedded default's analogues side by side.
    datasets: list[Literal[DATASET_KINDS]] | None = _set_by(RUN, SHARED, PROBE, default=None)
    # The row's own backbone (a BackboneSpec's keys), instead of the profile's.
    backbone: dict[str, Any] | None = _set_by(RUN, default=None)
    # The row's own configuration as the paper reports it (a PaperConfig's keys), over the table's.
    paper_config: dict[str, Any] = _set_by(RUN, SHARED, PROBE, default_factory=dict)
    # The row another row is compared with (default: the table's reference), e.g. each scale's ILA with that scale's
    # Baseline.
    reference: str | None = _set_by(RUN, SHARED, PROBE, default=None)
    # A row the paper cites from another paper (its reference, e.g. "[15]"): numbers only, never run, never in our
    # statistics.
    cited: str | None = _set_by(CITED, default=None)
    # A linear probe (Table 12): the source row's runs ("<table>/<row>", where they are trained), each frozen with a
    # new linear head trained on the profile's probe dataset (seed for seed).
    probe: str | None = _set_by(PROBE, default=None)

    @property
    def run_table(self) -> str | None:
        """The table whose run directories hold this row's runs (None: the row's own table)."""
        return self.shared_from

    @property
    def variant(self) -> str:
        return self.model.get("variant", DEFAULT_VARIANT)

    def available(self) -> bool:
        return self.cited is None and self.variant in list_variants()

    def runs_on(self, dataset_kind: str | None) -> bool:
        return dataset_kind is None or self.datasets is None or dataset_kind in self.datasets


@dataclass
class Table:
    """An ablation file, filled by :func:`ila.config.build` from its top-level keys (its rows one by one)."""

    table: str
    title: str
    rows: list[Row]
    paper_config: dict[str, Any] = field(default_factory=dict)  # a PaperConfig's keys
    path: Path | None = field(default=None, metadata={KEY: None})  # the file it was read from
    reference: str | None = None  # the row every other row is compared with (default: the first)
    primary: str | None = None  # the measure rows are compared on (one of PAIRED_MEASURES; default top1)
    columns: list[str] | None = None  # the Markdown's metric columns (default: ila.tables.DEFAULT_COLUMNS)
    latency: bool = False  # a measured latency column (the workflow's `latency` rule)
    notes: list[str] = field(default_factory=list)  # our words for the Markdown's notes (what limits the table)

    @property
    def primary_measure(self) -> str:
        return self.primary or "top1"

    def compared_measures(self) -> list[str]:
        """The measures on which every pair of rows is compared (the claims ledger reads them): the primary, and
        each other paired measure the paper gives a number for in this table (Table 13's Top-1 (T), Table 5's
        Top-1)."""
        given = {key for row in self.rows for key in row.paper}
        return [self.primary_measure, *(m for m in PAIRED_MEASURES if m in given and m != self.primary_measure)]

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
        """The row's configuration as the table and the row give it (no defaults: see paper_model_config)."""
        return {**self.paper_config, **row.paper_config}

    def paper_model_config(self, row: Row, backbone: str | None = None, frames: int | None = None) -> dict[str, Any]:
        """The row's model as the paper built it (its backbone, frames and head), for its GFLOPs at the paper's
        configuration; ``backbone`` / ``frames`` count it at another."""
        paper = self.paper_config_of(row)
        return {**row.model, "backbone": backbone or paper.get("backbone", PAPER_MAIN_CONFIG["backbone"]),
                "num_frames": frames or paper.get("num_frames", PAPER_MAIN_CONFIG["num_frames"]),
                "head": paper.get("head", row.model.get("head", PAPER_MAIN_CONFIG["head"]))}

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(f"{self.path}: no row with id {row_id!r}")


def natural_key(name: str) -> list:
    """A sort key that compares the numbers in a name as numbers: table2 before table10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def table_files(directory: Path = ABLATIONS_DIR) -> list[Path]:
    """Every ablation file of ``directory`` (each ``<table>.yaml`` but the claims file), in name order."""
    return sorted(p for p in Path(directory).glob("*.yaml") if p.name != CLAIMS_FILE_NAME)


def load_tables(directory: Path = ABLATIONS_DIR) -> dict[str, Table]:
    """Every ablation file of ``directory``, read and checked, by table name."""
    return {path.stem: load_table(path) for path in table_files(directory)}


def keys_set_by(kind: str) -> list[str]:
    """The keys a row of ``kind`` (RUN, SHARED, PROBE, CITED) may set in its file."""
    return sorted(key for key, f in mapping_keys(Row).items() if kind in f.metadata["set_by"])


def row_kind(raw: dict[str, Any]) -> str:
    return next((kind for mark, kind in ROW_KIND_MARKS.items() if mark in raw), RUN)


def load_table(name_or_path: str | Path) -> Table:
    path = Path(name_or_path)
    if not path.suffix:
        path = ABLATIONS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise AblationError(f"{path}: ablation file not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise AblationError(f"{path}: expected a mapping of top-level keys, got {data!r}")
    if not isinstance(data.get("rows"), list):
        raise AblationError(f"{path}: rows: " + (f"expected a list of rows, got {data['rows']!r}" if "rows" in data
                                                  else "missing"))
    table = _built(Table, {**data, "rows": []}, str(path))  # the rows are built below, each named by its id
    table.path = path
    _built(PaperConfig, table.paper_config, str(path), "paper_config")
    if table.table != path.stem:
        raise AblationError(f"{path}: table: {table.table!r} must be the file's name ({path.stem!r}): the workflow "
                            "finds a table's file by it")
    seen = set()
    for i, raw in enumerate(data["rows"]):
        row = _row(raw, f"{path}: rows[{i}]", path)
        if row.id in seen:
            raise AblationError(f"{path}: rows[{i}]: duplicate id {row.id!r}")
        seen.add(row.id)
        table.rows.append(row)
    _check_references(table)
    return table


def _built(cls: type, data: Any, where: str, key: str = "") -> Any:
    """``build(cls, data, key)``, its error an AblationError that names ``where`` (the file, and the row)."""
    try:
        return build(cls, data, key)
    except ConfigError as exc:
        raise AblationError(f"{where}: {exc}") from None


def _check_references(table: Table) -> None:
    """The table's reference is one of its rows, and a row's own reference a row the suite runs."""
    ids = [r.id for r in table.rows]
    if table.reference is not None and table.reference not in ids:
        raise AblationError(f"{table.path}: reference {table.reference!r} is not a row id ({', '.join(sorted(ids))})")
    run = sorted(r.id for r in table.rows if not r.cited)
    for row in table.rows:
        if row.reference is not None and row.reference not in run:
            raise AblationError(f"{table.path}: row {row.id!r}: reference {row.reference!r} is not the id of a row "
                                f"the suite runs ({', '.join(run)})")


def _row(raw: Any, where: str, path: Path) -> Row:
    if not isinstance(raw, dict):
        raise AblationError(f"{where}: expected a mapping")
    if "id" not in raw:
        raise AblationError(f"{where}: id: missing")
    if not re.fullmatch(r"[a-z0-9_]+", str(raw["id"])):
        raise AblationError(f"{where}: id {raw['id']!r} must be lower-case letters, digits and '_'")
    kind = row_kind(raw)
    _check_keys_of_kind(raw, kind, where)
    if kind == SHARED:
        raw = _shared_row(raw, where, path)
    elif kind == PROBE:
        raw = _probe_row(raw, where, path)
    elif kind == RUN and "model" not in raw:
        raise AblationError(f"{where}: model: missing (a row of the table's own says what it trains)")
    where = f"{path}: row {raw['id']!r}"
    row = _built(Row, raw, where)
    if row.datasets == []:
        raise AblationError(f"{where}: datasets: expected one or more of {list(DATASET_KINDS)} (leave it out: "
                            "every kind)")
    if row.backbone is not None:
        _built(BackboneSpec, row.backbone, where, "backbone")
    _built(PaperConfig, row.paper_config, where, "paper_config")
    if not row.cited and not row.available() and not row.requires:
        raise AblationError(f"{where}: model.variant: unknown model variant {row.variant!r}; expected one of "
                            f"{list_variants()} (a row whose method is not built yet names what it waits for under "
                            "`requires:` and is skipped)")
    return row


def _check_keys_of_kind(raw: dict[str, Any], kind: str, where: str) -> None:
    allowed = keys_set_by(kind)
    extra = sorted(set(raw) - set(allowed))
    if not extra:
        return
    if kind == RUN:
        raise AblationError(f"{where}: unknown keys {extra}; expected a subset of {allowed} (or, for a row of "
                            f"another kind, one of {sorted(ROW_KIND_MARKS)})")
    raise AblationError(f"{where}: {FEW_KEYS_BECAUSE[kind].format_map(raw)}; it may only set {allowed}, not {extra}")


def _shared_row(raw: dict[str, Any], where: str, path: Path) -> dict[str, Any]:
    """A row reused from another table: the source row's fields, with this table's name, paper numbers and label."""
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
