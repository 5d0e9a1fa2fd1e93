# Backbone weights: the embedded default pretrains its mini-CLIP; the paper profiles fetch open_clip weights.


rule pretrain_mini_clip:
    output:
        "resources/pretrained/{backbone}.pt",
    log:
        "results/logs/pretrain/{backbone}.log",
    benchmark:
        "results/benchmarks/pretrain/{backbone}.tsv"
    params:
        steps=config["pretrain"]["steps"],
        batch_size=config["pretrain"]["batch_size"],
        pool_size=config["pretrain"]["pool_size"],
    threads: ALL_CORES
    conda:
        CONDA_ENV
    shell:
        "ila pretrain-clip --backbone {wildcards.backbone} --out {output} --steps {params.steps} "
        "--batch-size {params.batch_size} --pool-size {params.pool_size} --threads {threads} > {log} 2>&1"


rule fetch_clip_weights:
    output:
        "resources/weights/{backbone}-{tag}.pt",
    log:
        "results/logs/weights/{backbone}-{tag}.log",
    conda:
        CONDA_ENV
    shell:
        "ila fetch-weights --backbone {wildcards.backbone} --tag {wildcards.tag} --out {output} > {log} 2>&1"


if config["pretrain"]["enabled"]:

    ruleorder: pretrain_mini_clip > fetch_clip_weights
