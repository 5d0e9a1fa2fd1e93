"""The plan's checks of what is on disk before any job starts (a synthetic benchmark regenerated with other options,
a `dataset.kind: lists` dataset of one's own), made in process (ila.plan.check_datasets) and, once each way, by a dry
run of the workflow; and the listing a successful run prints."""

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from workflow_runner import snakemake

from ila.data.synth import PRESETS, SYNTH_FORMAT, spec_mismatch
from ila.plan import Plan, PlanError, check_datasets, load_profile, validate_profile
from ila.workflow_summary import summary_lines, written_results

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "workflow" / "config"
DATA_RULES = ("synth_dataset", "dataset_lists", "k400_download", "k400_extract", "ssv2_extract", "preprocess_videos",
              "probe_ssv2_dataset")


def _write_synth_json(root: Path, spec: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "synth.json").write_text(json.dumps({"format": SYNTH_FORMAT, "spec": spec}))


def test_spec_mismatch_names_each_differing_field(tmp_path):
    default = PRESETS["default"]
    assert spec_mismatch(tmp_path / "none", default) is None  # nothing generated yet
    _write_synth_json(tmp_path / "same", asdict(default))
    assert spec_mismatch(tmp_path / "same", default) is None
    old = asdict(default)
    del old["motion_families"]  # written before the field existed: its default
    _write_synth_json(tmp_path / "old", old)
    assert spec_mismatch(tmp_path / "old", default) is None
    _write_synth_json(tmp_path / "custom", asdict(replace(default, frames=32, seed=3)))
    assert spec_mismatch(tmp_path / "custom", default, wanted="in the profile") == (
        "frames: 32 there, 16 in the profile; seed: 3 there, 0 in the profile")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "synth.json").write_text("{")
    assert spec_mismatch(tmp_path / "broken", default).startswith("unreadable")


def _check_datasets(cwd: Path, monkeypatch, *profiles: Path) -> None:
    """The plan's check of the datasets on disk, with ``cwd`` as the project's directory."""
    monkeypatch.chdir(cwd)
    check_datasets(Plan(validate_profile(load_profile(*profiles))))


@pytest.mark.parametrize("preset,field,value,message", [
    ("default", "frames", 32, "frames: 32 there, 16 in the profile"),
    # Table 12's probe set, used by the embedded default's probe rows.
    ("transfer", "seed", 5, "seed: 5 there, 1 in the profile"),
])  # fmt: skip
def test_a_customised_synthetic_benchmark_stops_the_plan(tmp_path, monkeypatch, preset, field, value, message):
    """`ila synth --preset default --frames 32` writes data/synth-default: the workflow would plan no synth job and
    train on it, so it refuses to start, saying what differs and what to do."""
    _write_synth_json(tmp_path / "data" / f"synth-{preset}", asdict(replace(PRESETS[preset], **{field: value})))
    with pytest.raises(PlanError) as err:
        _check_datasets(tmp_path, monkeypatch)
    out = str(err.value)
    assert message in out and f"Remove data/synth-{preset} (or move it)" in out
    assert "ila synth --out data/my-synth" in out and "kind: lists" in out


@pytest.mark.workflow
def test_a_customised_synthetic_benchmark_stops_the_dry_run(tmp_path):
    _write_synth_json(tmp_path / "data" / "synth-default", asdict(replace(PRESETS["default"], frames=32)))
    res = snakemake("-n", "results/table4.csv", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "frames: 32 there, 16 in the profile" in out, out[-3000:]
    assert "Building DAG" not in out


@pytest.mark.workflow
def test_the_presets_own_benchmark_passes(tmp_path):
    for preset in ("default", "transfer"):
        _write_synth_json(tmp_path / "data" / f"synth-{preset}", asdict(PRESETS[preset]))
    res = snakemake("-n", "results/table4.csv", cwd=tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


def _lists_dataset(root: Path, flip_to: bool = False) -> Path:
    """A dataset's lists and labels in the suite's format (a dry run reads no video)."""
    root.mkdir(parents=True)
    (root / "labels.csv").write_text("id,name,flip_to\n0,a,1\n1,b,0\n" if flip_to else "id,name\n0,a\n1,b\n")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("videos/a.mp4 0\nvideos/b.mp4 1\n")
    return root


def _lists_profile(tmp_path: Path, root: Path, extra: str = "") -> Path:
    (tmp_path / "mine.yaml").write_text(f"profile: mine\ndataset: {{kind: lists, root: {root}}}\nseeds: [0]\n{extra}")
    return tmp_path / "mine.yaml"


@pytest.mark.workflow
def test_a_lists_dataset_is_used_as_it_is(tmp_path):
    """`dataset.kind: lists`: the rows train on the user's files, with no job that makes, lists or re-encodes data,
    and the lists stay as they were. A dry run prints no listing of results (that is for runs that ran jobs)."""
    root = _lists_dataset(tmp_path / "mine")
    before = {p.name: p.read_text() for p in root.iterdir()}
    res = snakemake("-n", "results/table4.csv", "--configfile", str(_lists_profile(tmp_path, root)), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    stats = out[out.index("Job stats:"):]
    assert "\ntrain_row " in stats and "\nevaluate_row " in stats and "\ntable " in stats
    assert not [rule for rule in DATA_RULES if f"rule {rule}:" in out or f"\n{rule} " in stats], stats
    assert "results/table4/ila/seed0/train.done" in out
    assert {p.name: p.read_text() for p in root.iterdir()} == before
    assert "this run wrote" not in out


@pytest.mark.parametrize("damage,message", [
    ("labels", "missing {root}/labels.csv"),
    ("root", "dataset.root: {root} is not a directory"),
    ("remap", "run.data.hflip: 'remap' needs a flip_to column in {root}/labels.csv"),
])  # fmt: skip
def test_a_broken_lists_dataset_stops_the_plan(tmp_path, monkeypatch, damage, message):
    root = _lists_dataset(tmp_path / "mine")
    extra = ""
    if damage == "labels":
        (root / "labels.csv").unlink()
    elif damage == "root":
        root = tmp_path / "elsewhere"
    else:  # the embedded default's recipe flips with remapped labels; these classes have no mirror
        extra = "extends: default\n"
    with pytest.raises(PlanError) as err:
        _check_datasets(tmp_path, monkeypatch, _lists_profile(tmp_path, root, extra))
    assert message.format(root=root) in str(err.value)


@pytest.mark.workflow
def test_a_broken_lists_dataset_stops_the_dry_run(tmp_path):
    root = _lists_dataset(tmp_path / "mine")
    (root / "labels.csv").unlink()
    res = snakemake("-n", "results/table4.csv", "--configfile", str(_lists_profile(tmp_path, root)), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and f"missing {root}/labels.csv" in out, out[-3000:]
    assert "Building DAG" not in out


def test_written_results_are_the_tables_and_figures_changed_since_the_start(tmp_path):
    results = tmp_path / "results"
    (results / "figures").mkdir(parents=True)
    names = ["table4.csv", "table4.md", "table10.csv", "table10.md", "table2.csv", "table2.md", "figures/table4.png",
             "figures/table4.pdf", "figures/curves_table4.png", "other.txt"]
    for name in names:
        (results / name).write_text("x")
    start = time.time()
    old = start - 3600
    for name in ("table2.csv", "table2.md", "figures/curves_table4.png"):  # from an earlier run
        os.utime(results / name, (old, old))
    tables, figures = written_results(results, start)
    assert tables == [str(results / n) for n in ("table4.csv", "table4.md", "table10.csv", "table10.md")]
    assert figures == [str(results / "figures" / "table4.png")]


def test_summary_says_what_was_written_and_what_to_open_next():
    tables = ["results/table4.csv", "results/table4.md", "results/table10.csv"]
    figures = [f"results/figures/{n}.png" for n in ("table4", "table10", "figure6", "figure7")]
    lines = summary_lines(tables, figures, "sqlite:///mlflow.db", ["workflow/config/paper-k400.yaml"])
    assert lines == [
        "ILA: this run wrote, under results/:",
        "  tables: table4.{csv,md}, table10.csv",
        "  figures/ (PNG and PDF): table4, table10, figure6, figure7",
        "next:",
        "  our numbers beside the paper's: open results/table4.md (1 more above)",
        "  its runs in MLflow: ila compare table4 (start the UI first: mlflow ui --backend-store-uri "
        "sqlite:///mlflow.db)",
        "  every table: snakemake --cores all tables --configfile workflow/config/paper-k400.yaml (and every figure: "
        "snakemake --cores all --configfile workflow/config/paper-k400.yaml)",
    ]
    many = summary_lines([], [f"results/figures/curves_table{i}.png" for i in range(40)], "sqlite:///m.db")
    assert len(many) == 5 and many[2].endswith("(40 in all)")  # long lists are cut at two lines
    assert summary_lines([], [], "sqlite:///m.db")[0] == "ILA: this run wrote no table or figure"
    # A store of the profile's own is named to `ila compare` too, which otherwise reads the default one.
    assert "ila compare table4 --uri sqlite:///m.db (start" in "\n".join(summary_lines(tables, [], "sqlite:///m.db"))
    # The claims ledger is pointed at as such, never as a table with runs to compare.
    ledger = summary_lines(["results/claims.csv", "results/claims.md", *tables], [], "sqlite:///m.db")
    assert ledger[1] == "  tables: claims.{csv,md}, table4.{csv,md}, table10.csv"
    assert ledger[3:5] == ["  the paper's claims, each with its verdict: open results/claims.md",
                           "  our numbers beside the paper's: open results/table4.md (1 more above)"]
    alone = "\n".join(summary_lines(["results/claims.csv", "results/claims.md"], [], "sqlite:///m.db"))
    assert "ila compare" not in alone and "open results/claims.md" in alone


def test_the_suggested_command_keeps_every_config_file():
    """Parsed by Snakemake's own argument parser, the printed command keeps the profile and its overlay (a second
    --configfile would replace the first: the paper profile would silently be dropped)."""
    import shlex

    from snakemake.cli import get_argument_parser

    files = ["workflow/config/paper-k400.yaml", "workflow/config/rehearsal.yaml", "my overlay.yaml"]
    line = next(x for x in summary_lines([], [], "sqlite:///mlflow.db", files) if "every table:" in x)
    for command in (line.split("every table: ")[1].split(" (and every figure: ")[0],
                    line.split("(and every figure: ")[1].rstrip(")")):
        args = get_argument_parser().parse_args(shlex.split(command)[1:])
        assert [str(f) for f in args.configfile] == files, command
        assert list(args.targets) == (["tables"] if " tables " in command else [])


@pytest.mark.workflow
def test_a_run_that_ran_jobs_prints_the_listing(tmp_path):
    """Wired to Snakemake's onsuccess: a real run of one cheap job (a row's run config) prints it."""
    res = snakemake("--cores", "1", "results/table4/baseline/seed0/run.yaml", "--configfile",
                    str(CONFIGS / "smoke.yaml"), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "ILA: this run wrote no table or figure\nnext:\n" in out
    assert "  every table: snakemake --cores all tables --configfile " in out and "smoke.yaml (and every" in out
