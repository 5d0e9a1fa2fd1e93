import os

# Tests never touch the network: a hub lookup must fail at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import inspect
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Generated stores that a test must never create in the project itself (tests use temporary stores only).
PROJECT_STORES = ("mlruns", "mlflow.db", "mlartifacts")


# --------------------------------------------------------------------------- guards on the suite itself


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """A function that carries marks (parametrize, slow, gpu...) but would not be collected is a test that silently
    never runs: fail the collection instead."""
    result = yield
    if (
        not result
        and inspect.isfunction(obj)
        and getattr(obj, "pytestmark", None)
        and obj.__module__ == getattr(collector.obj, "__name__", None)
        and not collector.funcnamefilter(name)
    ):
        marks = ", ".join(sorted({m.name for m in obj.pytestmark}))
        raise collector.CollectError(
            f"{collector.nodeid}::{name} carries pytest marks ({marks}) but pytest never collects it: "
            "rename it to start with 'test_'"
        )
    return result


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run where CUDA is present and skip cleanly, with the reason, where it is not."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA (a GPU machine); runs there with `pytest -m gpu`")
        for item in gpu_items:
            item.add_marker(skip)


def pytest_sessionstart(session):
    session.config._ila_stores_before = {n for n in PROJECT_STORES if (REPO / n).exists()}


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_ila_stores_before", set())
    new = sorted(n for n in PROJECT_STORES if (REPO / n).exists() and n not in before)
    if new:
        session.config.get_terminal_writer().line(
            f"tests wrote MLflow data into the project ({', '.join(new)}): tests must use temporary stores", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """The `tiny` synthetic preset, generated once per test session (read-only for tests)."""
    from ila.data.synth import PRESETS, generate

    return generate(PRESETS["tiny"], tmp_path_factory.mktemp("synth") / "tiny", workers=1, progress=False)


@pytest.fixture
def tiny_copy(tiny_dataset, tmp_path) -> Path:
    """A private copy of the tiny dataset that a test may damage."""
    dst = tmp_path / "tiny"
    shutil.copytree(tiny_dataset, dst)
    return dst


@pytest.fixture
def data_cfg(tiny_dataset):
    from ila.config import DataConfig

    return DataConfig(root=str(tiny_dataset), input_size=32, num_frames=8, hflip="remap")


@pytest.fixture
def table4_row_config(tiny_dataset, tmp_path):
    """A Table 4 row's run config as the workflow builds it (profile base + row + tags), shrunk to seconds on the
    tiny preset, tracked in a temporary store: ``table4_row_config("ila")``."""
    from ila.ablations import load_table, row_run_config
    from ila.config import resolve_run_config

    spec = load_table("table4")
    base = {"seed": 3, "data": {"root": str(tiny_dataset), "input_size": 32, "hflip": "remap", "batch_size": 8},
            "model": {"backbone": "ILA-mini-32", "head": "linear"},
            "train": {"steps": 2, "log_every": 1, "threads": 1},
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "tags": {"profile": "test"}}}

    def make(row_id: str):
        cfg = row_run_config(base, spec, spec.row(row_id), output_dir=str(tmp_path / "table4" / row_id))
        return resolve_run_config(cfg)

    return make


@pytest.fixture(scope="session")
def torchcodec_cpu():
    """torchcodec, loadable: skip (saying why) where it or FFmpeg's shared libraries are missing; but in CI
    (CI=true) with FFmpeg installed it must load, so a broken install fails there instead of skipping."""
    import os
    import shutil

    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads FFmpeg's libraries)
    except Exception as exc:  # ImportError, or RuntimeError/OSError when FFmpeg's libraries are missing
        reason = f"torchcodec cannot load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes") and shutil.which("ffmpeg"):
            pytest.fail(f"in CI with FFmpeg installed the torchcodec tests must run, but {reason}")
        pytest.skip(reason)
    return "cpu"
