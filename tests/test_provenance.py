"""What decides a run's digits (``ila.engine.provenance``): the keys recorded, the CPU read from /proc/cpuinfo or not
at all, the run directory's record kept per command, written by every command even without tracking. That a
training and an evaluation record it as tags of their MLflow run: tests/test_tracking.py."""

import json
import logging

import pytest
import torch

from ila.config import load_run_config
from ila.engine import provenance
from ila.engine.command import run_command
from ila.engine.provenance import ENVIRONMENT_FILE, PACKAGES, environment, record_environment

CPUINFO = """processor\t: 0
model name\t: Example Xeon 9999
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""


def test_the_environment_names_what_decides_the_digits(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "cpuinfo")
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    env = environment(torch.device("cpu"), world_size=2,
                      environ={"MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "4", "UNRELATED": "x"})
    assert {f"version.{name}" for name in PACKAGES} <= set(env)
    assert env["version.torch"] == torch.__version__ and env["version.numpy"] == __import__("numpy").__version__
    assert env["python"].count(".") == 2
    assert env["torch.cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["torch.num_threads"] == str(torch.get_num_threads())
    for library in ("torch.mkl", "torch.onednn"):
        assert env[library] != "unknown", f"{library}: torch.__config__.show() no longer reads as expected"
    assert env["torch.deterministic_algorithms"] == "false"
    assert (env["cpu.model"], env["cpu.avx512_bf16"], env["cpu.amx"]) == \
        ("Example Xeon 9999", "true", "amx_bf16 amx_int8 amx_tile")
    # only the kernel variables that are set, and nothing else of the environment
    assert {k: v for k, v in env.items() if k.startswith("environ.")} == \
        {"environ.MKL_CBWR": "AVX2", "environ.OMP_NUM_THREADS": "4"}
    assert (env["device"], env["world_size"]) == ("cpu", "2")
    assert all(isinstance(v, str) for v in env.values())  # MLflow tags are text


def test_without_proc_cpuinfo_the_cpu_is_unknown_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "missing")
    env = environment(torch.device("cpu"), environ={})
    assert env["cpu.avx512_bf16"] == "unknown" and env["cpu.amx"] == "unknown" and env["cpu.model"]
    assert not any(k.startswith("environ.") for k in env)


def test_the_deterministic_switch_is_recorded():
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        assert environment(torch.device("cpu"))["torch.deterministic_algorithms"] == "warn only"
        torch.use_deterministic_algorithms(True)
        assert environment(torch.device("cpu"))["torch.deterministic_algorithms"] == "true"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_each_command_keeps_its_entry_and_a_changed_environment_is_warned(tmp_path, caplog):
    tags = record_environment(tmp_path, "train", {"python": "3.11.7", "version.torch": "2.14.1"})
    assert tags == {"env.train.python": "3.11.7", "env.train.version.torch": "2.14.1"}
    record_environment(tmp_path, "evaluate", {"python": "3.11.7", "version.torch": "2.14.1"})
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        record_environment(tmp_path, "train", {"python": "3.11.7", "version.torch": "2.15.0"})
    assert "version.torch=2.15.0 (was 2.14.1)" in caplog.text and "python" not in caplog.text
    recorded = json.loads((tmp_path / ENVIRONMENT_FILE).read_text())
    assert recorded == {"train": {"python": "3.11.7", "version.torch": "2.15.0"},
                        "evaluate": {"python": "3.11.7", "version.torch": "2.14.1"}}
    assert not list(tmp_path.glob("*.tmp"))  # written whole


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_an_unreadable_record_is_written_afresh(tmp_path, content, caplog):
    (tmp_path / ENVIRONMENT_FILE).write_text(content)
    with caplog.at_level(logging.WARNING):
        record_environment(tmp_path, "evaluate", {"python": "3.11.7"})
    assert "writing it afresh" in caplog.text
    assert json.loads((tmp_path / ENVIRONMENT_FILE).read_text()) == {"evaluate": {"python": "3.11.7"}}


def test_a_command_records_its_environment_in_the_run_directory_without_tracking(tmp_path):
    cfg = load_run_config(None, [f"output_dir={tmp_path / 'run'}", "tracking.enabled=false", "train.threads=1"])
    threads = torch.get_num_threads()
    try:
        with run_command(cfg, "evaluate.log", new_mlflow_run=False):
            pass
    finally:
        torch.set_num_threads(threads)
    recorded = json.loads((tmp_path / "run" / ENVIRONMENT_FILE).read_text())
    assert list(recorded) == ["evaluate"] and recorded["evaluate"]["torch.num_threads"] == "1"
    assert not (tmp_path / "run" / "mlflow_run_id").exists()
