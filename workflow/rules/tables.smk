# Tables: CSV + Markdown with our numbers (read from the runs' metrics.json) beside the paper's.


rule table:
    input:
        spec=table_spec_file,
        runs=lambda wc: PLAN.table_inputs(wc.table),
        latency=lambda wc: PLAN.latency_input(wc.table),
    output:
        csv=report(in_results("{table}.csv"), caption="../report/table.rst", category="Tables", subcategory="{table}"),
        md=in_results("{table}.md"),
        stats=in_results("stats/{table}.json"),
    log:
        in_results("logs/tables/{table}.log"),
    benchmark:
        in_results("benchmarks/tables/{table}.tsv")
    params:
        script=str(WORKFLOW_DIR / "analysis" / "make_table.py"),
        profile=config["profile"],
        dataset=Path(PLAN.dataset_root).name,
        kind=PLAN.dataset_kind,
        mlflow=PLAN.table_mlflow_args(),
        seeds=PLAN.seeds_arg(),
        latency=lambda wc, input: f"--latency {input.latency}" if input.latency else "",
        skip=lambda wc: PLAN.skip_args(wc.table),
        runs_dir=table_runs_dir,
    conda:
        CONDA_ENV
    shell:
        "python {params.script} --table {input.spec} --runs {params.runs_dir} --csv {output.csv} "
        "--md {output.md} --stats {output.stats} --seeds {params.seeds} --profile {params.profile} --dataset {params.dataset} --dataset-kind {params.kind} {params.latency} {params.mlflow} {params.skip} > {log} 2>&1"


# Inference latency of a table's rows (Table 9), measured alone: the job takes every core, so no training job runs
# beside it and skews the timings. At the paper's configuration by default, on whatever machine runs the workflow.
rule latency:
    input:
        spec=table_spec_file,
    output:
        in_results("latency/{table}.json"),
    log:
        in_results("logs/latency/{table}.log"),
    benchmark:
        in_results("benchmarks/latency/{table}.tsv")
    params:
        script=str(WORKFLOW_DIR / "benchmarks" / "latency.py"),
        config=config["latency"]["config"],
        batch=config["latency"]["batch"],
        reps=config["latency"]["reps"],
    threads: ALL_CORES
    conda:
        CONDA_ENV
    shell:
        "python {params.script} --table {input.spec} --config {params.config} --batch {params.batch} "
        "--reps {params.reps} --threads {threads} --json {output} > {log} 2>&1"


# The claims ledger: each claim of the paper (ablations/claims.yaml) with a verdict from the tables' own statistics.
# It judges the tables this invocation writes and those whose runs are done (ila.plan.Plan.claims_tables): asking
# for results/claims.md alone trains nothing; the claims of the other tables are "not run".
rule claims:
    input:
        claims=PLAN.claims_file,
        stats=PLAN.claims_inputs(),
    output:
        csv=report(in_results("claims.csv"), caption="../report/claims.rst", category="Claims"),
        md=in_results("claims.md"),
    log:
        in_results("logs/tables/claims.log"),
    benchmark:
        in_results("benchmarks/tables/claims.tsv")
    params:
        script=str(WORKFLOW_DIR / "analysis" / "make_claims.py"),
        profile=config["profile"],
        mlflow=PLAN.table_mlflow_args(),
    conda:
        CONDA_ENV
    shell:
        "python {params.script} --claims {input.claims} --stats {input.stats} --csv {output.csv} --md {output.md} "
        "--profile {params.profile} {params.mlflow} > {log} 2>&1"
