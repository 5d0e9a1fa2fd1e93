# Data: the embedded synthetic benchmark is generated here; real datasets are checked (their download and
# preparation rules arrive with a later issue).


rule synth_dataset:
    output:
        train="data/synth-{preset}/train.txt",
        val="data/synth-{preset}/val.txt",
        labels="data/synth-{preset}/labels.csv",
    log:
        "results/logs/data/synth-{preset}.log",
    threads: ALL_CORES
    conda:
        CONDA_ENV
    shell:
        "ila synth --preset {wildcards.preset} --out data/synth-{wildcards.preset} --workers {threads} > {log} 2>&1"


rule check_real_dataset:
    output:
        train=f"{config['dataset']['root']}/train.txt",
        val=f"{config['dataset']['root']}/val.txt",
        labels=f"{config['dataset']['root']}/labels.csv",
    log:
        "results/logs/data/check-real-dataset.log",
    params:
        kind=config["dataset"]["kind"],
        root=lambda wc, output: Path(output.train).parent,
    conda:
        CONDA_ENV
    shell:
        "echo 'Dataset {params.kind} is not prepared: put the videos under {params.root}/ with train.txt and "
        "val.txt (\"<relative path> <label id>\" per line) and labels.csv (id,name), as described in README.md.' "
        "| tee {log} >&2; exit 1"


if config["dataset"]["kind"] == "synth":

    ruleorder: synth_dataset > check_real_dataset
