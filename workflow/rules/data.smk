# Data: the embedded synthetic benchmark is generated; Kinetics-400 is downloaded from the CVDF mirror, extracted and
# listed; Something-Something-v2 is extracted from the files its users download (an account is needed). Both can be
# re-encoded to a short side first (dataset.short_side). Layout and formats: ila/data/prepare.py.


rule synth_dataset:
    output:
        **PLAN.dataset_files(synth_root("{preset}")),
    log:
        in_results("logs/data/synth-{preset}.log"),
    benchmark:
        in_results("benchmarks/data/synth-{preset}.tsv")
    params:
        root=dataset_root_of_output(levels=1),
    threads: ALL_CORES
    conda:
        CONDA_ENV
    shell:
        "ila synth --preset {wildcards.preset} --out {params.root} --workers {threads} > {log} 2>&1"


DATA_ROOT = PLAN.dataset_root


rule k400_download:
    output:
        touch(f"{DATA_ROOT}/downloads/{{split}}.done"),
    wildcard_constraints:
        split="train|val|test|replacement",
    log:
        in_results("logs/data/k400-download-{split}.log"),
    benchmark:
        in_results("benchmarks/data/k400-download-{split}.tsv")
    params:
        root=dataset_root_of_output(levels=2),
        base_url=config["dataset"]["base_url"],
        verify=config["dataset"]["verify"],
    threads: config["dataset"]["download_jobs"]
    conda:
        CONDA_ENV
    shell:
        "ila data download --dataset kinetics400 --root {params.root} --split {wildcards.split} "
        "--base-url {params.base_url} --workers {threads} --verify {params.verify} > {log} 2>&1"


rule k400_extract:
    input:
        downloaded=f"{DATA_ROOT}/downloads/{{split}}.done",
        replacement=f"{DATA_ROOT}/downloads/replacement.done" if config["dataset"]["replacement"] else [],
    output:
        touch(f"{DATA_ROOT}/videos/{{split}}.done"),
    wildcard_constraints:
        split="train|val|test",
    log:
        in_results("logs/data/k400-extract-{split}.log"),
    benchmark:
        in_results("benchmarks/data/k400-extract-{split}.tsv")
    params:
        root=dataset_root_of_output(levels=2),
        replacement="" if config["dataset"]["replacement"] else "--no-replacement",
    threads: 4
    conda:
        CONDA_ENV
    shell:
        # A tarball that does not extract is moved aside by `ila data extract`; dropping the download markers makes
        # the next run fetch it again (the files already there only get their size checked).
        "ila data extract --dataset kinetics400 --root {params.root} --split {wildcards.split} --workers {threads} "
        "{params.replacement} > {log} 2>&1 || (rm -f {input}; tail -n 5 {log} >&2; exit 1)"


rule ssv2_extract:
    output:
        touch(f"{DATA_ROOT}/videos/all.done"),
    log:
        in_results("logs/data/ssv2-extract.log"),
    benchmark:
        in_results("benchmarks/data/ssv2-extract.tsv")
    params:
        root=dataset_root_of_output(levels=2),
    conda:
        CONDA_ENV
    shell:
        # The check runs first and alone, so a missing file is reported at once, with what to download from where.
        "(ila data download --dataset ssv2 --root {params.root} && ila data extract --dataset ssv2 --root {params.root})"
        " > {log} 2>&1 || (tail -n 20 {log} >&2; exit 1)"


rule preprocess_videos:
    input:
        f"{DATA_ROOT}/videos/{{split}}.done",
    output:
        touch(f"{DATA_ROOT}/videos_s{{size}}/{{split}}.done"),
    log:
        in_results("logs/data/preprocess-s{size}-{split}.log"),
    benchmark:
        in_results("benchmarks/data/preprocess-s{size}-{split}.tsv")
    params:
        root=dataset_root_of_output(levels=2),
    threads: ALL_CORES
    conda:
        CONDA_ENV
    shell:
        "ila data preprocess --src {params.root}/videos/{wildcards.split} --dst {params.root}/videos_s{wildcards.size}/"
        "{wildcards.split} --short-side {wildcards.size} --workers {threads} > {log} 2>&1"


# A real dataset's lists, from its prepared videos. Not for `dataset.kind: lists` (the user's own files, used as they
# are: this rule would plan a video extraction for them and overwrite them) nor the synthetic benchmark (synth_dataset
# writes its lists).
if PLAN.dataset_kind in PUBLISHED_DATASETS:

    rule dataset_lists:
        input:
            PLAN.prepared_video_markers(),
        output:
            **PLAN.dataset_files(),
            report=f"{DATA_ROOT}/prepare_report.json",
        log:
            in_results("logs/data/lists.log"),
        benchmark:
            in_results("benchmarks/data/lists.tsv")
        params:
            root=dataset_root_of_output(levels=1),
            kind=config["dataset"]["kind"],
            video_dir=PLAN.prepared_video_dir,
            preprocessed="--preprocessed" if config["dataset"]["short_side"] else "",
        conda:
            CONDA_ENV
        shell:
            "ila data lists --dataset {params.kind} --root {params.root} --video-dir {params.video_dir} "
            "{params.preprocessed} > {log} 2>&1"


# Table 12 on the Kinetics-400 profile: the probe dataset is SSv2, from the user's download in its root (as the
# paper-ssv2 profile prepares it; the first step says what is missing).
if config["probe"]["dataset"]["kind"] == "ssv2" and PLAN.dataset_kind != "ssv2":

    rule probe_ssv2_dataset:
        output:
            **PLAN.dataset_files(PLAN.probe_root),
        log:
            in_results("logs/data/probe-ssv2.log"),
        benchmark:
            in_results("benchmarks/data/probe-ssv2.tsv")
        params:
            root=PLAN.probe_root,
        conda:
            CONDA_ENV
        shell:
            "(ila data download --dataset ssv2 --root {params.root} && ila data extract --dataset ssv2 --root "
            "{params.root} && ila data lists --dataset ssv2 --root {params.root} --video-dir videos) > {log} 2>&1 "
            "|| (tail -n 20 {log} >&2; exit 1)"
