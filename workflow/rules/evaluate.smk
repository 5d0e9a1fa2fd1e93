# Evaluation: deterministic multi-view test of each row's final checkpoint; metrics.json also records the model's
# GFLOPs and parameters at the run's config and at the paper's, so the tables read everything from it.


rule evaluate_row:
    input:
        unpack(job_dataset),
        cfg=in_run("run.yaml"),
        trained=in_run("train.done"),
    output:
        in_run("metrics.json"),
    log:
        in_results("logs/{table}/{row}/seed{seed}.evaluate.log"),
    benchmark:
        in_results("benchmarks/{table}/{row}/seed{seed}.evaluate.tsv")
    params:
        cost_at=cost_at_args,
        # With several GPUs, one rank per GPU, each scoring its own share of the videos (an exact reduction).
        launcher=PLAN.train_launcher(),
    threads: config["train_threads"]
    resources:
        gpu=config["gpus_per_job"],
    conda:
        CONDA_ENV
    shell:
        "{params.launcher} evaluate {input.cfg} train.threads={threads} {params.cost_at} > {log} 2>&1"


# Table 5: the adjacent-frame EMD of a (row, seed) on the validation split, one job each, so rows run in parallel.
rule emd_row:
    input:
        unpack(job_dataset),
        cfg=in_run("run.yaml"),
        trained=in_run("train.done"),
    output:
        in_run("emd.json"),
    log:
        in_results("logs/{table}/{row}/seed{seed}.emd.log"),
    benchmark:
        in_results("benchmarks/{table}/{row}/seed{seed}.emd.tsv")
    threads: config["train_threads"]
    conda:
        CONDA_ENV
    shell:
        "ila emd {input.cfg} --workers {threads} > {log} 2>&1"
