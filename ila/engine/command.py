"""What ``ila train`` and ``ila evaluate`` do around their work, written once: the process group, the device and its
speed settings, the seeds, the run's log file, its MLflow run and the record of what decides its digits
(:mod:`ila.engine.provenance`), and all of it undone at the end."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ila.config import RunConfig
from ila.engine.distributed import DistInfo, job_threads, setup, teardown
from ila.engine.provenance import environment, record_environment
from ila.engine.runs import run_dir_of
from ila.engine.tracking import Tracker


@dataclass
class Command:
    """A running command's process (rank, device), its run directory and its MLflow run (a no-op off rank 0)."""

    info: DistInfo
    run_dir: Path
    tracker: Tracker


@contextmanager
def run_command(cfg: RunConfig, log_name: str, new_mlflow_run: bool) -> Iterator[Command]:
    """Set up a command on a run: join the process group (torchrun) and pick the device, set the threads and fast
    matmul paths, seed, log to ``<run_dir>/<log_name>`` and record what decides the digits (the command's entry in
    ``<run_dir>/environment.json`` and its MLflow tags, the command named by the log's stem: ``train``,
    ``evaluate``); at the end, the MLflow run ends (FINISHED, or FAILED when the command raised), the log file is
    detached and the process group left.

    ``new_mlflow_run``: the command may start the run's MLflow run (training); otherwise it only joins one a
    training started (an evaluation of a run trained without tracking records nothing)."""
    info = setup()
    run_dir = run_dir_of(cfg)
    handler = _attach_log_file(run_dir, log_name, info)
    track = info.is_main and (new_mlflow_run or (run_dir / "mlflow_run_id").exists())
    command = Command(info, run_dir, Tracker(cfg.tracking, run_dir, active=track, flush_every=cfg.train.log_every))
    status = "FAILED"
    try:
        _configure_speed(cfg, info)
        _seed(cfg.seed, info)
        if info.is_main:  # after the thread count is set: it is part of the record
            tags = record_environment(run_dir, Path(log_name).stem, environment(info.device, info.world_size))
            command.tracker.add_tags(tags)
        yield command
        status = "FINISHED"
    finally:
        command.tracker.end(status)
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        teardown(info)


def autocast_dtype_of(cfg: RunConfig, info: DistInfo) -> torch.dtype | None:
    """The dtype steps and evaluation run in under autocast (None: fp32): train.precision, 'auto' by device."""
    if cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and info.device.type == "cuda"):
        return torch.bfloat16
    return None


def _attach_log_file(run_dir: Path, name: str, info: DistInfo) -> logging.Handler | None:
    if not info.is_main:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / name)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    return handler


def _configure_speed(cfg: RunConfig, info: DistInfo) -> None:
    torch.set_num_threads(job_threads(cfg.train.threads))
    if info.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _seed(seed: int, info: DistInfo) -> None:
    torch.manual_seed(seed)  # model initialisation: the same on every rank
    np.random.seed(seed + info.rank)  # mixup / cutmix draws (timm uses numpy's global generator)
    random.seed(seed + info.rank)
