# Helpers shared by the rules: the one place the workflow turns config + ablation files into jobs and paths.
import copy
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from ila.ablations import AblationError, load_table, row_run_config
from ila.config import ConfigError, resolve_run_config
from ila.paths import backbone_weights_file

ABLATIONS = Path(workflow.basedir) / "ablations"
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
CONDA_ENV = "../envs/ila.yaml"
# "Every core" for a rule's threads: Snakemake caps a job's threads at --cores and passes the capped value. Not
# workflow.cores, which only exists when --cores is given (`snakemake --report` has none).
ALL_CORES = 1024


def results_dir():
    """Where runs, tables, figures, logs and benchmarks go (config `results_dir`): `results` for real runs, the
    rehearsal's own directory for a rehearsal, so the two can never mix."""
    return config["results_dir"]


def in_results(path):
    """A path under the results directory (rule inputs, outputs, logs and benchmarks)."""
    return f"{results_dir()}/{path}"


def table_runs_dir(wildcards):
    """A table's run directory, `<results_dir>/<table>` (what its writer and its training curves read)."""
    return in_results(wildcards.table)


def figure_stem(wildcards, output):
    """A figure rule's --out: its PNG's path without the suffix (the script writes the PNG and the PDF)."""
    return str(Path(output.png).with_suffix(""))


def standalone_profile():
    """A profile given with --configfile stands alone: Snakemake would merge it into the embedded default (the
    Snakefile's configfile), and the default's mini-CLIP settings (a linear head, 40 alignment channels, a frame
    cache) would leak into a paper profile that does not repeat every key. A profile that is a variation of the
    embedded default says `extends: default` (the smoke profile) and is merged as Snakemake does."""
    given = workflow.config_settings.overwrite_config
    if given.get("profile", "default") != "default" and given.get("extends") != "default":
        config.clear()
        config.update(copy.deepcopy(dict(given)))


def validate_config():
    """Fail before any job starts: the profile against its schema (the message names the dotted key), then every
    row of every ablation file as the run config its job would get (a bad value or a typo under `run:` would
    otherwise pass a dry run and fail only when training starts, after data and pretraining)."""
    import jsonschema

    # `--config seeds=[0,1]` arrives as strings: take integer strings as the integers they spell.
    if isinstance(config.get("seeds"), list):
        config["seeds"] = [int(s) if isinstance(s, str) and s.strip().lstrip("-").isdigit() else s
                           for s in config["seeds"]]
    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        message = err.message
        if err.absolute_path and err.absolute_path[0] == "seeds":
            key = "seeds"
            message = f"expected a list of distinct non-negative integers (e.g. [0, 1, 2]), got {config['seeds']!r}"
        raise WorkflowError(f"config error: {key}: {message} (schema: {SCHEMA.relative_to(workflow.basedir)})")
    validate(config, str(SCHEMA))  # fills the schema's defaults
    check_targets_directory()
    missing = [t for t in config["tables"] if not (ABLATIONS / f"{t}.yaml").is_file()]
    if missing:
        raise WorkflowError(f"config error: tables: no ablation file for {missing} (expected ablations/<name>.yaml; "
                            f"there are {sorted(p.stem for p in ABLATIONS.glob('*.yaml'))})")
    rows = []
    for path in sorted(ABLATIONS.glob("*.yaml")):
        try:
            spec = load_table(path)
        except AblationError as exc:
            raise WorkflowError(f"ablation error: {exc}") from None
        # A shared row is checked in its own table, under the name of that table's file; a probe row after every
        # source row, so that a source's error is named in the source's file.
        rows += [(bool(row.probe), path, spec, row) for row in spec.available_rows(dataset_kind())
                 if not row.shared_from]
    for _, path, spec, row in sorted(rows, key=lambda item: item[0]):
        try:
            resolve_run_config(row_run_config(base_run_config(row, path.name), spec, row,
                                              config.get("operator_args", {}), probe_run=config["probe"]["run"]))
        except ConfigError as exc:
            raise WorkflowError(
                f"config error: {exc} (in the run config of row {row.id!r} of {path.name}: the profile's "
                "`run:` section merged with the row's model and overrides)"
            ) from None
    check_rehearsal_skips()  # after the ablation files' own checks, which name a bad file better


def check_datasets():
    """Fail before any job starts when a dataset on disk is not the one the config describes: a synthetic benchmark
    that a user regenerated with other options (synth_dataset sees its lists and plans nothing, so the runs
    would silently train on it), or a `lists` dataset without its files."""
    if dataset_kind() == "lists":
        check_lists_dataset()
    if dataset_kind() == "synth":
        check_synth_dataset(dataset_root(), config["dataset"]["synth_preset"], "dataset.synth_preset")
    if config["probe"]["dataset"]["kind"] == "synth" and probe_rows_used():
        check_synth_dataset(probe_root(), config["probe"]["dataset"]["synth_preset"], "probe.dataset.synth_preset")


def probe_rows_used():
    """Whether any ablation file has probe rows (Table 12's) on the profile's dataset, i.e. the probe set is used."""
    return any(row.probe for path in sorted(ABLATIONS.glob("*.yaml"))
               for row in load_table(path).available_rows(dataset_kind()))


def check_synth_dataset(root, preset, key):
    """``root`` (data/synth-<preset>), if generated already, holds the preset's spec (ila.data.synth.spec_mismatch,
    the comparison `ila synth` makes too; a synth.json older than a field counts as that field's default)."""
    from ila.data.synth import PRESETS, spec_mismatch

    if preset not in PRESETS:
        raise WorkflowError(f"config error: {key}: unknown synthetic preset {preset!r} (presets: {sorted(PRESETS)}; "
                            "for a benchmark of your own, `dataset: {kind: lists, root: ...}`)")
    differs = spec_mismatch(root, PRESETS[preset], wanted="in the profile")
    if differs:
        raise WorkflowError(
            f"{root} holds a synthetic benchmark made with another spec than the profile's preset {preset!r} "
            f"({root}/synth.json: {differs}), and the workflow would train on it as it is. Remove {root} (or move "
            "it) and rerun to generate the preset; for a custom benchmark use `ila synth --out data/my-synth ...` "
            "and a profile with `dataset: {kind: lists, root: data/my-synth}`"
        )


def check_lists_dataset():
    """A `lists` dataset is used as it is (nothing in the workflow makes or lists it): its root, lists and labels
    must exist, and the labels must read. Its videos are checked by training (data.max_bad_fraction), not here:
    opening them all would slow every parse of a large dataset."""
    from ila.data.annotations import AnnotationError, read_labels

    root = Path(dataset_root())
    what = ("dataset.kind: lists reads train.txt and val.txt (`<video path relative to the root> <label id>` per "
            "line), labels.csv (`id,name` header) and the videos they list, in the Kinetics-400 list format")
    if not root.is_dir():
        raise WorkflowError(f"config error: dataset.root: {root} is not a directory ({what})")
    missing = [f for f in dataset_files(str(root)).values() if not Path(f).is_file()]
    if missing:
        raise WorkflowError(f"config error: dataset.root: missing {', '.join(missing)} ({what})")
    try:
        classes = read_labels(root / "labels.csv")
    except AnnotationError as exc:
        raise WorkflowError(f"config error: dataset.root: {exc}") from None
    # VideoDataset's own check, made here too so that it fails before pretraining rather than in every training job:
    # the embedded default's `hflip: remap` needs mirror classes that a dataset of one's own rarely declares.
    if config["run"].get("data", {}).get("hflip") == "remap" and all(c.flip_to is None for c in classes):
        raise WorkflowError(f"config error: run.data.hflip: 'remap' needs a flip_to column in {root}/labels.csv; "
                            "set `run: {data: {hflip: \"on\"}}` if flipping never changes a class, or \"off\"")


def rehearsal_skips():
    """The rows a rehearsal leaves out, `<table>/<row>` -> why (none outside a rehearsal)."""
    return config["rehearsal"]["skip"] if config["rehearsal"]["enabled"] else {}


def skipped_rows(table):
    """Rows of ``table`` that the rehearsal skips -> why: skipped by name, shared from a skipped run, or probing one."""
    skips = rehearsal_skips()
    return {row.id: skips[key] for row in table_spec(table).available_rows(dataset_kind())
            for key in (f"{row.run_table or table}/{row.id}", row.probe) if key in skips}


def check_targets_directory():
    """A file target under the other results directory names no output of this invocation (a rehearsal writes under
    its own, a real run under results/): say which, before Snakemake's bare "no rule to produce" (rule names such as
    `tables` and `all` are left alone)."""
    here = Path(results_dir())
    for target in map(Path, command_line_targets()):
        top = Path(target.parts[0])
        if len(target.parts) > 1 and top.name in ("results", "rehearsal") and top != here:
            how = ("drop workflow/config/rehearsal.yaml" if config["rehearsal"]["enabled"]
                   else "add workflow/config/rehearsal.yaml after the profile")
            raise WorkflowError(f"target {target}: this invocation writes under {here}/, not {top}/ (config "
                                f"results_dir); ask for {here / target.relative_to(top)}, or {how}")


def command_line_targets():
    """The targets of the `snakemake` command that is parsing this workflow, read with Snakemake's own parser
    (Snakemake hands them to the workflow only after parsing it); none when it was started another way."""
    import sys

    from snakemake.cli import get_argument_parser

    if "snakemake" not in Path(sys.argv[0]).parts[-2:] and Path(sys.argv[0]).name != "snakemake":
        return []
    try:
        args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    except SystemExit:
        return []
    return sorted(args.targets or [])


def check_rehearsal_skips():
    """Each `rehearsal.skip` key names a row whose absence the plan can take, else it fails here, before any job:
    a typo would skip nothing, a shared row is skipped in its own table, and a table's reference row or a row the
    figures look inside cannot be left out (the table or figure would fail after every training)."""
    if not config["rehearsal"]["skip"]:
        return
    needed = {f"table4/{row}": "figures 5-7 look inside it" for row in [*HEATMAP_ROWS.values(), "ila_released"]}
    for path in sorted(ABLATIONS.glob("*.yaml")):
        spec = load_table(path)
        if spec.available_rows(dataset_kind()):
            ref = spec.reference_row(dataset_kind())
            needed.setdefault(f"{ref.run_table or spec.table}/{ref.id}", f"{spec.table}'s reference row")
    for key in config["rehearsal"]["skip"]:
        table, _, row_id = key.partition("/")
        rows = {r.id: r for r in table_spec(table).rows} if (ABLATIONS / f"{table}.yaml").is_file() else {}
        if row_id not in rows:
            why = "names no row; expected <table>/<row>, e.g. table1/ila_l14_336_16f"
        elif rows[row_id].run_table:
            why = f"is {rows[row_id].run_table}'s run, shared: skip {rows[row_id].run_table}/{row_id}"
        elif key in needed:
            why = f"cannot be left out: {needed[key]}"
        else:
            continue
        raise WorkflowError(f"config error: rehearsal.skip: {key!r} {why}")


def print_results_summary(started, failed=False):
    """After a run that executed jobs (Snakemake calls onsuccess neither on a dry run nor when nothing was to be
    done): the tables and figures it wrote, and what to open next; a rehearsal's summary first (also when it
    failed): the jobs run, failed and skipped, and the seconds per job kind."""
    import os

    from ila.rehearsal import rehearsal_summary
    from ila.workflow_summary import DEFAULT_MLFLOW_URI, summary_lines, written_results

    if started is None:
        return
    if config["rehearsal"]["enabled"]:
        skipped = {f"{t}/{row}": why for t in config["tables"] for row, why in skipped_rows(t).items()}
        skipped.update({f"figures/curves_{t}": "plots a skipped row" for t in skipped_curves()})
        print("\n".join(rehearsal_summary(Path(results_dir()), started, skipped)))
    if failed:
        return
    tables, figures = written_results(Path(results_dir()), started)
    uri = config.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI
    # As given on the command line where that was under the working directory, else absolute.
    configfiles = [f if os.path.relpath(f).startswith("..") else os.path.relpath(f)
                   for f in map(os.path.abspath, workflow.config_settings.configfiles)]
    print("\n".join(summary_lines(tables, figures, uri, configfiles, results_dir())))


def table_spec(table):
    return load_table(ABLATIONS / f"{table}.yaml")


def profile_tables():
    """The tables of `tables` that have rows on the profile's dataset (Table 2's are SSv2's and the embedded
    default's; Kinetics-400's profile leaves it out)."""
    return [t for t in config["tables"] if table_spec(t).available_rows(dataset_kind())]


def dataset_kind():
    return config["dataset"]["kind"]


def row_ids(table):
    """Rows whose method is implemented and that run on the profile's dataset; the others are listed as pending in
    the table's notes."""
    return [row.id for row in table_spec(table).available_rows(dataset_kind())]


def dataset_root():
    ds = config["dataset"]
    return f"data/synth-{ds['synth_preset']}" if ds["kind"] == "synth" else ds["root"]


def dataset_files(root=None):
    root = root or dataset_root()
    return {"train": f"{root}/train.txt", "val": f"{root}/val.txt", "labels": f"{root}/labels.csv"}


def probe_root():
    """Where Table 12's linear probes train and test: the transfer set of new motion families on the embedded
    default, SSv2 for the Kinetics-400 profile (config `probe.dataset`)."""
    probe = config["probe"]["dataset"]
    return f"data/synth-{probe['synth_preset']}" if probe["kind"] == "synth" else probe["root"]


def row_dataset_files(table, row_id):
    """The dataset a row's jobs read: the profile's, or the probe dataset for a probe row."""
    return dataset_files(probe_root() if table_spec(table).row(row_id).probe else None)


def probe_source(table, row_id, seed):
    """A probe row's source run: the run directory whose trained checkpoint it starts from (same seed)."""
    row = table_spec(table).row(row_id)
    return in_results(f"{row.probe}/seed{seed}") if row.probe else None


def probe_source_trained(wildcards):
    """What a probe row's training waits for: its source run trained (nothing for another row)."""
    source = probe_source(wildcards.table, wildcards.row, wildcards.seed)
    return [f"{source}/train.done"] if source else []


def dataset_root_of_output(levels):
    """A data rule's dataset root, from its first output `levels` directories down (not a hard-coded prefix)."""
    return lambda wildcards, output: str(Path(output[0]).parents[levels - 1])


def prepared_video_dir():
    """Where the lists of a real dataset point: the extracted videos, or their re-encoded copies."""
    size = config["dataset"]["short_side"]
    return f"videos_s{size}" if size else "videos"


def prepared_video_markers():
    """The per-split markers the lists wait for: Kinetics-400's train and val, SSv2's one folder of clips."""
    splits = ["train", "val"] if config["dataset"]["kind"] == "kinetics400" else ["all"]
    return [f"{dataset_root()}/{prepared_video_dir()}/{split}.done" for split in splits]


def k400_replacement_input():
    return f"{dataset_root()}/downloads/replacement.done" if config["dataset"]["replacement"] else []


def row_backbone(row=None, where="the profile"):
    """The backbone a row starts from, ``(open_clip name, weights file or pretrained tag or None)``: the row's own
    (``backbone:`` in its ablation file) or the profile's. The embedded default pretrains its backbones here
    (``pretraining``: contrastive or supervised); the paper profiles fetch weights for a ``tag``."""
    own = (row.backbone if row is not None else None) or {}
    backbone = config["backbone"]
    name = own.get("name", backbone["name"])
    if config["pretrain"]["enabled"]:
        if "tag" in own:
            raise WorkflowError(f"config error: row {row.id!r} of {where}: backbone.tag {own['tag']!r} names fetched "
                                "weights, but this profile pretrains its backbones (pretrain.enabled); give the row "
                                "`datasets:` so that it runs only on the paper's dataset")
        return name, backbone_weights_file(name, pretraining=own.get("pretraining", "contrastive"))
    if "pretraining" in own:
        raise WorkflowError(f"config error: row {row.id!r} of {where}: backbone.pretraining is the embedded "
                            "default's own pretraining, off in this profile; give the row `datasets: [synth]`")
    if not own:
        return name, backbone.get("weights_file") or backbone.get("pretrained_tag")
    tag = own.get("tag") or backbone.get("pretrained_tag")
    return name, backbone_weights_file(name, tag=tag)


def weights_source_args(wildcards):
    """`ila fetch-weights`'s --url/--sha256 for weights the config sends to a source of its own (`weights:`, e.g. a
    lab mirror); nothing for the others (their own source)."""
    import shlex

    source = config["weights"].get(f"{wildcards.backbone}-{wildcards.tag}")
    if not source:
        return ""
    return f"--url {shlex.quote(source['url'])}" + (f" --sha256 {source['sha256']}" if "sha256" in source else "")


def row_weights(table, row_id):
    """The weight file a row's jobs wait for (built by the pretraining or fetching rules), or None."""
    spec = table_spec(table)
    weights = row_backbone(spec.row(row_id), f"{table}.yaml")[1]
    return weights if weights and weights.endswith(".pt") else None


def base_run_config(row=None, where="the profile"):
    run = copy.deepcopy(config["run"])
    run.setdefault("data", {})["root"] = dataset_root()
    if row is not None and row.probe:  # the probe dataset (its settings: row_run_config's probe_run)
        run["data"]["root"] = probe_root()
    model = run.setdefault("model", {})
    model["backbone"], model["pretrained"] = row_backbone(row, where)
    run.setdefault("tracking", {})
    if config.get("mlflow_uri"):
        run["tracking"]["uri"] = config["mlflow_uri"]
    run["tracking"]["tags"] = {"profile": config["profile"], "dataset": Path(run["data"]["root"]).name}
    if config["rehearsal"]["enabled"]:  # also in a store of its own (the overlay's mlflow_uri)
        run["tracking"]["tags"]["rehearsal"] = "true"
    return run


def row_config(wildcards):
    spec = table_spec(wildcards.table)
    row = spec.row(wildcards.row)
    return row_run_config(
        base_run_config(row, f"{wildcards.table}.yaml"),
        spec,
        row,
        config.get("operator_args", {}),
        output_dir=in_results(f"{wildcards.table}/{wildcards.row}/seed{wildcards.seed}"),
        seed=int(wildcards.seed),
        probe_from=row.probe and f"{probe_source(wildcards.table, row.id, wildcards.seed)}/checkpoints/last.pt",
        probe_run=config["probe"]["run"],
    )


def run_outputs(table, name):
    """One file per (row, seed) of a table: every seed of every implemented row. A row shared from another table
    (`from:` in the ablation file) is that table's run, trained once: its files live under that table."""
    return [
        in_results(f"{row.run_table or table}/{row.id}/seed{seed}/{name}")
        for row in table_spec(table).available_rows(dataset_kind()) if row.id not in skipped_rows(table)
        for seed in config["seeds"]
    ]


def table_inputs(table):
    """What a table reads per (row, seed): the evaluation's metrics, and the EMD for a table about it (Table 5)."""
    spec = table_spec(table)
    if not spec.available_rows(dataset_kind()):
        kinds = sorted({k for r in spec.rows if not r.cited for k in (r.datasets or ["any"])})
        raise WorkflowError(f"{table}: no row of ablations/{table}.yaml runs on dataset {dataset_kind()!r} (its rows "
                            f"run on {', '.join(kinds)}); use a profile for one of those")
    names = ["metrics.json"] + (["emd.json"] if table_spec(table).primary == "emd" else [])
    return [path for name in names for path in run_outputs(table, name)]


def latency_input(table):
    """The latency measurement a table with a latency column reads (none for the others)."""
    return in_results(f"latency/{table}.json") if table_spec(table).latency else []


def skip_args(table):
    """The table writer's --skip ROW=WHY for the rows this rehearsal skips (the table says so in its notes)."""
    import shlex

    return " ".join(f"--skip {shlex.quote(f'{row}={why}')}" for row, why in skipped_rows(table).items())


def mlflow_args():
    """How the table writer reaches the runs' MLflow store (or that tracking is off in this profile)."""
    if not config["run"].get("tracking", {}).get("enabled", True):
        return "--no-mlflow"
    uri = f"--mlflow-uri {config['mlflow_uri']}" if config.get("mlflow_uri") else ""
    return f"{uri} --tag rehearsal=true" if config["rehearsal"]["enabled"] else uri


def train_launcher():
    gpus = int(config["gpus_per_job"])
    return f"torchrun --standalone --nproc_per_node {gpus} -m ila.cli" if gpus > 1 else "ila"


def cost_at(table, row):
    """`ila evaluate`'s --cost-at: the row's configuration in the paper; none for a row on a backbone of its own
    that the paper has no configuration for (e.g. the embedded default's half-width mini-CLIP)."""
    spec = table_spec(table)
    row = spec.row(row)
    if row.backbone and "backbone" not in row.paper_config:
        return ""
    paper = spec.paper_config_of(row)
    # The paper's head too: a profile may train another (the embedded default's linear head), but the paper's
    # GFLOPs column counts each row as the paper built it.
    return f"--cost-at {paper.get('backbone', 'ViT-B-32')}:{paper.get('num_frames', 8)}:{paper.get('head', 'text')}"


# Figures (rules/figures.smk).
FIGURES = str(Path(workflow.basedir) / "analysis" / "make_figures.py")


def figure_run(row, name="run.yaml"):
    """Figures 5-7 look inside Table 4's trained runs, the profile's first seed."""
    return in_results(f"table4/{row}/seed{config['seeds'][0]}/{name}")


HEATMAP_ROWS = {"Divided ST": "divided_st", "ATA": "ata", "ILA": "ila"}


def skipped_curves():
    """Tables whose training curves a rehearsal leaves out: the plot draws every row, and it skips some."""
    return [t for t in dict.fromkeys([*profile_tables(), "table5"]) if skipped_rows(t)]


def all_figures():
    tables = list(dict.fromkeys([*profile_tables(), "table5"]))
    owned = [t for t in tables if any(not r.run_table for r in table_spec(t).available_rows(dataset_kind()))
             and t not in skipped_curves()]
    return [
        *[in_results(f"figures/{t}.png") for t in tables],
        *([in_results("figures/figure1.png")] if "table1" in tables else []),  # Table 1's runs beside the paper's
        *[in_results(f"figures/figure5_{row}.png") for row in ("ila", "ila_released")],
        in_results("figures/figure6.png"),
        in_results("figures/figure7.png"),
        *[in_results(f"figures/curves_{t}.png") for t in owned],
    ]
