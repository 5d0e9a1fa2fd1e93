# Training: one job per ablation row and seed (results/<table>/<row>/seed<N>/). The MLflow store and experiment are created once, before any job.


rule mlflow_init:
    output:
        touch(in_results(".mlflow/{table}.initialized")),
    log:
        in_results("logs/mlflow/{table}.log"),
    benchmark:
        in_results("benchmarks/mlflow/{table}.tsv")
    params:
        uri=PLAN.mlflow_uri_args("--uri"),
    conda:
        CONDA_ENV
    shell:
        "ila tracking-init --experiment {wildcards.table} {params.uri} > {log} 2>&1"


rule row_config:
    output:
        in_run("run.yaml"),
    log:
        in_results("logs/{table}/{row}/seed{seed}.config.log"),
    benchmark:
        in_results("benchmarks/{table}/{row}/seed{seed}.config.tsv")
    params:
        config=lambda wc: job(wc).config,
    conda:
        CONDA_ENV
    script:
        "../scripts/write_row_config.py"


rule train_row:
    input:
        unpack(job_dataset),
        cfg=in_run("run.yaml"),
        mlflow=in_results(".mlflow/{table}.initialized"),
        weights=job_weights,
        # A probe row (Table 12) starts from its source row's trained run of the same seed.
        source=probe_source_trained,
    output:
        # A marker, not the checkpoint: Snakemake deletes incomplete outputs, and the checkpoint must survive an
        # interruption so that the next invocation resumes it.
        touch(in_run("train.done")),
    log:
        in_results("logs/{table}/{row}/seed{seed}.train.log"),
    benchmark:
        in_results("benchmarks/{table}/{row}/seed{seed}.train.tsv")
    params:
        launcher=PLAN.train_launcher(),
    threads: config["train_threads"]
    resources:
        gpu=config["gpus_per_job"],
    conda:
        CONDA_ENV
    shell:
        "{params.launcher} train {input.cfg} train.threads={threads} --skip-eval > {log} 2>&1"
