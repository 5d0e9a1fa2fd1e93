"""The SLURM profile (workflow/profiles/slurm) against snakemake-executor-plugin-slurm: a lint of its keys (Snakemake
options, the plugin's resources, rules of this workflow, GPUs only where a rule needs them), dry runs of the paper
profile (one GPU per job, and eight ranks under torchrun in one job), and real submissions through fake SLURM
commands that run each job at once on this machine (among them a train_row job with 2 ranks under torchrun).

The lint needs neither SLURM nor the plugin, except for the resource names the plugin knows, which are read from its
installed source (never from a list kept here); that check and the rest skip, saying so, without the plugin on Python
3.10, where it cannot be installed, and fail without it on 3.11+, where the `test` extra installs it."""

import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runner import snakemake, workflow_env

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
CONFIGS = REPO / "workflow" / "config"
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]

HAS_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None
needs_plugin = pytest.mark.skipif(not HAS_PLUGIN,
                                  reason='needs snakemake-executor-plugin-slurm (pip install -e ".[slurm]")')

# Rules that run on a GPU under this profile: training and evaluation request the config's gpus_per_job themselves
# (`resources: gpu=`), the latency measurement gets its GPU from the profile.
GPU_RULES = {"train_row", "evaluate_row", "latency"}
GPU_KEYS = {"gpu", "gpus", "nvidia_gpu", "gres", "gpu_model", "gpu_manufacturer", "cpus_per_gpu", "tasks_per_gpu"}
# The standard resources Snakemake itself knows (the plugin's are read from its installed source: _plugin_resources).
SNAKEMAKE_RESOURCES = {"mem_mb", "mem", "mem_mib", "disk_mb", "disk", "disk_mib", "runtime", "tmpdir"}
# sbatch options the plugin sets itself; in slurm_extra they conflict (GPUs and CPUs above all: srun rejects a job
# step whose GPU settings are mixed).
FORBIDDEN_EXTRA = re.compile(r"--(gres|gpus|gpus-per-\w+|cpus-per-\w+|mem|mem-per-\w+|ntasks[\w-]*|partition|account|"
                             r"time|nodes)\b|(^|\s)-[pAtNnc]\b")


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def _workflow_rules() -> dict[str, str]:
    """Rule name -> its body, from the Snakefile and workflow/rules/*.smk."""
    rules = {}
    for path in RULE_FILES:
        parts = re.split(r"^[ \t]*rule[ \t]+(\w+)[ \t]*:", path.read_text(), flags=re.M)
        rules.update(zip(parts[1::2], parts[2::2], strict=False))
    return rules


def _plugin_resources() -> set[str]:
    """The resource names snakemake-executor-plugin-slurm (and its jobstep executor) read, from their installed source.
    Never a list kept here: without the plugin this skips on Python 3.10 (the plugin needs 3.11) and fails on 3.11+,
    where the test extra installs it; a source that yields no names fails."""
    if not HAS_PLUGIN:
        if sys.version_info >= (3, 11):
            pytest.fail('snakemake-executor-plugin-slurm is not installed, but the test extra installs it on Python '
                        '3.11+: pip install -e ".[test]"')
        pytest.skip("needs snakemake-executor-plugin-slurm (Python 3.11+) to read the resource names it knows")
    names = set()
    for mod in ("snakemake_executor_plugin_slurm", "snakemake_executor_plugin_slurm_jobstep"):
        spec = importlib.util.find_spec(mod)
        if spec is None or spec.origin is None:
            pytest.fail(f"{mod}: not installed or has no source to read (it comes with the SLURM plugin)")
        sources = sorted(Path(spec.origin).parent.glob("*.py"))
        assert sources, f"{mod}: no Python source under {Path(spec.origin).parent}"
        for path in sources:
            text = path.read_text()
            names |= set(re.findall(r"resources\.get\(\s*[\"'](\w+)[\"']", text))
            names |= set(re.findall(r"resources\.(\w+)\b", text)) - {"get", "keys", "items"}
            names |= {n for t in re.findall(r"for key in \(([^)]*)\)", text) for n in re.findall(r"[\"'](\w+)[\"']", t)}
    assert names, "read no resource names from the plugin's source: its layout changed, update _plugin_resources"
    return names


# --------------------------------------------------------------------------- lint (no plugin needed)


def test_without_the_plugin_its_resource_names_are_not_guessed(monkeypatch):
    """No fallback list: a missing plugin is a failure where the test extra installs it, a skip where it cannot."""
    monkeypatch.setattr(sys.modules[__name__], "HAS_PLUGIN", False)
    outcome = pytest.fail.Exception if sys.version_info >= (3, 11) else pytest.skip.Exception
    with pytest.raises(outcome, match="snakemake-executor-plugin-slurm"):
        _plugin_resources()


def test_plugin_reads_the_resources_the_profile_relies_on():
    """With the plugin installed the known names come from its source, so a rename there fails here."""
    known = _plugin_resources()
    assert {"slurm_partition", "slurm_account", "slurm_extra", "runtime", "mem_mb", "cpus_per_task", "cpus_per_gpu",
            "gpu", "gres", "nodes"} <= known, sorted(known)


def test_profile_keys_are_snakemake_options():
    from snakemake.cli import get_argument_parser

    options = {s for action in get_argument_parser()._actions for s in action.option_strings}
    profile = _profile()
    unknown = [key for key in profile if f"--{key}" not in options]
    assert not unknown, f"not Snakemake options: {unknown}"
    assert profile["executor"] == "slurm"
    if HAS_PLUGIN:
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

        assert ExecutorPluginRegistry().is_installed("slurm")


def test_resources_name_rules_of_this_workflow():
    profile, rules = _profile(), _workflow_rules()
    default = profile["default-resources"]
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(default)
    assert not set(default) & (GPU_KEYS | {"cpus_per_task"}), "GPUs/CPUs per rule, not for every job"
    for section in ("set-resources", "set-threads"):
        # Snakemake silently ignores a rule name it does not know: a renamed rule would lose its resources.
        stray = set(profile[section]) - set(rules)
        assert not stray, f"{section} names no rule of the workflow: {sorted(stray)} (rules: {sorted(rules)})"
    for rule, res in profile["set-resources"].items():
        for key in ("runtime", "mem_mb"):
            assert isinstance(res.get(key, 1), int) and res.get(key, 1) > 0, (rule, key)


def test_resources_are_the_plugins():
    profile = _profile()
    known = _plugin_resources() | SNAKEMAKE_RESOURCES
    default = profile["default-resources"]
    assert not set(default) - known, f"unknown default resources: {sorted(set(default) - known)}"
    for rule, res in profile["set-resources"].items():
        assert not set(res) - known, f"{rule}: resources the plugin does not know: {sorted(set(res) - known)}"


def test_gpus_only_where_needed_and_never_mixed():
    profile, rules = _profile(), _workflow_rules()
    for rule, res in profile["set-resources"].items():
        extra = str(res.get("slurm_extra", ""))
        assert not FORBIDDEN_EXTRA.search(extra), f"{rule}: slurm_extra {extra!r} sets what the plugin sets"
        if HAS_PLUGIN:
            from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options

            assert not [p for p in get_forbidden_slurm_options() if re.search(p, extra)], (rule, extra)
        assert not (res.get("gres") and res.get("gpu")), f"{rule}: gres and gpu together"
        assert not ("cpus_per_task" in res and "cpus_per_gpu" in res), f"{rule}: cpus_per_task and cpus_per_gpu"
        assert "tasks" not in res and "tasks_per_gpu" not in res, f"{rule}: --ntasks-per-gpu breaks srun --cpus-*"
    for rule in GPU_RULES:
        res = profile["set-resources"][rule]
        declared = re.search(r"^\s+gpu\s*=", rules[rule], flags=re.M) is not None
        assert declared or res.get("gpu") or "gpu" in str(res.get("gres", "")), f"{rule} asks for no GPU"
        assert res["nodes"] == 1, f"{rule}: torchrun --standalone runs on one node"
        assert res["slurm_partition"] != profile["default-resources"]["slurm_partition"], f"{rule} on the CPU partition"
    for rule, body in rules.items():
        if rule in GPU_RULES:
            continue
        res = profile["set-resources"].get(rule, {})
        assert not set(res) & GPU_KEYS, f"CPU rule {rule} asks for GPUs: {res}"
        assert not re.search(r"^\s+gpu\s*=", body, flags=re.M), f"rule {rule} declares GPUs: add it to GPU_RULES"
    # Rules that take every core (threads: ALL_CORES) would ask SLURM for 1024 CPUs without a cap.
    all_cores = {r for r, body in rules.items() if re.search(r"^\s+threads:\s*ALL_CORES", body, flags=re.M)}
    assert all_cores, "no ALL_CORES rule found: update this test"
    assert all_cores <= set(profile["set-threads"]), sorted(all_cores - set(profile["set-threads"]))
    assert 1 <= profile["max-threads"] <= 256 and max(profile["set-threads"].values()) <= profile["max-threads"]


# --------------------------------------------------------------------------- dry runs and the plugin's sbatch lines


# A dry run caps every rule's threads at --cores (1 when not given); a SLURM run has no such cap (only max-threads and
# set-threads), so the dry runs give a --cores that caps nothing.
UNCAPPED = ("--cores", "100000")


def _dry_run_jobs(out: str) -> dict[str, dict]:
    """Rule -> {"threads": int, **resources} of the first job of each rule in a dry run's listing."""
    jobs = {}
    for block in re.split(r"^rule ", out, flags=re.M)[1:]:
        name = block.split(":", 1)[0]
        threads = re.search(r"^\s+threads: (\d+)", block, flags=re.M)
        res = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        entry = {"threads": int(threads.group(1)) if threads else 1}
        for item in res.group(1).split(", ") if res else []:
            key, _, value = item.partition("=")
            entry[key] = int(value) if value.isdigit() else value
        jobs.setdefault(name, entry)
    return jobs


def _sbatch_line(rule: str, job: dict) -> str:
    """The sbatch options the installed plugin builds for a job with these resources (no submission)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        def __getattr__(self, key):
            try:
                return self[key]
            except KeyError:
                raise AttributeError(key) from None

    class Job:
        name, threads = rule, job["threads"]
        resources = Resources({k: v for k, v in job.items() if k != "threads"})

    params = {"run_uuid": "run", "slurm_logfile": "log", "comment_str": f"rule_{rule}", "workdir": "/w",
              "account": "", "partition": f" -p {job['slurm_partition']}"}
    return get_submit_command(Job(), params) + set_gres_string(Job())


@needs_plugin
def test_dry_run_of_the_paper_profile(tmp_path):
    """Table 4, 5 and 9 of the paper profile plan under the SLURM profile, each job with the plugin's resources:
    one GPU per training/evaluation job, as `sbatch --gpus=1` on one node, CPU jobs without GPUs."""
    res = snakemake("-n", *UNCAPPED, "results/table4.csv", "results/table5.csv", "results/latency/table9.json",
                     "--profile", str(PROFILE), "--configfile", str(CONFIGS / "paper-k400.yaml"), cwd=tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    jobs = _dry_run_jobs(res.stdout + res.stderr)
    assert {"train_row", "evaluate_row", "emd_row", "latency", "table", "fetch_clip_weights", "k400_download",
            "preprocess_videos", "dataset_lists"} <= set(jobs), sorted(jobs)
    for rule, job in jobs.items():
        assert "slurm_extra" not in job or "gres" not in job["slurm_extra"], (rule, job)
        line = _sbatch_line(rule, job)
        assert re.search(r" -t \d+", line) and re.search(r" --mem \d+", line) and " -p " in line, (rule, line)
        if rule in GPU_RULES:
            assert job["gpu"] == 1 and job["slurm_partition"] == "gpu", (rule, job)
            assert "--gpus=1" in line and "--nodes=1" in line and "--cpus-per-gpu=" in line, (rule, line)
            assert "--gres" not in line and "--ntasks" not in line, (rule, line)
        else:
            assert "gpu" not in job and "--gpus" not in line and "--gres" not in line, (rule, line)
            assert f"--cpus-per-task={job['threads']}" in line and "--ntasks=1" in line, (rule, line)
    threads = {rule: jobs[rule]["threads"] for rule in ("train_row", "emd_row", "latency", "preprocess_videos")}
    assert threads == {"train_row": 8, "emd_row": 32, "latency": 16, "preprocess_videos": 32}, threads


@needs_plugin
def test_eight_gpus_per_job_run_torchrun_in_one_job(tmp_path):
    """The profile's comment: the paper config with gpus_per_job 8 and accum_steps 1 (a second configfile merges into
    the first) plans one 8-GPU job per row, on one node, running torchrun with 8 ranks."""
    extra = tmp_path / "8gpu.yaml"
    extra.write_text("gpus_per_job: 8\nrun: {train: {accum_steps: 1}}\n")
    res = snakemake("-n", "-p", *UNCAPPED, "results/table4.csv", "--profile", str(PROFILE), "--configfile",
                     str(CONFIGS / "paper-k400.yaml"), str(extra), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "torchrun --standalone --nproc_per_node 8 -m ila.cli train" in out
    train = _dry_run_jobs(out)["train_row"]
    assert train["gpu"] == 8
    line = _sbatch_line("train_row", train)
    assert "--gpus=8" in line and "--nodes=1" in line and "--cpus-per-gpu=8" in line, line
    assert "--cpus-per-task" not in line and "--ntasks" not in line and "--gres" not in line, line


# --------------------------------------------------------------------------- a submission through fake SLURM commands

FAKE_SLURM = '''\
#!{python}
"""A fake SLURM client command: records its arguments in $FAKE_SLURM_DIR/calls.jsonl; sbatch runs the job at once."""
import fcntl, json, os, subprocess, sys
from pathlib import Path

state = Path(os.environ["FAKE_SLURM_DIR"])
cmd, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(state / "calls.jsonl", "a") as fh:
    fh.write(json.dumps({{"cmd": cmd, "args": args}}) + "\\n")


def opt(name, short=None):
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a in (name, short) and i + 1 < len(args):
            return args[i + 1]
    return None


def record(line):
    with open(state / "jobs", "a") as fh:
        fh.write(line + "\\n")


def jobs():  # job id -> (name, state), the last record of each id
    lines = (state / "jobs").read_text().splitlines() if (state / "jobs").exists() else []
    return {{i: (n, s) for i, n, s in (line.split("|") for line in lines)}}


if cmd == "sbatch":
    with open(state / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jobid = str(1000 + len(jobs()))
        record(f"{{jobid}}|{{opt('--job-name', '-J')}}|RUNNING")
    log = Path(opt("--output", "-o").replace("%j", jobid))
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {{**os.environ, "SLURM_JOB_ID": jobid, "SLURM_JOBID": jobid}}
    if opt("--gpus"):
        env["SLURM_GPUS"] = opt("--gpus")
    with open(log, "w") as out:
        rc = subprocess.run(["/bin/sh", "-c", opt("--wrap")], cwd=opt("-D") or ".", env=env, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    record(f"{{jobid}}|{{opt('--job-name', '-J')}}|{{'COMPLETED' if rc == 0 else 'FAILED'}}")
    print(jobid)
elif cmd in ("sacct", "squeue") and opt("--name"):
    for jobid, (name, status) in jobs().items():
        if name == opt("--name"):
            print(f"{{jobid}}|{{status}}")
elif cmd == "scontrol":
    print("MaxArraySize = 1001\\nMinJobAge = 300 sec")
elif cmd == "sinfo":
    print("PARTITION\\ncpu*\\ngpu")
elif cmd in ("sacctmgr", "sshare"):
    print(os.environ.get("FAKE_SLURM_ACCOUNTS", ""))
elif cmd == "srun":  # run the job step's command here
    while args and args[0].startswith("-"):
        args = args[1:]
    if args:
        os.execvp(args[0], args)
'''
FAKE_COMMANDS = ["sbatch", "sacct", "squeue", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare", "srun"]


def _fake_slurm(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """The fake SLURM commands first on PATH and a copy of the profile with an account filled in: (the copy, the
    directory where the fake commands record their calls, the environment to run Snakemake in)."""
    bindir, state = tmp_path / "bin", tmp_path / "slurm"
    for d in (bindir, state):
        d.mkdir()
    script = bindir / "fake_slurm.py"
    script.write_text(FAKE_SLURM.format(python=sys.executable))
    script.chmod(0o755)
    for name in FAKE_COMMANDS:
        (bindir / name).symlink_to(script)
    profile = tmp_path / "profile"
    shutil.copytree(PROFILE, profile)
    config = yaml.safe_load((profile / "config.yaml").read_text())
    config["default-resources"]["slurm_account"] = "ila_test"
    (profile / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = workflow_env(FAKE_SLURM_DIR=str(state), FAKE_SLURM_ACCOUNTS="ila_test")
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    return profile, state, env


def _run_through_fake_slurm(profile: Path, work: Path, env: dict[str, str], targets: list[str],
                            configfiles: tuple[Path, ...] = (), options: tuple[str, ...] = ()):
    """Snakemake with the profile on the smoke config (and ``configfiles`` merged into it) for ``targets``; fails,
    showing the jobs' SLURM logs, unless it succeeds."""
    res = snakemake("--profile", str(profile), "--configfile", str(CONFIGS / "smoke.yaml"), *map(str, configfiles),
                    "--config", f"mlflow_uri=sqlite:///{work / 'mlflow.db'}",
                    "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "1", *options, *targets,
                    cwd=work, env=env)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((work / ".snakemake").rglob("slurm_logs/**/*.log")))
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:] + logs
    return res


def _recorded_calls(state: Path) -> tuple[list[dict], dict[str, list[str]]]:
    """Every call of a fake SLURM command, and rule_<name> -> the arguments of its (last) sbatch submission."""
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    sbatch = {re.search(r"--comment (rule_\w+?)(_wildcards|$)", " ".join(c["args"])).group(1): c["args"]
              for c in calls if c["cmd"] == "sbatch"}
    return calls, sbatch


@needs_plugin
@pytest.mark.slow
def test_submission_through_fake_slurm(tmp_path):
    """The profile (with an account filled in) drives the plugin end to end: sbatch gets partition, account, time,
    memory and CPUs for a CPU job (the MLflow store) and --gpus for a GPU job (Table 9's latency, run here on the
    CPU with the smoke config); inside each job the jobstep executor runs srun, and sacct reports completion."""
    profile, state, env = _fake_slurm(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    _run_through_fake_slurm(profile, work, env, ["results/.mlflow/table4.initialized", "results/latency/table9.json"])
    assert (work / "results/.mlflow/table4.initialized").is_file()
    assert set(json.loads((work / "results/latency/table9.json").read_text())["ms_per_clip"])

    calls, sbatch = _recorded_calls(state)
    assert set(sbatch) == {"rule_mlflow_init", "rule_latency"}, sbatch.keys()
    for _rule, args in sbatch.items():
        line = " ".join(a for a in args if not a.startswith("--wrap="))
        assert "-A ila_test" in line and re.search(r" -t \d+", line) and re.search(r" --mem \d+", line), line
        assert "--parsable" in line and "--gres" not in line and "--ntasks-per-gpu" not in line, line
    cpu, gpu = (" ".join(sbatch[r]) for r in ("rule_mlflow_init", "rule_latency"))
    assert "-p cpu" in cpu and "--cpus-per-task=1" in cpu and "--ntasks=1" in cpu and "--gpus" not in cpu, cpu
    assert "-p gpu" in gpu and "--gpus=1" in gpu and "--cpus-per-gpu=16" in gpu and "--nodes=1" in gpu, gpu
    assert "--exclusive" in gpu and "--cpus-per-task" not in gpu, gpu
    # Inside the jobs: one srun step each, with the same CPUs and GPUs; the status came from sacct.
    srun = [" ".join(c["args"]) for c in calls if c["cmd"] == "srun"]
    assert len(srun) == 2 and all("--executor slurm-jobstep" not in s and "-m snakemake" in s for s in srun), srun
    assert any("--gpus=1" in s and "--cpus-per-gpu=16" in s for s in srun), srun
    assert any("--cpus-per-task=1" in s and "--gpus" not in s for s in srun), srun
    assert any(c["cmd"] == "sacct" and "--format=JobIdRaw,State" in c["args"] for c in calls)


@needs_plugin
@pytest.mark.slow
def test_multi_rank_train_row_through_fake_slurm(tmp_path):
    """gpus_per_job 2 (the profile's comment, on the smoke config): one train_row job is submitted as `sbatch
    --gpus=2` on one node, its job step runs torchrun with 2 ranks (gloo on this CPU), and the run it trains says
    so: world size 2 in MLflow, a checkpoint the suite loads, train.done. The row's inputs (data, mini-CLIP, run
    config, MLflow store) are made beforehand without SLURM, so that only the training goes through the plugin."""
    from mlflow.tracking import MlflowClient

    from ila.engine import checkpoint as ckpt

    profile, state, env = _fake_slurm(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    ranks = tmp_path / "2ranks.yaml"
    ranks.write_text("gpus_per_job: 2\npretrain: {steps: 1, batch_size: 2}\n")  # the fewest pretraining steps
    target, run_dir = "results/table4/baseline/seed0/train.done", work / "results/table4/baseline/seed0"
    # (--until, not --omit-from train_row: Snakemake then falls back to the default target, the whole workflow.)
    prep = snakemake("--cores", "2", "--configfile", str(CONFIGS / "smoke.yaml"), str(ranks), "--config",
                     f"mlflow_uri=sqlite:///{work / 'mlflow.db'}", "--until", "synth_dataset", "pretrain_mini_clip",
                     "row_config", "mlflow_init", "--", target, cwd=work)
    assert prep.returncode == 0, prep.stderr[-4000:]
    assert not (work / target).exists() and not (run_dir / "checkpoints").exists()
    _run_through_fake_slurm(profile, work, env, [target], (ranks,),
                            ("--printshellcmds", "--slurm-keep-successful-logs"))

    calls, sbatch = _recorded_calls(state)
    assert set(sbatch) == {"rule_train_row"}, f"submitted more than the training (a new input rule?): {sbatch.keys()}"
    args = sbatch["rule_train_row"]
    line = " ".join(a for a in args if not a.startswith("--wrap="))
    assert "-p gpu" in line and "-A ila_test" in line and "--nodes=1" in line, line
    assert "--gpus=2" in line and "--cpus-per-gpu=8" in line, line
    assert "--cpus-per-task" not in line and "--ntasks" not in line and "--gres" not in line, line
    [srun] = [" ".join(c["args"]) for c in calls if c["cmd"] == "srun"]
    assert "--gpus=2" in srun and "--cpus-per-gpu=8" in srun and "train_row:" in srun, srun
    # The job's own log (sbatch --output, kept): its Snakemake ran the rule's shell command under torchrun.
    out = Path(args[args.index("--output") + 1])
    [job_log] = out.parent.glob(out.name.replace("%j", "*"))
    job_out = job_log.read_text()
    assert "Shell command: torchrun --standalone --nproc_per_node 2 -m ila.cli train " in job_out, job_out[-3000:]

    # The training: both ranks joined one process group (rank 0 records its size), the last step checkpointed.
    steps = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())["run"]["train"]["steps"]
    train_log = (work / "results/logs/table4/baseline/seed0.train.log").read_text()
    assert f"step {steps}/{steps} (100%)" in train_log, train_log[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    tags = client.get_run((run_dir / "mlflow_run_id").read_text().strip()).data.tags
    assert tags["world_size"] == "2", tags
    saved = ckpt.load(run_dir / "checkpoints" / "last.pt")
    assert saved["step"] == steps and saved["model"], sorted(saved)
    assert (work / target).is_file()
