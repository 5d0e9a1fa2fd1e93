# Backbone weights: the embedded default pretrains its mini-CLIPs (contrastively, or with one-hot labels for Table
# 10); the paper profiles fetch open_clip's weights, or a timm ImageNet-21k ViT's (each row's own backbone, once).


rule pretrain_mini_clip:
    output:
        "resources/pretrained/{backbone}{objective}.pt",
    wildcard_constraints:
        # ILA-mini-32.pt (contrastive) or ILA-mini-32-supervised.pt (one-hot labels): the name never ends so.
        backbone=r"[^/]+(?<!-supervised)",
        objective="|-supervised",
    log:
        in_results("logs/pretrain/{backbone}{objective}.log"),
    benchmark:
        in_results("benchmarks/pretrain/{backbone}{objective}.tsv")
    params:
        objective=lambda wc: wc.objective.lstrip("-") or "contrastive",
        steps=config["pretrain"]["steps"],
        batch_size=config["pretrain"]["batch_size"],
        pool_size=config["pretrain"]["pool_size"],
    threads: ALL_CORES
    conda:
        CONDA_ENV
    shell:
        "ila pretrain-clip --backbone {wildcards.backbone} --objective {params.objective} --out {output} --steps {params.steps} "
        "--batch-size {params.batch_size} --pool-size {params.pool_size} --workers {threads} > {log} 2>&1"


rule fetch_clip_weights:
    output:
        "resources/weights/{backbone}-{tag}.pt",
    wildcard_constraints:
        tag="[^-/]+",
    log:
        in_results("logs/weights/{backbone}-{tag}.log"),
    benchmark:
        in_results("benchmarks/weights/{backbone}-{tag}.tsv")
    params:
        source=lambda wc: PLAN.weights_source_args(wc.backbone, wc.tag),
    conda:
        CONDA_ENV
    shell:
        "ila fetch-weights --backbone {wildcards.backbone} --tag {wildcards.tag} --out {output} {params.source} "
        "> {log} 2>&1"


if config["pretrain"]["enabled"]:

    ruleorder: pretrain_mini_clip > fetch_clip_weights
