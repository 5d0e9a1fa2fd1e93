# Tables: CSV + Markdown with our numbers (read from the runs' metrics.json) beside the paper's.


rule table:
    input:
        spec=str(ABLATIONS / "{table}.yaml"),
        metrics=lambda wc: run_outputs(wc.table, "metrics.json"),
    output:
        csv="results/{table}.csv",
        md="results/{table}.md",
    log:
        "results/logs/tables/{table}.log",
    params:
        script=str(Path(workflow.basedir) / "analysis" / "make_table.py"),
        profile=config["profile"],
        dataset=Path(dataset_root()).name,
        mlflow=mlflow_args(),
        seeds=" ".join(str(s) for s in config["seeds"]),
    conda:
        CONDA_ENV
    shell:
        "python {params.script} --table {input.spec} --runs results/{wildcards.table} --csv {output.csv} "
        "--md {output.md} --seeds {params.seeds} --profile {params.profile} --dataset {params.dataset} {params.mlflow} > {log} 2>&1"
