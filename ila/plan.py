"""The workflow's plan: a profile and the ablation files turned into every job the workflow runs, before any runs.

A profile (``workflow/config/*.yaml``, merged as Snakemake merges config files) is checked against its schema, which
also fills its defaults; the ablation files are read once; every (table, row, seed) the profile trains becomes a
:class:`Job` holding its run config (checked by the same strict builder as ``ila train``), its backbone weights, the
dataset files it reads, its probe source and the configuration its cost is counted at. The Snakefile's input
functions only read this plan (``workflow/rules/common.smk``), and the checks a dry run made can be made here, in
process. Torch-free: parsing the workflow never loads torch.
"""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ila.ablations import (
    ABLATIONS_DIR,
    PAPER_MAIN_CONFIG,
    AblationError,
    Row,
    Table,
    deep_merge,
    load_tables,
    row_run_config,
)
from ila.claims import CLAIMS_FILE_NAME, load_claims
from ila.config import PretrainConfig, resolve_run_config
from ila.data.kinds import check_dataset_kind
from ila.errors import ConfigError
from ila.paths import PRETRAINING_OBJECTIVES, backbone_weights_file, run_dir, synth_root

PROJECT_DIR = ABLATIONS_DIR.parent
SCHEMA = PROJECT_DIR / "workflow" / "schemas" / "config.schema.yaml"
# Figures 6 and 7 (attention heatmaps) look inside these rows of Table 4's runs, Figure 5 inside ILA's two.
HEATMAP_ROWS = {"Divided ST": "divided_st", "ATA": "ata", "ILA": "ila"}
FIGURE5_ROWS = ("ila", "ila_released")
# The results directories a target can name: this invocation's, or the other one (a rehearsal's, a real run's).
RESULTS_DIRS = ("results", "rehearsal")


class PlanError(ConfigError):
    """A profile, ablation file or dataset on disk that the workflow cannot plan from (the message says which)."""


@dataclass(frozen=True)
class Job:
    """One training of one row with one seed, and everything its jobs (train, evaluate, EMD) read."""

    table: str  # the table whose run directories hold it (a shared row's source table)
    row: Row
    seed: int
    run_dir: str
    config: dict[str, Any]  # the run config written to <run_dir>/run.yaml
    weights: str | None  # the backbone's weights file (built by pretraining or fetching), if any
    dataset: dict[str, str]  # train/val/labels files
    probe_source: str | None  # a probe row's source run directory (same seed)
    cost_at: str | None  # `ila evaluate --cost-at`: the row as the paper built it (backbone:frames:head)


# --------------------------------------------------------------------------- the profile


def standalone_profile(merged: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A profile given on the command line stands alone, unless it says ``extends: default``: Snakemake merges it
    into the embedded default, whose mini-CLIP settings (a linear head, 40 alignment channels, a frame cache) would
    otherwise leak into a paper profile that does not repeat every key."""
    if given.get("profile", "default") != "default" and given.get("extends") != "default":
        return copy.deepcopy(dict(given))
    return merged


def validate_profile(config: Mapping[str, Any], schema_path: Path = SCHEMA) -> dict[str, Any]:
    """The profile checked against its schema (the message names the dotted key), with the schema's defaults and
    the library's (pretraining) filled in."""
    import jsonschema

    config = copy.deepcopy(dict(config))
    # `--config seeds=[0,1]` arrives as strings: take integer strings as the integers they spell.
    if isinstance(config.get("seeds"), list):
        config["seeds"] = [int(s) if isinstance(s, str) and s.strip().lstrip("-").isdigit() else s
                           for s in config["seeds"]]
    schema = yaml.safe_load(schema_path.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        message = err.message
        if err.absolute_path and err.absolute_path[0] == "seeds":
            key = "seeds"
            message = f"expected a list of distinct non-negative integers (e.g. [0, 1, 2]), got {config['seeds']!r}"
        # Named from its project's root (workflow/schemas/...), whichever checkout the schema and the library are in.
        raise PlanError(f"config error: {key}: {message} (schema: {schema_path.relative_to(schema_path.parents[2])})")
    from snakemake.utils import validate  # fills the schema's defaults, recursively into objects

    validate(config, str(schema_path))
    try:
        check_dataset_kind(config["dataset"]["kind"])
    except ConfigError as exc:
        raise PlanError(f"config error: {exc}") from None
    for key in schema["properties"]["pretrain"]["properties"]:  # in the schema's order (a set's would vary by run)
        if key in PretrainConfig.__dataclass_fields__:
            config["pretrain"].setdefault(key, getattr(PretrainConfig, key))
    return config


# --------------------------------------------------------------------------- the plan


class Plan:
    """Every job and path of one invocation of the workflow, from a validated profile (:func:`validate_profile`)."""

    def __init__(self, config: Mapping[str, Any], ablations_dir: Path = ABLATIONS_DIR, targets: Sequence[str] = ()):
        self.config = config
        self.ablations_dir = Path(ablations_dir)
        self.results_dir = config["results_dir"]
        self.dataset_kind = config["dataset"]["kind"]
        self.seeds = list(config["seeds"])
        self.tables = self._read_tables()
        self._check_tables()
        self._check_targets(targets)
        self.targets = list(targets)
        self.claims_file = self.ablations_dir / CLAIMS_FILE_NAME
        self.claims = self._read_claims()
        self.jobs = self._plan_jobs()
        self._check_rehearsal_skips()

    def _read_tables(self) -> dict[str, Table]:
        try:
            return load_tables(self.ablations_dir)
        except AblationError as exc:
            raise PlanError(f"ablation error: {exc}") from None

    def _read_claims(self) -> list:
        if not self.claims_file.is_file():
            return []
        try:
            return load_claims(self.claims_file, self.tables)
        except AblationError as exc:
            raise PlanError(f"claims error: {exc}") from None

    def _check_tables(self) -> None:
        missing = [t for t in self.config["tables"] if t not in self.tables]
        if missing:
            raise PlanError(f"config error: tables: no ablation file for {missing} (expected ablations/<name>.yaml; "
                            f"there are {sorted(self.tables)})")

    def _check_targets(self, targets: Sequence[str]) -> None:
        """A file target under the other results directory names no output of this invocation: say which, before
        Snakemake's bare "no rule to produce" (rule names such as `tables` are left alone)."""
        here = Path(self.results_dir)
        for target in map(Path, targets):
            top = Path(target.parts[0])
            if len(target.parts) > 1 and top.name in RESULTS_DIRS and top != here:
                how = ("drop workflow/config/rehearsal.yaml" if self.rehearsal
                       else "add workflow/config/rehearsal.yaml after the profile")
                raise PlanError(f"target {target}: this invocation writes under {here}/, not {top}/ (config "
                                f"results_dir); ask for {here / target.relative_to(top)}, or {how}")

    # ----------------------------------------------------------------------- paths

    def in_results(self, path: str) -> str:
        """A path under the results directory (rule inputs, outputs, logs and benchmarks)."""
        return f"{self.results_dir}/{path}"

    @property
    def rehearsal(self) -> bool:
        return bool(self.config["rehearsal"]["enabled"])

    @cached_property
    def dataset_root(self) -> str:
        ds = self.config["dataset"]
        return synth_root(ds["synth_preset"]) if ds["kind"] == "synth" else ds["root"]

    @cached_property
    def probe_root(self) -> str:
        """Where Table 12's linear probes train and test: the transfer set of new motion families on the embedded
        default, SSv2 for the Kinetics-400 profile (config `probe.dataset`)."""
        probe = self.config["probe"]["dataset"]
        return synth_root(probe["synth_preset"]) if probe["kind"] == "synth" else probe["root"]

    def dataset_files(self, root: str | None = None) -> dict[str, str]:
        root = root or self.dataset_root
        return {"train": f"{root}/train.txt", "val": f"{root}/val.txt", "labels": f"{root}/labels.csv"}

    @property
    def prepared_video_dir(self) -> str:
        """Where the lists of a real dataset point: the extracted videos, or their re-encoded copies."""
        size = self.config["dataset"]["short_side"]
        return f"videos_s{size}" if size else "videos"

    def prepared_video_markers(self) -> list[str]:
        """The per-split markers the lists wait for: Kinetics-400's train and val, SSv2's one folder of clips."""
        splits = ["train", "val"] if self.dataset_kind == "kinetics400" else ["all"]
        return [f"{self.dataset_root}/{self.prepared_video_dir}/{split}.done" for split in splits]

    # ----------------------------------------------------------------------- tables and rows

    def table(self, name: str) -> Table:
        return self.tables[name]

    def rows(self, table: str) -> list[Row]:
        """The rows of ``table`` that run on the profile's dataset (the others are pending or cited)."""
        return self.tables[table].available_rows(self.dataset_kind)

    def profile_tables(self) -> list[str]:
        """The tables of `tables` with rows on the profile's dataset (Kinetics-400's profile leaves Table 2 out)."""
        return [t for t in self.config["tables"] if self.rows(t)]

    def probe_rows_used(self) -> bool:
        return any(row.probe for table in self.tables for row in self.rows(table))

    # ----------------------------------------------------------------------- jobs

    def _plan_jobs(self) -> dict[tuple[str, str, int], Job]:
        """Every (table, row, seed) trained, each row's run config checked before any job: a bad value or a typo
        under `run:` would otherwise pass a dry run and fail only when training starts. A shared row is its own
        table's job; probe rows come after every source row, so that a source's error is named in its own file."""
        rows = [(table, row) for table in self.tables for row in self.rows(table) if not row.shared_from]
        jobs = {}
        for table, row in sorted(rows, key=lambda item: bool(item[1].probe)):
            try:
                for seed in self.seeds:
                    jobs[table, row.id, seed] = job = self._job(self.tables[table], row, seed)
                resolve_run_config(job.config)
            except PlanError:
                raise
            except ConfigError as exc:
                raise PlanError(
                    f"config error: {exc} (in the run config of row {row.id!r} of {table}.yaml: the profile's "
                    "`run:` section merged with the row's model and overrides)") from None
        return jobs

    def _job(self, spec: Table, row: Row, seed: int) -> Job:
        where = f"{spec.table}.yaml"
        directory = self.in_results(run_dir(spec.table, row.id, seed))
        probe_source = self.in_results(run_dir(*row.probe.split("/"), seed)) if row.probe else None
        config = row_run_config(
            self._base_run_config(row, where), spec, row, self.config.get("operator_args", {}),
            output_dir=directory, seed=seed,
            probe_from=probe_source and f"{probe_source}/checkpoints/last.pt", probe_run=self.config["probe"]["run"],
        )
        weights = self.row_backbone(row, where)[1]
        return Job(spec.table, row, seed, directory, config, weights if weights and weights.endswith(".pt") else None,
                   self.dataset_files(self.probe_root if row.probe else None), probe_source, self._cost_at(spec, row))

    def job(self, table: str, row_id: str, seed: int | str) -> Job:
        """The planned job of a run directory's (table, row, seed); a PlanError for one the plan has not."""
        try:
            return self.jobs[table, row_id, int(seed)]
        except KeyError:
            rows = {r for t, r, _ in self.jobs if t == table}
            raise PlanError(f"{run_dir(table, row_id, seed)}: not a run of this plan ({table} runs "
                            f"{sorted(rows) or 'nothing'} with seeds {self.seeds}; a row shared from another table "
                            "has its runs under that table)") from None

    def row_backbone(self, row: Row | None = None, where: str = "the profile") -> tuple[str, str | None]:
        """The backbone a row starts from, ``(open_clip name, weights file or pretrained tag or None)``: the row's
        own (``backbone:`` in its ablation file) or the profile's. The embedded default pretrains its backbones
        (``pretraining``: contrastive or supervised); the paper profiles fetch weights for a ``tag``."""
        own = (row.backbone if row is not None else None) or {}
        backbone = self.config["backbone"]
        name = own.get("name", backbone["name"])
        if self.config["pretrain"]["enabled"]:
            if "tag" in own:
                raise PlanError(f"config error: row {row.id!r} of {where}: backbone.tag {own['tag']!r} names fetched "
                                "weights, but this profile pretrains its backbones (pretrain.enabled); give the row "
                                "`datasets:` so that it runs only on the paper's dataset")
            return name, backbone_weights_file(name, pretraining=own.get("pretraining", PRETRAINING_OBJECTIVES[0]))
        if "pretraining" in own:
            raise PlanError(f"config error: row {row.id!r} of {where}: backbone.pretraining is the embedded "
                            "default's own pretraining, off in this profile; give the row `datasets: [synth]`")
        if not own:
            return name, backbone.get("weights_file") or backbone.get("pretrained_tag")
        return name, backbone_weights_file(name, tag=own.get("tag") or backbone.get("pretrained_tag"))

    def _base_run_config(self, row: Row, where: str) -> dict[str, Any]:
        """The profile's `run:` section with the row's dataset, backbone and tracking."""
        run = copy.deepcopy(self.config["run"])
        run.setdefault("data", {})["root"] = self.probe_root if row.probe else self.dataset_root
        model = run.setdefault("model", {})
        model["backbone"], model["pretrained"] = self.row_backbone(row, where)
        run.setdefault("tracking", {})
        if self.config.get("mlflow_uri"):
            run["tracking"]["uri"] = self.config["mlflow_uri"]
        run["tracking"]["tags"] = {"profile": self.config["profile"], "dataset": Path(run["data"]["root"]).name}
        if self.rehearsal:  # also in a store of its own (the overlay's mlflow_uri)
            run["tracking"]["tags"]["rehearsal"] = "true"
        return run

    @staticmethod
    def _cost_at(spec: Table, row: Row) -> str | None:
        """The row's configuration in the paper (``backbone:frames:head``); none for a row on a backbone of its
        own that the paper has no configuration for (e.g. the embedded default's half-width mini-CLIP). The
        paper's head too: a profile may train another, but the paper's GFLOPs column counts each row as the paper
        built it."""
        if row.backbone and "backbone" not in row.paper_config:
            return None
        paper = {**PAPER_MAIN_CONFIG, **spec.paper_config_of(row)}
        return f"{paper['backbone']}:{paper['num_frames']}:{paper['head']}"

    # ----------------------------------------------------------------------- what a table reads

    def skipped_rows(self, table: str) -> dict[str, str]:
        """Rows of ``table`` a rehearsal skips -> why: skipped by name, shared from a skipped run, or probing one."""
        skips = self.config["rehearsal"]["skip"] if self.rehearsal else {}
        return {row.id: skips[key] for row in self.rows(table)
                for key in (f"{row.run_table or table}/{row.id}", row.probe) if key in skips}

    def run_outputs(self, table: str, name: str) -> list[str]:
        """One file per (row, seed) of a table: every seed of every row it runs. A row shared from another table
        (`from:` in the ablation file) is that table's run, trained once: its files live under that table."""
        skipped = self.skipped_rows(table)
        return [self.in_results(f"{run_dir(row.run_table or table, row.id, seed)}/{name}")
                for row in self.rows(table) if row.id not in skipped for seed in self.seeds]

    def table_inputs(self, table: str) -> list[str]:
        """What a table reads per (row, seed): the evaluation's metrics, and the EMD for a table about it (Table 5)."""
        spec = self.tables[table]
        if not self.rows(table):
            kinds = sorted({k for r in spec.rows if not r.cited for k in (r.datasets or ["any"])})
            raise PlanError(f"{table}: no row of ablations/{table}.yaml runs on dataset {self.dataset_kind!r} (its "
                            f"rows run on {', '.join(kinds)}); use a profile for one of those")
        names = ["metrics.json"] + (["emd.json"] if spec.primary == "emd" else [])
        return [path for name in names for path in self.run_outputs(table, name)]

    def latency_input(self, table: str) -> list[str]:
        """The latency measurement a table with a latency column reads (none for the others)."""
        return [self.in_results(f"latency/{table}.json")] if self.tables[table].latency else []

    # ----------------------------------------------------------------------- the claims ledger

    def _requested_tables(self) -> set[str]:
        """The tables this invocation's targets ask for: every table for `tables`, `all` or no target (the default
        target), else those named as `<results_dir>/<table>.csv|md`."""
        if not self.targets or {"tables", "all"} & set(self.targets):
            return set(self.profile_tables())
        here = Path(self.results_dir)
        return {Path(t).stem for t in self.targets if Path(t).parent == here and Path(t).suffix in (".csv", ".md")}

    def claims_tables(self) -> list[str]:
        """The tables the claims ledger judges: those this invocation writes, and those whose runs are all done
        (so that asking for the ledger alone judges what has run, and trains nothing); the others are "not run"."""
        requested = self._requested_tables()
        claimed = {c.table for c in self.claims if c.table}
        return [t for t in self.tables if t in claimed and self.rows(t)
                and (t in requested or all(Path(f).is_file() for f in self.table_inputs(t)))]

    def claims_inputs(self) -> list[str]:
        return [self.in_results(f"stats/{t}.json") for t in self.claims_tables()]

    # ----------------------------------------------------------------------- command-line arguments

    def mlflow_uri_args(self, flag: str = "--mlflow-uri") -> str:
        """The profile's tracking store for a command (nothing: the command's own default)."""
        return f"{flag} {shlex.quote(self.config['mlflow_uri'])}" if self.config.get("mlflow_uri") else ""

    def table_mlflow_args(self) -> str:
        """How the table writer reaches the runs' MLflow store (or that tracking is off in this profile)."""
        if not self.config["run"].get("tracking", {}).get("enabled", True):
            return "--no-mlflow"
        uri = self.mlflow_uri_args()
        return f"{uri} --tag rehearsal=true" if self.rehearsal else uri

    def skip_args(self, table: str) -> str:
        """The table writer's --skip ROW=WHY for the rows this rehearsal skips (the table says so in its notes)."""
        return " ".join(f"--skip {shlex.quote(f'{row}={why}')}" for row, why in self.skipped_rows(table).items())

    def weights_source_args(self, backbone: str, tag: str) -> str:
        """`ila fetch-weights`'s --url/--sha256 for weights the config sends to a source of its own (`weights:`,
        e.g. a lab mirror); nothing for the others (their own source)."""
        source = self.config["weights"].get(f"{backbone}-{tag}")
        if not source:
            return ""
        return f"--url {shlex.quote(source['url'])}" + (f" --sha256 {source['sha256']}" if "sha256" in source else "")

    def train_launcher(self) -> str:
        gpus = int(self.config["gpus_per_job"])
        return f"torchrun --standalone --nproc_per_node {gpus} -m ila.cli" if gpus > 1 else "ila"

    def seeds_arg(self) -> str:
        return " ".join(str(s) for s in self.seeds)

    # ----------------------------------------------------------------------- figures

    def figure_run(self, row: str, name: str = "run.yaml") -> str:
        """Figures 5-7 look inside Table 4's trained runs, the profile's first seed."""
        return self.in_results(f"{run_dir('table4', row, self.seeds[0])}/{name}")

    def _figure_tables(self) -> list[str]:
        return list(dict.fromkeys([*self.profile_tables(), "table5"]))

    def skipped_curves(self) -> list[str]:
        """Tables whose training curves a rehearsal leaves out: the plot draws every row, and it skips some."""
        return [t for t in self._figure_tables() if self.skipped_rows(t)]

    def figures(self) -> list[str]:
        """Every figure's PNG (each has its PDF beside it)."""
        tables = self._figure_tables()
        owned = [t for t in tables if any(not r.run_table for r in self.rows(t)) and t not in self.skipped_curves()]
        return [
            *[self.in_results(f"figures/{t}.png") for t in tables],
            *([self.in_results("figures/figure1.png")] if "table1" in tables else []),  # Table 1's runs, the paper's
            *[self.in_results(f"figures/figure5_{row}.png") for row in FIGURE5_ROWS],
            self.in_results("figures/figure6.png"),
            self.in_results("figures/figure7.png"),
            *[self.in_results(f"figures/curves_{t}.png") for t in owned],
        ]

    # ----------------------------------------------------------------------- rehearsal

    def skipped(self) -> dict[str, str]:
        """Everything a rehearsal leaves out -> why (its summary lists them)."""
        out = {f"{t}/{row}": why for t in self.config["tables"] for row, why in self.skipped_rows(t).items()}
        out.update({f"figures/curves_{t}": "plots a skipped row" for t in self.skipped_curves()})
        return out

    def _check_rehearsal_skips(self) -> None:
        """Each `rehearsal.skip` key names a row whose absence the plan can take: a typo would skip nothing, a
        shared row is skipped in its own table, and a table's reference row or a row the figures look inside cannot
        be left out (the table or figure would fail after every training)."""
        if not self.config["rehearsal"]["skip"]:
            return
        needed = {f"table4/{row}": "figures 5-7 look inside it" for row in [*HEATMAP_ROWS.values(), *FIGURE5_ROWS]}
        for name, spec in self.tables.items():
            if self.rows(name):
                ref = spec.reference_row(self.dataset_kind)
                needed.setdefault(f"{ref.run_table or name}/{ref.id}", f"{name}'s reference row")
        for key in self.config["rehearsal"]["skip"]:
            table, _, row_id = key.partition("/")
            rows = {r.id: r for r in self.tables[table].rows} if table in self.tables else {}
            if row_id not in rows:
                why = "names no row; expected <table>/<row>, e.g. table1/ila_l14_336_16f"
            elif rows[row_id].run_table:
                why = f"is {rows[row_id].run_table}'s run, shared: skip {rows[row_id].run_table}/{row_id}"
            elif key in needed:
                why = f"cannot be left out: {needed[key]}"
            else:
                continue
            raise PlanError(f"config error: rehearsal.skip: {key!r} {why}")


# --------------------------------------------------------------------------- datasets on disk


def check_datasets(plan: Plan) -> None:
    """Fail before any job starts when a dataset on disk is not the one the profile describes: a synthetic
    benchmark that a user regenerated with other options (its rule sees its lists and plans nothing, so the runs
    would silently train on it), or a `lists` dataset without its files."""
    config = plan.config
    if plan.dataset_kind == "lists":
        _check_lists_dataset(plan)
    if plan.dataset_kind == "synth":
        _check_synth_dataset(plan.dataset_root, config["dataset"]["synth_preset"], "dataset.synth_preset")
    if config["probe"]["dataset"]["kind"] == "synth" and plan.probe_rows_used():
        _check_synth_dataset(plan.probe_root, config["probe"]["dataset"]["synth_preset"], "probe.dataset.synth_preset")


def _check_synth_dataset(root: str, preset: str, key: str) -> None:
    """``root``, if generated already, holds the preset's spec (the comparison `ila synth` makes too)."""
    from ila.data.synth import PRESETS, spec_mismatch

    if preset not in PRESETS:
        raise PlanError(f"config error: {key}: unknown synthetic preset {preset!r} (presets: {sorted(PRESETS)}; "
                        "for a benchmark of your own, `dataset: {kind: lists, root: ...}`)")
    differs = spec_mismatch(root, PRESETS[preset], wanted="in the profile")
    if differs:
        raise PlanError(
            f"{root} holds a synthetic benchmark made with another spec than the profile's preset {preset!r} "
            f"({root}/synth.json: {differs}), and the workflow would train on it as it is. Remove {root} (or move "
            "it) and rerun to generate the preset; for a custom benchmark use `ila synth --out data/my-synth ...` "
            "and a profile with `dataset: {kind: lists, root: data/my-synth}`"
        )


def _check_lists_dataset(plan: Plan) -> None:
    """A `lists` dataset is used as it is: its root, lists and labels must exist and the labels must read. Its
    videos are checked by training (data.max_bad_fraction), not here: opening them all would slow every parse."""
    from ila.data.annotations import AnnotationError, read_labels

    root = Path(plan.dataset_root)
    what = ("dataset.kind: lists reads train.txt and val.txt (`<video path relative to the root> <label id>` per "
            "line), labels.csv (`id,name` header) and the videos they list, in the Kinetics-400 list format")
    if not root.is_dir():
        raise PlanError(f"config error: dataset.root: {root} is not a directory ({what})")
    missing = [f for f in plan.dataset_files().values() if not Path(f).is_file()]
    if missing:
        raise PlanError(f"config error: dataset.root: missing {', '.join(missing)} ({what})")
    try:
        classes = read_labels(root / "labels.csv")
    except AnnotationError as exc:
        raise PlanError(f"config error: dataset.root: {exc}") from None
    # VideoDataset's own check, made here too so that it fails before pretraining rather than in every training job:
    # the embedded default's `hflip: remap` needs mirror classes that a dataset of one's own rarely declares.
    if plan.config["run"].get("data", {}).get("hflip") == "remap" and all(c.flip_to is None for c in classes):
        raise PlanError(f"config error: run.data.hflip: 'remap' needs a flip_to column in {root}/labels.csv; "
                        "set `run: {data: {hflip: \"on\"}}` if flipping never changes a class, or \"off\"")


def load_profile(*paths: str | os.PathLike) -> dict[str, Any]:
    """Profiles read and merged as `snakemake --configfile A B` merges them over the embedded default (for tests
    and tools that plan without Snakemake)."""
    default = PROJECT_DIR / "workflow" / "config" / "default.yaml"
    merged = yaml.safe_load(default.read_text())
    given: dict[str, Any] = {}
    for path in paths:
        given = deep_merge(given, yaml.safe_load(Path(path).read_text()) or {})
    return standalone_profile(deep_merge(merged, given), given)
