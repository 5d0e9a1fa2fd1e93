"""The README (and docs/) against the code, so that what a newcomer reads is what runs.

* Links: every relative link of README.md and docs/*.md names a file of the repository (and a heading of it, for an
  anchor); nothing links outside the repository except the paper and the authors' release; nothing names `shared/`.
* `ila`: `--help` of every subcommand, in a fresh directory; the README's table of subcommands against those helps
  (the options it promises, the conventions it states); every `ila ...` command of the README's and docs' ```bash
  blocks parsed by the real parser, its KEY=VALUE overrides (and a config file a block writes) checked by the config
  loader. Nothing is trained.
* `snakemake`: every command of the README's ```bash blocks as a dry run in a scratch directory. Commands that differ
  only in their targets (and `--cores`) share one dry run with all their targets, to keep this file fast (each dry
  run validates every ablation row: ~15 s of CPU).
* The smoke run is tests/test_workflow.py::test_smoke_run_end_to_end; here only that it is the README's quick-start
  smoke command (same target, same config file), so that the README's promise is what CI runs.

Editing a command in the README changes what is tested: the commands are read from the Markdown itself.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from workflow_runner import snakemake, workflow_env

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
# The only places outside the repository a link may point to: the paper and the authors' release.
ALLOWED_EXTERNAL = (
    re.compile(r"https://arxiv\.org/(abs|pdf)/2304\.10465(v\d+)?(\.pdf)?/?"),
    re.compile(r"https://github\.com/Francis-Rings/ILA(/[^\s)>\"']*)?"),
)
URL = re.compile(r"""https?://[^\s)>\]"'`]+""")
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)

# -------------------------------------------------------------------------------------------- Markdown helpers


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_blocks(text: str, lang: str | None = None) -> list[tuple[str, str]]:
    """``(language, content)`` of each fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text) if lang is None or m.group(1) == lang]


def prose(text: str) -> str:
    """The text without fenced blocks and inline code spans (what renders as prose, where links live)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def markdown_links(text: str) -> list[str]:
    """Targets of ``[text](target)`` and ``![alt](target)`` links, ``<autolinks>`` and bare URLs, in prose."""
    body = prose(text)
    targets = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", body)
    targets += re.findall(r"<(https?://[^>\s]+)>", body)
    without_links = re.sub(r"!?\[[^\]]*\]\([^)]*\)", "", body)
    targets += URL.findall(without_links)
    return targets


def github_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (headings inside code blocks are not headings)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", text).splitlines():
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(2))  # a link's text
        title = re.sub(r"[`*]", "", title)
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _project() -> dict[str, str]:
    """pyproject.toml's version and licence (tomllib is Python 3.11+; the suite supports 3.10)."""
    text = _text(REPO / "pyproject.toml")
    return {"version": re.search(r'^version = "([^"]+)"', text, re.M).group(1),
            "license": re.search(r'^license = \{ text = "([^"]+)" \}', text, re.M).group(1)}


def allowed_external(url: str) -> bool:
    return any(p.fullmatch(url.rstrip(".,;:")) for p in ALLOWED_EXTERNAL)


# --------------------------------------------------------------------------------------- shell-command helpers


@dataclass
class Commands:
    """What the ```bash blocks of a file run: its commands (argument lists) and the files its heredocs write."""

    commands: list[list[str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


def bash_commands(text: str) -> Commands:
    out = Commands()
    for _, block in code_blocks(text, "bash"):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.endswith("\\") and i + 1 < len(lines):  # continuation lines
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            i += 1
            heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
            if heredoc:  # `cat > FILE <<'EOF'` ... `EOF`: a file the block writes
                body = []
                while i < len(lines) and lines[i].strip() != heredoc.group(1):
                    body.append(lines[i])
                    i += 1
                i += 1
                target = re.search(r">\s*(\S+)", line[: heredoc.start()])
                if target:
                    out.files[target.group(1)] = "\n".join(body) + "\n"
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            command: list[str] = []
            for token in lexer:
                if token in ("&&", "||", ";", "|", "&"):
                    if command:
                        out.commands.append(command)
                    command = []
                else:
                    command.append(token)
            if command:
                out.commands.append(command)
    return out


def commands_of(name: str, cmds: list[list[str]]) -> list[list[str]]:
    return [c[1:] for c in cmds if c and c[0] == name]


README_TEXT = _text(README)
README_CMDS = bash_commands(README_TEXT)
DOC_CMDS = [bash_commands(_text(p)) for p in DOCS]

# -------------------------------------------------------------------------------------------------- links


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_name_files_and_headings_of_the_repository(path):
    text = _text(path)
    assert markdown_links(text), f"{path.name}: no links found (is the link parser broken?)"
    for target in markdown_links(text):
        if re.match(r"[a-z]+:", target):
            continue  # external: the next test
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.is_relative_to(REPO), f"{path.name}: link {target!r} leaves the repository"
        assert dest.exists(), f"{path.name}: link {target!r}: {dest.relative_to(REPO)} does not exist"
        if anchor:
            assert dest.suffix == ".md", f"{path.name}: link {target!r}: an anchor into a file that is not Markdown"
            anchors = github_anchors(_text(dest))
            assert anchor in anchors, f"{path.name}: link {target!r}: no heading with that anchor in {dest.name}"


@pytest.mark.parametrize("path", [README, *DOCS, REPO / "pyproject.toml", REPO / "CITATION.cff"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_links_outside_the_repository_but_the_paper_and_the_authors_release(path):
    text = _text(path)
    if path.suffix == ".md":
        urls = [t for t in markdown_links(text) if re.match(r"[a-z]+:", t)]
    else:  # pyproject.toml, CITATION.cff: every URL in the file
        urls = URL.findall(text)
    outside = [u for u in urls if not allowed_external(u)]
    assert not outside, f"{path.name} links outside the repository: {outside}"
    assert "shared/" not in text, f"{path.name} names shared/, which is not part of the repository"


def test_the_readme_links_the_paper_and_the_authors_release():
    links = markdown_links(README_TEXT)
    assert any(ALLOWED_EXTERNAL[0].fullmatch(u) for u in links)
    assert any(ALLOWED_EXTERNAL[1].fullmatch(u) for u in links)


def test_the_readme_spells_out_each_abbreviation_at_its_first_use():
    """The expansion comes at (or before) the first use of the short form in the README's prose."""
    body = FENCE.sub("", README_TEXT)
    for short, expansion in [
        (r"\bEMD\b", "Earth Mover's Distance"),
        (r"\bATA\b", "alignment-guided temporal attention"),
        (r"\bMIT\b(?! licen)", "multi-frame integration transformer"),
        (r"\bMI token", "mutual-information token"),
        (r"\bfvcore convention", "multiply-adds counted as FLOPs"),
        (r"\bMDE\b", "minimum detectable difference"),
        (r"\bSSv2\b", "Something-Something-v2"),
        (r"\bTS\b", "temporal score"),
    ]:
        first = re.search(short, body)
        assert first, f"README: {short} not used (drop it from this test)"
        where = body.find(expansion)
        assert 0 <= where <= first.start() + 120, f"README: {first.group(0)!r} is used before it is spelled out"


# ------------------------------------------------------------------------------------------------------ ila


def _subcommands(parser) -> dict[tuple[str, ...], object]:
    """Every (sub)command path of the real parser: ('synth',), ('data', 'download'), ..."""
    import argparse

    out = {}

    def walk(p, path):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                        walk(sub, (*path, name))
                    else:
                        out[(*path, name)] = sub

    walk(parser, ())
    return out


def _run_ila(argv: list[str]) -> tuple[int, str, str]:
    """``ila ARGV`` in this process (the real entry point, ila.cli:main): exit code, stdout, stderr."""
    from ila.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def helps(tmp_path_factory):
    """`ila --help` and `ila COMMAND --help` of every subcommand, run in a fresh directory."""
    from ila.cli import build_parser

    fresh = tmp_path_factory.mktemp("fresh")
    cwd = os.getcwd()
    os.chdir(fresh)
    try:
        texts = {(): _run_ila(["--help"])}
        for path in _subcommands(build_parser()):
            texts[path] = _run_ila([*path, "--help"])
    finally:
        os.chdir(cwd)
    for path, (code, _, err) in texts.items():
        assert code == 0, f"ila {' '.join(path)} --help exited {code}: {err}"
    return {path: out for path, (_, out, _) in texts.items()}


def _readme_table() -> dict[tuple[str, ...], str]:
    """The README's table of subcommands: ``('data', 'download') -> its options cell``."""
    rows = {}
    for m in re.finditer(r"^\| `ila ([a-z -]+)` \|[^|\n]*\|([^|\n]*)\|\s*$", README_TEXT, re.M):
        rows[tuple(m.group(1).split())] = m.group(2)
    return rows


def test_the_readme_table_names_every_subcommand(helps):
    table = _readme_table()
    assert table, "README lost its table of `ila` subcommands"
    commands = {p for p in helps if p}
    assert set(table) == commands, f"missing from the README: {commands - set(table)}; not a subcommand: " \
                                   f"{set(table) - commands}"


def test_the_readme_table_promises_what_each_help_offers(helps):
    """`--workers N` and `--no-progress` exactly where the README lists them; KEY=VALUE overrides likewise; the
    retired spellings (`--threads`, `--jobs`, `--set`) nowhere."""
    for path, cell in _readme_table().items():
        help_text = helps[path]
        name = "ila " + " ".join(path)
        for option in ("--workers", "--no-progress"):
            assert (option in cell) == (option in help_text), \
                f"{name}: README says {option} {'is' if option in cell else 'is not'} an option; its --help disagrees"
        assert ("KEY=VALUE" in cell) == ("KEY=VALUE" in help_text), f"{name}: KEY=VALUE overrides"
        for option in re.findall(r"--[a-z][a-z-]+", cell):
            assert option in help_text, f"{name}: README lists {option}, its --help does not"
        for retired in ("--threads", "--jobs", "--set "):
            assert retired not in help_text, f"{name} --help still offers {retired.strip()}"
    for retired in ("--threads", "--jobs", "--set "):
        assert not any(retired.strip() in c for c in sum(README_CMDS.commands, [])), f"README uses {retired}"


def test_the_conventions_the_readme_states(helps, tmp_path, monkeypatch):
    """`ila --version` (the installed entry point, in a fresh directory), `-v` before the subcommand, and a user
    error as one line on stderr with exit code 2."""
    version = _project()["version"]
    assert "ila --version" in README_TEXT
    ila = Path(sys.executable).parent / "ila"
    res = subprocess.run([str(ila), "--version"], cwd=tmp_path, env=workflow_env(), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == f"ila {version}", res.stdout + res.stderr
    assert re.search(r"-v, --verbose", helps[()]), helps[()]
    monkeypatch.chdir(tmp_path)
    code, _, err = _run_ila(["train", f"data.root={tmp_path / 'no-such-dataset'}"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("ila train: "), err
    code, _, err = _run_ila(["synth", "--preset", "no-such-preset"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("ila synth: "), err


def _ila_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    """Every `ila ...` command of the README's and docs' bash blocks, with the files its block writes."""
    out = []
    for path, cmds in [(README, README_CMDS), *zip(DOCS, DOC_CMDS, strict=True)]:
        for argv in commands_of("ila", cmds.commands):
            out.append((path.name, argv, cmds.files))
        # `torchrun ... -m ila.cli ARGS` is the same command line
        for argv in commands_of("torchrun", cmds.commands):
            if "ila.cli" in argv:
                out.append((path.name, argv[argv.index("ila.cli") + 1:], cmds.files))
    return out


ILA_COMMANDS = _ila_commands()


def test_the_docs_show_ila_commands():
    assert len(ILA_COMMANDS) >= 8 and any(name == "README.md" for name, _, _ in ILA_COMMANDS)


@pytest.mark.parametrize("where,argv,files", ILA_COMMANDS, ids=[f"{w}: ila {' '.join(a)}" for w, a, _ in ILA_COMMANDS])
def test_ila_commands_of_the_docs_parse(where, argv, files, tmp_path, monkeypatch):
    """Parsed by the real parser (options, positional KEY=VALUE); a run config's keys checked by the config loader
    (the YAML file when the block writes it, the overrides always); `ila flops` overrides as model-config keys."""
    from ila.catalog import list_variants
    from ila.cli import build_parser
    from ila.config import apply_overrides, load_run_config, resolve_model_config

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --version and --help exit 0 once printed
            if exc.code not in (0, None):
                pytest.fail(f"{where}: `ila {' '.join(argv)}` does not parse: {err.getvalue().strip()}")
            return
    if args.command in ("train", "evaluate", "emd"):
        config, overrides = args.config, list(args.overrides)
        if config and "=" in config and not config.endswith((".yaml", ".yml")):
            config, overrides = None, [config, *overrides]
        monkeypatch.chdir(tmp_path)
        for name, body in files.items():
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_text(body)
        load_run_config(config if config in files else None, overrides)
    elif args.command == "flops":
        overrides = [o.removeprefix("model.") for o in args.overrides]
        for variant in args.variant or list_variants():
            if variant in list_variants():  # the README's `my_op` is the user's own, not registered here
                resolve_model_config(apply_overrides({"variant": variant, "backbone": args.backbone,
                                                      "num_frames": args.frames}, overrides))


# ------------------------------------------------------------------------------------------------ snakemake

VALUE_OPTIONS = {"--cores", "-c", "--profile", "--workflow-profile", "-s", "--snakefile", "--directory", "-d",
                 "--report"}
LIST_OPTIONS = {"--configfile", "--configfiles", "--config", "-C"}  # take every word up to the next option


def split_snakemake(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(options, targets)`` of a snakemake command line (`-n` and `--cores N` dropped: every test run is a dry
    run)."""
    options, targets, i = [], [], 0
    while i < len(argv):
        token = argv[i]
        if token in ("-n", "--dry-run", "--dryrun"):
            i += 1
        elif token in ("--cores", "-c"):
            i += 2
        elif token in VALUE_OPTIONS:
            options += argv[i:i + 2]
            i += 2
        elif token.split("=")[0] in LIST_OPTIONS:
            options.append(token)
            i += 1
            if "=" not in token:
                while i < len(argv) and not argv[i].startswith("-"):
                    options.append(argv[i])
                    i += 1
        elif token.startswith("-"):
            options.append(token)
            i += 1
        else:
            targets.append(token)
            i += 1
    return options, targets


def _dry_run_groups() -> dict[tuple[str, ...], list[str]]:
    groups: dict[tuple[str, ...], list[str]] = {}
    for argv in commands_of("snakemake", README_CMDS.commands):
        options, targets = split_snakemake(argv)
        assert "--report" not in options, "a report cannot be dry-run: keep `snakemake --report` in prose"
        group = groups.setdefault(tuple(options), [])
        for target in targets or ["all"]:  # no target: the default one, `all`
            if target not in group:
                group.append(target)
    return groups


DRY_RUN_GROUPS = _dry_run_groups()


def _lists_dataset(root: Path) -> Path:
    """A dataset in the Kinetics-400 list format (no videos: a dry run does not open them)."""
    root.mkdir(parents=True)
    (root / "labels.csv").write_text("id,name\n0,waving\n1,clapping\n")
    (root / "train.txt").write_text("videos/a.mp4 0\nvideos/b.mp4 1\n")
    (root / "val.txt").write_text("videos/c.mp4 0\nvideos/d.mp4 1\n")
    return root


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A fresh working directory for the README's snakemake commands: `workflow/` (the profiles and executor
    profiles the commands name) and the config files the README's YAML blocks define (`# NAME.yaml` first line), a
    `lists` dataset's root pointed at a stand-in dataset."""
    work = tmp_path_factory.mktemp("readme")
    (work / "workflow").symlink_to(REPO / "workflow", target_is_directory=True)
    for _, block in code_blocks(README_TEXT, "yaml"):
        first = block.splitlines()[0] if block.strip() else ""
        m = re.fullmatch(r"#\s*([\w.-]+\.ya?ml)\s*", first)
        if not m:
            continue
        cfg = yaml.safe_load(block)
        if (cfg.get("dataset") or {}).get("kind") == "lists":
            cfg["dataset"]["root"] = str(_lists_dataset(work / "my-dataset"))
        (work / m.group(1)).write_text(yaml.safe_dump(cfg))
    return work


def test_the_readme_has_snakemake_commands():
    assert len(DRY_RUN_GROUPS) >= 4, DRY_RUN_GROUPS


@pytest.fixture(scope="module")
def dry_runs(scratch):
    """Every group's dry run, two at a time (``options -> CompletedProcess``)."""

    def run(item):
        options, targets = item
        # Targets first: --configfile takes every word after it.
        return options, snakemake("-n", "--cores", "1", *targets, *options, cwd=scratch, timeout=600)

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(run, DRY_RUN_GROUPS.items()))


@pytest.mark.workflow
@pytest.mark.parametrize("options", list(DRY_RUN_GROUPS), ids=lambda o: " ".join(o) or "(embedded default)")
def test_readme_snakemake_commands_dry_run(options, dry_runs):
    res = dry_runs[options]
    out = res.stdout + res.stderr
    targets = " ".join(DRY_RUN_GROUPS[options])
    assert res.returncode == 0, f"snakemake -n {' '.join(options)} {targets}:\n{out[-3000:]}"
    assert "This was a dry-run" in out or "Nothing to be done" in out, out[-3000:]


def test_docs_snakemake_commands_name_existing_config_files():
    """The docs' snakemake commands are not dry-run here (the README's are): their config files and executor
    profiles must at least exist."""
    for path, cmds in zip(DOCS, DOC_CMDS, strict=True):
        for argv in commands_of("snakemake", cmds.commands):
            options, _ = split_snakemake(argv)
            for i, token in enumerate(options):
                if token in ("--configfile", "--profile", "--workflow-profile"):
                    value = options[i + 1]
                    assert (REPO / value).exists(), f"{path.name}: snakemake {' '.join(argv)}: no {value}"


# ---------------------------------------------------------------------------------------------------- smoke


def _readme_smoke_command() -> tuple[list[str], list[str]]:
    smoke = [split_snakemake(argv) for argv in commands_of("snakemake", README_CMDS.commands)
             if any(a.endswith("smoke.yaml") for a in argv)]
    assert smoke, "README lost its smoke run"
    return smoke[0]


def _ci_smoke_command() -> tuple[list[str], list[str]]:
    """The first snakemake(...) call of tests/test_workflow.py::test_smoke_run_end_to_end, as strings."""
    tree = ast.parse(_text(REPO / "tests" / "test_workflow.py"))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "test_smoke_run_end_to_end")
    call = next(n for n in ast.walk(fn) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "snakemake")
    argv = []
    for arg in call.args:
        if isinstance(arg, ast.Constant):
            argv.append(arg.value)
        else:  # str(CONFIGS / "smoke.yaml")
            names = [n.value for n in ast.walk(arg) if isinstance(n, ast.Constant)]
            argv.append("workflow/config/" + names[-1])
    return split_snakemake(argv)


def test_the_readme_smoke_run_is_the_one_ci_runs():
    readme_options, readme_targets = _readme_smoke_command()
    ci_options, ci_targets = _ci_smoke_command()
    assert readme_targets == ci_targets, (readme_targets, ci_targets)
    assert readme_options == ci_options, (readme_options, ci_options)
    assert (REPO / readme_options[readme_options.index("--configfile") + 1]).is_file()


# ------------------------------------------------------------------------------------------ citation, licence


def test_citation_and_licence_match_the_package():
    project = _project()
    cff = yaml.safe_load(_text(REPO / "CITATION.cff"))
    assert cff["cff-version"].startswith("1.2") and cff["message"] and cff["authors"] and cff["title"]
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"] == "MIT"
    assert _text(REPO / "LICENSE").startswith("MIT License")
    paper = cff["references"][0]
    assert [a["family-names"] for a in paper["authors"]] == ["Tu", "Dai", "Wu", "Cheng", "Hu", "Jiang"]
    bibtex = code_blocks(README_TEXT, "bibtex")
    assert bibtex and "Tu, Shuyuan and Dai, Qi and Wu, Zuxuan and Cheng, Zhi-Qi and Hu, Han and Jiang, Yu-Gang" in \
        bibtex[0][1]
