# ILA reproduction workflow: data -> (mini-CLIP pretraining) -> train every ablation row -> evaluate -> tables.
#
#   snakemake --cores all results/table4.csv                                     # embedded default (CPU)
#   snakemake --cores all tables                                                 # every table of `tables`
#   snakemake --cores all && snakemake --report results/report.html              # tables, figures, one page
#   snakemake --cores all --configfile workflow/config/paper-k400.yaml results/table4.csv
#   snakemake --profile workflow/profiles/slurm --configfile workflow/config/paper-k400.yaml
#
# Rows come from ablations/<table>.yaml; settings from workflow/config/*.yaml, validated against
# workflow/schemas/config.schema.yaml (which also fills the defaults). ila.plan turns them into every job (each row's
# run config checked), so a bad key fails here, before any job starts; so does a dataset on disk that is not the
# config's. The rules only read that plan (workflow/rules/common.smk).
import time

from snakemake.utils import min_version

min_version("9.0")


configfile: workflow.source_path("workflow/config/default.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"

include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


# The tables only: `snakemake --cores all tables` (those of `tables` with rows on the profile's dataset), and the claims
# ledger that judges the paper's claims by them.
rule tables:
    input:
        expand(in_results("{table}.{ext}"), table=PLAN.profile_tables(), ext=["csv", "md"]),
        in_results("claims.csv"),
        in_results("claims.md"),


# Everything: every table of `tables` and every figure (`snakemake --cores all`), what the report shows.
rule all:
    input:
        rules.tables.input,
        PLAN.figures(),
    default_target: True


# When this invocation's jobs started: what it wrote is what changed since (the listing printed on success).
RUN_STARTED = {}


onstart:
    RUN_STARTED["t"] = time.time()


onsuccess:
    print_results_summary(RUN_STARTED.get("t"))


onerror:
    print_results_summary(RUN_STARTED.get("t"), failed=True)
