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


# --------------------------------------------------------------------------- layers

# Each test file's layer (a marker of the same name; pyproject.toml declares them), cheapest first:
#   unit      the library's functions on small inputs: configs, statistics, tables, downloads, the docs' links...
#   model     models built, trained or evaluated in process on the tiny preset (seconds each)
#   workflow  the workflow and the scripts run as a user runs them: snakemake (dry runs, real runs, the rehearsal),
#             the CI script, the SLURM profile, the MLflow UI in a browser, torchrun and CLI subprocesses
# A test marked with a layer of its own keeps it (a snakemake test in a model file is `workflow`). The edit-test loop
# runs `pytest -m "(unit or model) and not slow"` (the README's tests paragraph); `pytest` runs every layer.
LAYERS = {
    "unit": ["test_checkpoint", "test_claims", "test_cli", "test_config", "test_download", "test_emd",
             "test_lock_file", "test_plan", "test_power", "test_provenance", "test_readers", "test_readme",
             "test_recipe_pilot", "test_rehearsal_plan", "test_run_costs", "test_row_checks", "test_sampling",
             "test_scale_tables", "test_stats", "test_suite_guards", "test_synth", "test_tables", "test_transforms",
             "test_weights", "test_workflow_guards"],
    "model": ["test_ablations", "test_backbones", "test_catalog", "test_comparisons", "test_dataset", "test_engine",
              "test_figures", "test_flops", "test_gpu", "test_in21k", "test_latency", "test_models",
              "test_other_models", "test_probe", "test_tracking"],
    "workflow": ["test_benchmarks", "test_ci", "test_distributed_training", "test_mlflow_ui", "test_real_data",
                 "test_rehearsal", "test_slurm_profile", "test_workflow"],
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}
# Tests that share an expensive module-scoped fixture run on one pytest-xdist worker (`--dist loadgroup`), so that
# the fixture is built once: {module: (fixture, ...)}, one group per fixture.
XDIST_GROUPS = {"test_readme": ("dry_runs", "helps"), "test_rehearsal": ("k400_mirror",), "test_in21k": ("timm_in21k",)}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Every test gets its file's layer (or keeps its own) and, where its file shares a fixture, its xdist group; the
    longest run first; tests marked ``gpu`` run where CUDA is present and skip cleanly, with the reason, elsewhere."""
    unknown = sorted({item.module.__name__ for item in items if _layer(item) is None})
    if unknown:
        raise pytest.UsageError(f"tests/conftest.py: {', '.join(unknown)} has no layer: add it to LAYERS")
    for item in items:
        if not any(item.get_closest_marker(layer) for layer in LAYERS):
            item.add_marker(_layer(item))
        shared = [f for f in XDIST_GROUPS.get(item.module.__name__, ()) if f in item.fixturenames]
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}.{shared[0]}"))
    # The longest first (slow, then by layer; stable within each), so that under xdist a long test starts early
    # instead of running alone at the end. No module with a module-scoped fixture is split by this.
    order = {"workflow": 0, "model": 1, "unit": 2}
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, order[_layer(item)]))
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA (a GPU machine); runs there with `pytest -m gpu`")
        for item in gpu_items:
            item.add_marker(skip)


def _layer(item) -> str | None:
    own = [layer for layer in LAYERS if item.get_closest_marker(layer)]
    return own[0] if own else LAYER_OF.get(item.module.__name__)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml's addopts): one worker per core, at most 4 (the longest tests are workflow runs that
    use 2 cores of their own, and each worker holds a copy of torch in memory)."""
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4))


def pytest_configure(config):
    """A pytest-xdist worker's share of the cores for torch's threads (workers x threads = cores, not cores^2)."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // workers))


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


def build_once(request, tmp_path_factory, name: str, build) -> Path:
    """``build(path)`` once per test session, under pytest-xdist once for all the workers: the first to ask builds,
    under a file lock, in a folder all the workers share (the one above their own basetemps); the others wait for
    it and reuse what it built (xdist's documented pattern). A build that failed is not reused: the next asker
    builds again (and fails the same way, on its own tests)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if hasattr(request.config, "workerinput") else base) / "shared"
    root.mkdir(exist_ok=True)
    path = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (root / f"{name}.done").exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            build(path)
            (root / f"{name}.done").touch()
    return path


@pytest.fixture(scope="session")
def tiny_dataset(request, tmp_path_factory) -> Path:
    """The `tiny` synthetic preset, generated once per test session (read-only for tests)."""
    from ila.data.synth import PRESETS, generate

    def build(path):
        generate(PRESETS["tiny"], path, workers=1, progress=False)

    return build_once(request, tmp_path_factory, "synth-tiny", build)


@pytest.fixture(scope="session")
def trained_baseline(request, tmp_path_factory, tiny_dataset):
    """The baseline variant trained 60 steps on the tiny preset and evaluated, tracked in its own MLflow store
    (tests/tiny_runs.py): ``(cfg, metrics, run_dir)``, once per test session. Read-only: a test that evaluates or
    trains again works on a copy (``tiny_runs.copy_run``)."""
    from tiny_runs import load_baseline, train_baseline

    root = build_once(request, tmp_path_factory, "baseline", lambda path: train_baseline(tiny_dataset, path))
    return load_baseline(root)


@pytest.fixture(scope="session")
def trained_runs(request, tmp_path_factory, tiny_dataset) -> dict[str, Path]:
    """Table 4's ILA, Divided ST and ATA rows as the workflow writes and trains them, three steps each, tracked in
    one MLflow store (``<root>/mlflow.db``, root = ``run_dir.parents[2]``): ``{row: run_dir}``, once per test
    session. Read-only, like ``trained_baseline``."""
    from tiny_runs import TABLE4_ROWS, train_table4_rows

    root = build_once(request, tmp_path_factory, "table4-rows", lambda path: train_table4_rows(tiny_dataset, path))
    import torch

    torch.set_num_threads(1)  # as training leaves it: the figures' tests redo the forward passes of the figures
    return {row: root / "table4" / row / "seed0" for row in TABLE4_ROWS}


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
