import json
import logging

import pytest

from ila import __version__
from ila.cli import main
from ila.data.annotations import read_labels, read_video_list


def test_synth_command_writes_a_loadable_dataset(tmp_path, capsys):
    out = tmp_path / "d"
    rc = main(["synth", "--preset", "tiny", "--out", str(out), "--train-per-class", "2", "--val-per-class", "1",
               "--temporal-pairs", "1", "--static-classes", "1", "--workers", "1"])
    assert rc == 0
    classes = read_labels(out / "labels.csv")
    assert [c.group for c in classes] == ["temporal", "temporal", "static"]
    assert len(read_video_list(out / "train.txt", len(classes))) == 6
    assert "wrote" in capsys.readouterr().out


def test_synth_command_rejects_bad_sizes(tmp_path, capsys):
    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path / "x"), "--size", "33"]) == 2
    assert "even number" in capsys.readouterr().err


def test_annotation_errors_are_one_tidy_line(tiny_copy, tmp_path, capsys):
    """A broken labels file reaches the user as one line naming file:line, exit code 2, no traceback."""
    from ila.cli import main

    labels = tiny_copy / "labels.csv"
    labels.write_text(labels.read_text().replace("\n1,", "\n7,", 1))
    args = ["train", f"data.root={tiny_copy}", "model.backbone=ILA-mini-32", "data.input_size=32",
            "tracking.enabled=false", f"output_dir={tmp_path / 'run'}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ila train: annotation error: ") and f"{labels}:3: expected class id 1" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    lines = (tiny_copy / "val.txt").read_text().splitlines()
    labels.write_text(labels.read_text().replace("\n7,", "\n1,", 1))
    (tiny_copy / "train.txt").write_text(lines[0].rsplit(maxsplit=1)[0] + " 42\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"annotation error: {tiny_copy / 'train.txt'}:1: unknown label 42" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- the command line's conventions

def _custom_synth(root):
    """A directory made by `ila synth` with a spec other than the tiny preset's (only its synth.json matters)."""
    from dataclasses import asdict, replace

    from ila.data.synth import PRESETS

    (root / "d").mkdir()
    spec = replace(PRESETS["tiny"], frames=6)
    (root / "d" / "synth.json").write_text(json.dumps({"format": 1, "spec": asdict(spec)}))


def _nothing(root):
    pass


# Every command's user errors: (arguments, what the one line must say, set-up in the fresh working directory).
# "{tiny}" is the session's tiny synthetic dataset.
USER_ERRORS = {
    "synth-other-spec": (["synth", "--preset", "tiny", "--out", "d"], "--out d-custom", _custom_synth),
    "synth-bad-size": (["synth", "--preset", "tiny", "--size", "33"], "even number", _nothing),
    "flops-unknown-backbone": (["flops", "--variant", "ila", "--backbone", "ViT-B-99"], "such as ViT-B-32", _nothing),
    "flops-unknown-key": (["flops", "--variant", "ila", "mi_tokn=1"], "expected one of", _nothing),
    "flops-unknown-variant": (["flops", "--variant", "ilaa"], "expected one of ['baseline'", _nothing),
    "train-no-data": (["train", "train.steps=1"], "ila synth --preset default --out data/synth-default", _nothing),
    "train-no-config-file": (["train", "nothere.yaml"], "nothere.yaml: config file not found", _nothing),
    "train-bad-override": (["train", "train.stepz=1"], "expected one of", _nothing),
    "evaluate-untrained": (["evaluate", "data.root={tiny}"], "train the run first (ila train)", _nothing),
    "evaluate-bad-cost-at": (["evaluate", "data.root={tiny}", "--cost-at", "ViT-B-32"], "e.g. ViT-B-32:8", _nothing),
    "emd-untrained": (["emd", "data.root={tiny}"], "train the run first (ila train)", _nothing),
    "pretrain-open-clip-backbone": (["pretrain-clip", "--out", "x.pt", "--backbone", "ViT-B-32"],
                                    "choose from 'ILA-mini-32'", _nothing),
    "tracking-init-no-experiment": (["tracking-init"], "required: --experiment", _nothing),
    "fetch-weights-unknown-tag": (["fetch-weights", "--backbone", "ViT-B-32", "--tag", "nope", "--out", "w.pt"],
                                  "ila fetch-weights --help", _nothing),
    "data-download-ssv2-missing": (["data", "download", "--dataset", "ssv2", "--root", "ssv2"], "Sign in at",
                                   _nothing),
    "data-lists-not-downloaded": (["data", "lists", "--dataset", "kinetics400", "--root", "k400"],
                                  "downloaded with its split", _nothing),
    "data-preprocess-no-src": (["data", "preprocess", "--src", "none", "--dst", "out"], "give the directory",
                               _nothing),
    "compare-fresh-directory": (["compare", "table4"], "run the workflow first (snakemake --cores all "
                                "results/table4.csv)", _nothing),
    "unknown-command": (["trian"], "invalid choice", _nothing),
}


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_every_user_error_is_one_line_with_the_fix_and_exit_2(case, tiny_dataset, tmp_path, monkeypatch, capsys):
    """Run in a fresh directory, as a newcomer would: one line on stderr naming what to do, nothing on stdout, exit
    code 2, and nothing left behind that the next command would trip over (no empty MLflow store, no run directory
    for a run that could not start)."""
    args, fix, setup = USER_ERRORS[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ILA_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    setup(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main([a.format(tiny=tiny_dataset) for a in args]))
    out, err = capsys.readouterr()
    assert exited.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("ila"), err
    assert fix in err, err
    assert out == ""
    if case.startswith(("train", "compare")):
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_version_and_help_of_every_command(capsys):
    """--version; every command and flag has a description; defaults are shown."""
    from ila.cli import build_parser, subcommand_parser

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"ila {__version__}"
    parser = build_parser()
    commands = subcommand_parser(parser)._subparsers._group_actions[0].choices
    data_steps = subcommand_parser(parser, "data")._subparsers._group_actions[0].choices
    every = {**{name: p for name, p in commands.items() if name != "data"},
             **{f"data {name}": p for name, p in data_steps.items()}}
    assert {"synth", "flops", "train", "evaluate", "emd", "pretrain-clip", "tracking-init", "fetch-weights",
            "compare", "data download", "data extract", "data preprocess", "data lists"} <= set(every)
    for name, p in every.items():
        assert p.description, name
        for action in p._actions:
            assert action.help, f"ila {name} {action.option_strings or action.dest}: no help text"
    assert "(default: ViT-B-32)" in commands["flops"].format_help()
    assert "(default: 4)" in data_steps["download"].format_help()
    assert "(default: 0)" in commands["pretrain-clip"].format_help()  # a zero is a default worth showing
    assert "(default: True)" not in commands["train"].format_help()  # --no-resume has no value to show


# The one name for each convention, on every command that has the thing it names.
PARALLEL = {"synth", "emd", "pretrain-clip", "data download", "data extract", "data preprocess"}
BARS = {"synth", "train", "evaluate", "emd", "pretrain-clip", "data download", "data preprocess"}


def _options(command: str) -> set[str]:
    from ila.cli import build_parser, subcommand_parser

    parser = subcommand_parser(build_parser(), *command.split())
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("command", sorted(PARALLEL | BARS))
def test_one_name_for_parallelism_and_for_turning_bars_off(command):
    options = _options(command)
    assert ("--workers" in options) == (command in PARALLEL)
    assert not options & {"--threads", "--jobs", "--set"}
    assert ("--no-progress" in options) == (command in BARS)


def test_flops_prints_only_its_table(capfd):
    """open_clip logs every model it builds (INFO) and warns that a meta-device model has no weights: by default
    neither reaches the user; -v shows them."""
    assert main(["flops", "--variant", "ila", "--backbone", "ILA-mini-32", "model.aggregator=mit"]) == 0
    out, err = capfd.readouterr()
    assert out.splitlines()[0].split()[:2] == ["variant", "GFLOPs/view"] and len(out.splitlines()) == 2
    assert err == ""
    assert main(["-v", "flops", "--variant", "ila", "--backbone", "ILA-mini-32"]) == 0
    assert " INFO root: " in capfd.readouterr().err  # open_clip logs through the root logger


def test_default_logging_keeps_the_suites_lines_and_the_libraries_errors():
    import logging

    from ila.cli import _OwnLogLines

    keep = _OwnLogLines().filter
    record = lambda name, level: logging.LogRecord(name, level, __file__, 1, "m", None, None)  # noqa: E731
    assert keep(record("ila.engine.train", logging.INFO)) and keep(record("ila", logging.WARNING))
    assert not keep(record("root", logging.INFO)) and not keep(record("root", logging.WARNING))
    assert not keep(record("ilastik", logging.INFO)) and keep(record("mlflow", logging.ERROR))


def test_synth_rerun_says_it_wrote_nothing(tmp_path, capsys):
    args = ["synth", "--preset", "tiny", "--out", str(tmp_path / "d"), "--train-per-class", "1", "--val-per-class",
            "1", "--temporal-pairs", "1", "--static-classes", "1", "--workers", "1", "--no-progress"]
    assert main(args) == 0
    assert "wrote 6 clips" in capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'd'}: already complete with this spec, nothing to do"


def test_help_does_not_import_torch():
    """`ila --help` and every subcommand's help build the parser only: no torch, no video stack (seconds saved on every
    typo)."""
    import subprocess
    import sys

    code = "import sys, ila.cli; ila.cli.build_parser(); print(sorted({'torch', 'av', 'mlflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_overrides_may_follow_options_and_workers_must_be_positive(capsys):
    from ila.cli import _parse

    args = _parse(["train", "run.yaml", "--no-progress", "train.steps=10", "seed=1"])
    assert args.config == "run.yaml" and args.overrides == ["train.steps=10", "seed=1"] and args.no_progress
    assert _parse(["flops", "--variant", "ila", "aggregator=mit", "--json", "head=linear"]).overrides == [
        "aggregator=mit", "head=linear"]
    for argv in (["synth", "--workers", "0"], ["emd", "--workers", "-1"], ["flops", "--variant", "ila", "--bogus"]):
        with pytest.raises(SystemExit) as exited:
            _parse(argv)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and len(err.strip().splitlines()) == 1 and f"ila {argv[0]} --help" in err


def test_logging_is_restored_and_only_rank_zero_speaks(monkeypatch):
    """A command leaves the root logger as it found it (the tests call main() in one process), and under torchrun
    the other ranks' terminal output is warnings only (every rank logging each step N times over is noise)."""
    from ila.cli import _log_handler

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    assert main(["-v", "flops", "--variant", "baseline", "--backbone", "ILA-mini-32"]) == 0
    assert root.level == level and root.handlers == handlers
    monkeypatch.setenv("RANK", "1")
    handler = _log_handler(False)
    root.removeHandler(handler)
    assert handler.level == logging.WARNING
    monkeypatch.setenv("RANK", "0")
    handler = _log_handler(False)
    root.removeHandler(handler)
    assert handler.level == logging.NOTSET


def test_catalog_lists_every_catalogued_name_and_operator_option(capsys):
    """`ila catalog`: what a config can name, from the catalog itself (a new entry appears without editing the CLI)."""
    import dataclasses

    from ila import catalog

    assert main(["catalog", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_kind = {title.split(" (")[0]: entries for title, entries in listed.items()}
    assert list(by_kind["variants"]) == catalog.list_variants()
    assert sorted(by_kind["operators"]) == sorted(catalog.OPERATORS)
    assert sorted(by_kind["aggregators"]) == sorted(catalog.AGGREGATORS)
    assert list(by_kind["backbone adapters"]) == list(catalog.ADAPTERS)
    ila_options = [f.name for f in dataclasses.fields(catalog.OPERATORS["ila"].options)]
    assert by_kind["operators"]["ila"].split(", ") == ila_options
    assert by_kind["variants"]["ila"] == catalog.VARIANTS["ila"].description
    assert main(["catalog"]) == 0
    text = capsys.readouterr().out
    assert "variants (model.variant):" in text and "  temporal_shift   fold_div" in text
