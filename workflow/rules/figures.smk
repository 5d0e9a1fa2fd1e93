# Figures (PNG + PDF under <results_dir>/figures/), drawn by analysis/make_figures.py (functions in ila.figures) from the
# tables and the trained runs. The PNGs are marked for `snakemake --report results/report.html`.

rule figure_table:
    input:
        in_results("{table}.csv"),
    output:
        png=report(in_results("figures/{table}.png"), caption="../report/table_plot.rst", category="Tables as plots",
                   subcategory="{table}"),
        pdf=in_results("figures/{table}.pdf"),
    log:
        in_results("logs/figures/{table}.log"),
    benchmark:
        in_results("benchmarks/figures/{table}.tsv")
    params:
        script=FIGURES,
        out=figure_stem,
        measure=lambda wc: PLAN.table(wc.table).primary or "top1",
        title=lambda wc: PLAN.table(wc.table).title,
    wildcard_constraints:
        table="table[0-9]+|diagnostics",
    conda:
        CONDA_ENV
    shell:
        "python {params.script} table --csv {input} --measure {params.measure} --title {params.title:q} "
        "--out {params.out} > {log} 2>&1"


rule figure1:
    input:
        in_results("table1.csv"),
    output:
        png=report(in_results("figures/figure1.png"), caption="../report/figure1.rst", category="Figures"),
        pdf=in_results("figures/figure1.pdf"),
    log:
        in_results("logs/figures/figure1.log"),
    benchmark:
        in_results("benchmarks/figures/figure1.tsv")
    params:
        script=FIGURES,
        out=figure_stem,
    conda:
        CONDA_ENV
    shell:
        "python {params.script} figure1 --csv {input} --out {params.out} > {log} 2>&1"


rule figure5:
    input:
        cfg=lambda wc: PLAN.figure_run(wc.row),
        trained=lambda wc: PLAN.figure_run(wc.row, "train.done"),
    output:
        png=report(in_results("figures/figure5_{row}.png"), caption="../report/figure5.rst", category="Figures"),
        pdf=in_results("figures/figure5_{row}.pdf"),
    log:
        in_results("logs/figures/figure5_{row}.log"),
    benchmark:
        in_results("benchmarks/figures/figure5_{row}.tsv")
    wildcard_constraints:
        row="|".join(FIGURE5_ROWS),
    params:
        script=FIGURES,
        out=figure_stem,
    conda:
        CONDA_ENV
    shell:
        "python {params.script} figure5 --run $(dirname {input.cfg}) --out {params.out} "
        "> {log} 2>&1"


rule heatmaps:
    input:
        [PLAN.figure_run(row, "train.done") for row in HEATMAP_ROWS.values()],
    output:
        png=report(in_results("figures/figure{n}.png"), caption="../report/heatmaps.rst", category="Figures"),
        pdf=in_results("figures/figure{n}.pdf"),
    log:
        in_results("logs/figures/figure{n}.log"),
    benchmark:
        in_results("benchmarks/figures/figure{n}.tsv")
    params:
        script=FIGURES,
        out=figure_stem,
        runs=" ".join(f"--run '{name}={Path(PLAN.figure_run(row)).parent}'" for name, row in HEATMAP_ROWS.items()),
        depth=lambda wc: "middle" if wc.n == "6" else "last",
    wildcard_constraints:
        n="6|7",
    conda:
        CONDA_ENV
    shell:
        "python {params.script} heatmaps {params.runs} --depth {params.depth} --out {params.out} "
        "> {log} 2>&1"


rule training_curves:
    input:
        spec=table_spec_file,
        runs=lambda wc: PLAN.run_outputs(wc.table, "metrics.json"),
    output:
        png=report(in_results("figures/curves_{table}.png"), caption="../report/curves.rst", category="Training curves",
                   subcategory="{table}"),
        pdf=in_results("figures/curves_{table}.pdf"),
    log:
        in_results("logs/figures/curves_{table}.log"),
    benchmark:
        in_results("benchmarks/figures/curves_{table}.tsv")
    params:
        script=FIGURES,
        out=figure_stem,
        seeds=PLAN.seeds_arg(),
        uri=PLAN.mlflow_uri_args(),
        runs_dir=table_runs_dir,
        kind=PLAN.dataset_kind,
    conda:
        CONDA_ENV
    shell:
        "python {params.script} curves --table {input.spec} --runs {params.runs_dir} --seeds {params.seeds} "
        "--dataset-kind {params.kind} {params.uri} --out {params.out} > {log} 2>&1"


# Every figure: `snakemake --cores all figures`.
rule figures:
    input:
        PLAN.figures(),
