"""A typo in an ablation row fails the plan (`ila.plan`, what the Snakefile builds before any job), naming the file,
the row, the key and the value: every ablation file gets a broken copy (timm-style, one test per file), and each kind
of typo one test of its own. The last tests check that a dry run of the workflow stops on it as the plan does."""

import shutil
from pathlib import Path

import pytest
import yaml
from workflow_runner import REPO, snakemake

from ila.ablations import ABLATIONS_DIR, table_files
from ila.plan import Plan, PlanError, load_profile, validate_profile

FILES = [p.stem for p in table_files()]


def _broken_copy(tmp_path: Path, table: str, edit) -> Path:
    """A copy of ablations/ with ``edit(data)`` applied to ``<table>.yaml``."""
    folder = tmp_path / "ablations"
    shutil.copytree(ABLATIONS_DIR, folder)
    path = folder / f"{table}.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _plan_error(tmp_path: Path, table: str, edit) -> str:
    """The message of the plan of the embedded default over the edited ablation files (it must fail)."""
    folder = _broken_copy(tmp_path, table, edit)
    with pytest.raises(PlanError) as err:
        Plan(validate_profile(load_profile()), folder)
    return str(err.value)


def _fails_naming(message: str, *parts: str) -> None:
    assert "error:" in message, message
    assert all(p in message for p in parts), (parts, message)


@pytest.mark.parametrize("table", FILES)
def test_a_typo_in_each_ablation_file_fails_the_dry_run(tmp_path, table):
    """A row of the file's own gets an unknown variant; a file of probe rows (Table 12) a probe of a row its source
    table does not have; a file whose rows are all shared from another table gets a shared row that its source does
    not have."""
    expect = []

    def edit(data):
        own = [r for r in data["rows"] if not {"from", "requires", "probe"} & set(r)]
        probes = [(i, r) for i, r in enumerate(data["rows"]) if "probe" in r]
        if own:
            row = own[0]
            expect.extend([f"row {row['id']!r}", "model.variant", f"{row['model']['variant']}x'", "expected one of"])
            row["model"]["variant"] += "x"
        elif probes:
            i, row = probes[0]
            row["probe"] += "x"
            table, source = row["probe"].split("/")
            expect.extend([f"rows[{i}]", f"probe: {table}.yaml has no row {source!r}"])
        else:
            row = data["rows"][0]
            row["id"] += "x"
            expect.extend(["rows[0]", f"{row['from']}.yaml has no row {row['id']!r} to share"])

    _fails_naming(_plan_error(tmp_path, table, edit), f"{table}.yaml", *expect)


CASES = {
    "strategy": ("table6", {"operator_args": {"strategy": "fist"}}, ["model.operator_args.strategy", "'fist'",
                                                                     "'adjacent', 'first', 'middle'"]),
    "option key": ("table6", {"operator_args": {"stratgy": "first"}}, ["model.operator_args.stratgy: unknown key"]),
    "mi_token": ("table9", {"operator_args": {"mi_token": "pool"}}, ["model.operator_args.mi_token", "'pool'"]),
    "alignment operator": ("table8", {"operator_args": {"operator": "window_atention"}},
                           ["model.operator_args.operator", "'window_atention'", "'window_attention'"]),
    "align_features": ("diagnostics", {"operator_args": {"align_features": "ln1"}},
                       ["model.operator_args.align_features", "'ln1'", "'ln_1'"]),
    "block_group": ("table7", {"block_group": [1, 3]}, ["model.block_group", "3 groups do not divide", "4 blocks"]),
    "blocks": ("table7", {"block_group": None, "blocks": [7]}, ["model.blocks", "[7] outside 0..3"]),
    "backbone": ("table4", {"backbone": "ViT-B-99"}, ["model.backbone", "'ViT-B-99'", "ViT-B-32"]),
    "head": ("table11", {"head": "mlp"}, ["model.head", "'mlp'", "'text', 'linear'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_model_setting_fails_the_dry_run(tmp_path, case):
    table, model, parts = CASES[case]
    row = {}

    def edit(data):
        target = next(r for r in data["rows"] if "from" not in r and "requires" not in r
                      and (case not in ("strategy", "option key", "mi_token", "alignment operator", "align_features")
                           or r["model"].get("variant") == "ila"))
        row.update(id=target["id"])
        target["model"] = {k: v for k, v in {**target["model"], **model}.items() if v is not None}

    _fails_naming(_plan_error(tmp_path, table, edit), f"{table}.yaml", f"row {row['id']!r}", *parts)


def test_a_shared_row_missing_from_its_source_fails_the_plan(tmp_path):
    message = _plan_error(tmp_path, "table5", lambda data: data["rows"].append({"id": "nope", "from": "table4"}))
    _fails_naming(message, "table5.yaml", "table4.yaml has no row 'nope' to share")


def test_negative_seeds_are_named_as_such():
    with pytest.raises(PlanError) as err:
        validate_profile({**load_profile(), "seeds": ["-1"]})
    _fails_naming(str(err.value), "config error: seeds: expected a list of distinct non-negative integers", "[-1]")


# End to end: the Snakefile builds the same plan, so a dry run stops on the same errors before any job.
def _dry_run_fails_naming(res, *parts: str) -> None:
    assert res.returncode != 0, res.stdout[-2000:]
    output = res.stdout + res.stderr  # Snakemake prints a parse-time error on either, by version
    lines = [ln for ln in output.splitlines() if "error:" in ln]
    assert lines, output[-3000:]
    assert all(p in lines[0] for p in parts), (parts, lines[0])


@pytest.mark.workflow
def test_a_bad_row_fails_the_dry_run(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(REPO / "Snakefile", proj / "Snakefile")
    shutil.copytree(REPO / "workflow", proj / "workflow")
    _broken_copy(proj, "table8", lambda data: next(r for r in data["rows"] if "model" in r)["model"].update(
        variant="ilax"))
    res = snakemake("-n", "tables", cwd=tmp_path, snakefile=proj / "Snakefile")
    _dry_run_fails_naming(res, "table8.yaml", "model.variant", "'ilax'", "expected one of")


@pytest.mark.workflow
def test_negative_seeds_fail_the_dry_run(tmp_path):
    res = snakemake("-n", "tables", "--config", "seeds=[-1]", cwd=tmp_path)
    _dry_run_fails_naming(res, "config error: seeds: expected a list of distinct non-negative integers", "[-1]")
