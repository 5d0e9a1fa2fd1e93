# The rules' input functions. Every decision is ila.plan's: the profile validated and every job planned (with its run
# config checked) when the Snakefile is parsed, before any job starts; these functions only read that plan.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from ila.data.kinds import PUBLISHED_DATASETS
from ila.errors import IlaError
from ila.paths import run_dir, synth_root
from ila.plan import FIGURE5_ROWS, HEATMAP_ROWS, Plan, check_datasets, standalone_profile, validate_profile

WORKFLOW_DIR = Path(workflow.basedir)
CONDA_ENV = "../envs/ila.yaml"
FIGURES = str(WORKFLOW_DIR / "analysis" / "make_figures.py")
# "Every core" for a rule's threads: Snakemake caps a job's threads at --cores and passes the capped value. Not
# workflow.cores, which only exists when --cores is given (`snakemake --report` has none).
ALL_CORES = 1024


def command_line_targets():
    """The targets of the `snakemake` command parsing this workflow, read with Snakemake's own parser (Snakemake
    hands them to the workflow only after parsing it); none when it was started another way."""
    from snakemake.cli import get_argument_parser

    if "snakemake" not in Path(sys.argv[0]).parts[-2:] and Path(sys.argv[0]).name != "snakemake":
        return []
    try:
        args, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    except SystemExit:
        return []
    return sorted(args.targets or [])


def make_plan():
    """The plan of this invocation's profile; its config (defaults filled) replaces Snakemake's."""
    given = workflow.config_settings.overwrite_config
    try:
        profile = validate_profile(standalone_profile(dict(config), given), WORKFLOW_DIR / "workflow" / "schemas" /
                                   "config.schema.yaml")
        plan = Plan(profile, WORKFLOW_DIR / "ablations", command_line_targets())
        check_datasets(plan)
    except IlaError as exc:
        raise WorkflowError(str(exc)) from None
    config.clear()
    config.update(profile)
    return plan


PLAN = make_plan()
in_results = PLAN.in_results


# A {table} is an ablation file's name: results/claims.csv is the ledger's, not a table's.
wildcard_constraints:
    table="|".join(PLAN.tables),


def in_run(name):
    """A file of a run directory, as the rules' pattern over (table, row, seed): ila.paths.run_dir's layout."""
    return in_results(f"{run_dir('{table}', '{row}', '{seed}')}/{name}")


def table_spec_file(wildcards):
    return str(WORKFLOW_DIR / "ablations" / f"{wildcards.table}.yaml")


def table_runs_dir(wildcards):
    """A table's run directory, `<results_dir>/<table>` (what its writer and its training curves read)."""
    return in_results(wildcards.table)


def figure_stem(wildcards, output):
    """A figure rule's --out: its PNG's path without the suffix (the script writes the PNG and the PDF)."""
    return str(Path(output.png).with_suffix(""))


def job(wildcards):
    return PLAN.job(wildcards.table, wildcards.row, wildcards.seed)


def job_dataset(wildcards):
    """The dataset files a run reads: the profile's, or the probe dataset for a probe row."""
    return job(wildcards).dataset


def job_weights(wildcards):
    """The weights a run starts from, if they are built by the workflow. Ancient: they are checked when fetched
    (sha256, and that they load); a refetch (e.g. from another mirror) must not make every trained row stale."""
    return [ancient(w) for w in [job(wildcards).weights] if w]


def probe_source_trained(wildcards):
    """What a probe row's training waits for: its source run trained (nothing for another row)."""
    source = job(wildcards).probe_source
    return [f"{source}/train.done"] if source else []


def cost_at_args(wildcards):
    cost_at = job(wildcards).cost_at
    return f"--cost-at {cost_at}" if cost_at else ""


def dataset_root_of_output(levels):
    """A data rule's dataset root, from its first output `levels` directories down (not a hard-coded prefix)."""
    return lambda wildcards, output: str(Path(output[0]).parents[levels - 1])


def print_results_summary(started, failed=False):
    """After a run that executed jobs (none on a dry run): a rehearsal's summary (also when it failed), then the
    tables and figures written and what to open next."""
    from ila.workflow_summary import print_run_summary

    if started is not None:
        print_run_summary(PLAN, started, workflow.config_settings.configfiles, failed)
