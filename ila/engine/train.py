"""``ila train``: the paper's recipe on one CPU or N GPUs (torchrun), resumable (``ila evaluate``:
:mod:`ila.engine.evaluate`).

Recipe (appendix, Table 14): AdamW (0.9, 0.98), weight decay on matrices only, cosine schedule with linear warmup
stepped per optimiser step down to a minimum lr (timm), CLIP weights at the base lr and new parameters at 10x,
gradient clipping and accumulation, mixup/cutmix with label smoothing (timm), alignment loss weight lambda.

Resumption is exact on CPU: a clip's augmentation depends only on (seed, epoch, index), the per-epoch order only
on (seed, epoch), and the checkpoint carries weights, optimiser state, position in the epoch and every RNG state.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ila.config import ConfigError, RunConfig, resolve_run_config, to_dict
from ila.data.dataset import VideoDataset, build_dataloader, iterate_batches
from ila.data.device import BatchOnDevice
from ila.engine import checkpoint as ckpt
from ila.engine.command import autocast_dtype_of, run_command
from ila.engine.distributed import DistInfo
from ila.engine.evaluate import metrics_for_mlflow, run_evaluation, write_metrics
from ila.engine.tracking import Tracker
from ila.errors import IlaError
from ila.models import create_model
from ila.models.video_clip import VideoCLIP
from ila.progress import progress_bar

log = logging.getLogger(__name__)


class NonFiniteLossError(IlaError, FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept (the message says what to
    change)."""

    kind = "training diverged"


def build_optimizer(model: VideoCLIP, cfg: RunConfig) -> torch.optim.Optimizer:
    o = cfg.train.optim
    groups = []
    for name, params in model.param_groups().items():
        lr = o.lr * (o.new_lr_mult if name == "new" else 1.0)
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]  # biases, norms, scales: no weight decay
        groups += [
            {"params": decay, "lr": lr, "weight_decay": o.weight_decay, "group": name},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0, "group": name},
        ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("the model has no trainable parameters: model.freeze_visual and model.freeze_text leave "
                          "nothing to train with this variant (no temporal operator, prompt generator or new head); "
                          "set one of them to false")
    # The fused kernel updates every tensor of a group at once: a handful of ops per step instead of ~10 per
    # parameter tensor (ILA's alignment modules add ~100 small tensors; unfused, AdamW alone took 16.6 ms of an
    # H200 step). CPU and CUDA have it; elsewhere the multi-tensor (foreach) path.
    try:
        return torch.optim.AdamW(groups, betas=tuple(o.betas), eps=o.eps, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, betas=tuple(o.betas), eps=o.eps, foreach=True)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig) -> CosineLRScheduler:
    o = cfg.train.optim
    return CosineLRScheduler(
        optimizer,
        t_initial=cfg.train.steps,
        lr_min=o.min_lr,
        warmup_t=o.warmup_steps,
        warmup_lr_init=0.0,
        warmup_prefix=True,
        t_in_epochs=False,
    )


def train(cfg: RunConfig, resume: bool = True, run_eval: bool = True) -> dict[str, Any]:
    """Train, checkpoint and (unless ``run_eval`` is False) evaluate; returns the final metrics (rank 0 writes
    ``metrics.json``) or, without evaluation, the training summary."""
    with run_command(cfg, "train.log", new_mlflow_run=True) as command:
        return _train(cfg, command.info, command.run_dir, command.tracker, resume, run_eval)


@dataclass
class _Run:
    """What a training run works with, built once by :func:`_prepare`."""

    cfg: RunConfig
    info: DistInfo
    train_set: VideoDataset
    model: VideoCLIP
    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler
    mixup: Mixup | None
    ckpt_path: Path
    autocast_dtype: torch.dtype | None
    ema: ModelEmaV3 | None = None  # the averaged weights (train.ema_decay), which the run is evaluated on
    ddp: Any = None
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` done (a resumed run starts after them)


def _prepare(cfg: RunConfig, info: DistInfo, run_dir: Path) -> _Run:
    """Everything a run trains with, built after :func:`ila.engine.command.run_command` seeded (the model's
    initialisation depends on the seed)."""
    if info.is_main:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    train_set = VideoDataset(cfg.data, "train", seed=cfg.seed)
    model = create_model(cfg.model, train_set.class_names).to(info.device)
    optimizer = build_optimizer(model, cfg)
    t = cfg.train
    mixup = Mixup(mixup_alpha=t.mixup, cutmix_alpha=t.cutmix, switch_prob=t.mixup_switch_prob,
                  label_smoothing=t.label_smoothing, num_classes=len(train_set.classes)) \
        if t.mixup > 0 or t.cutmix > 0 else None
    # The decay warms up from 0 (1 - (1 + step)^-2/3, capped at ema_decay): a short run's average forgets the
    # initialisation instead of carrying it.
    ema = ModelEmaV3(model, decay=t.ema_decay, use_warmup=True) if t.ema_decay else None
    return _Run(cfg, info, train_set, model, optimizer, build_scheduler(optimizer, cfg), mixup,
                run_dir / "checkpoints" / "last.pt", autocast_dtype_of(cfg, info), ema)


def _restore(run: _Run, resume: bool) -> None:
    """Continue from the run's last checkpoint when it has one written with this config."""
    state = None
    if resume and run.ckpt_path.exists():
        state = ckpt.load(run.ckpt_path, run.info.device,
                          what_to_do="delete it, or pass --no-resume to start this run over")
    if state is not None and not _same_config(state["config"], run.cfg):
        log.warning("%s was written with another config; starting this run from scratch", run.ckpt_path)
        state = None
    if state is not None:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        if run.ema is not None:
            run.ema.module.load_state_dict(state["ema"])
        run.step, run.epoch, run.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        ckpt.set_rng_state(state["rng"])
        log.info("resumed from %s at step %d (epoch %d, batch %d)", run.ckpt_path, run.step, run.epoch,
                 run.batch_in_epoch)


def _same_config(saved: dict, cfg: RunConfig) -> bool:
    """Whether a checkpoint's saved config is ``cfg``, read by today's rules (a renamed key still matches)."""
    try:
        return to_dict(resolve_run_config(saved)) == to_dict(cfg)
    except ConfigError:
        return False


def _save(run: _Run) -> None:
    if run.info.is_main:
        ckpt.save_atomic({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                          "step": run.step, "epoch": run.epoch, "batch_in_epoch": run.batch_in_epoch,
                          "rng": ckpt.rng_state(), "config": to_dict(run.cfg),
                          "ema": run.ema.module.state_dict() if run.ema is not None else None}, run.ckpt_path)


def _forward_backward(run: _Run, video: torch.Tensor, labels: torch.Tensor, last_micro: bool) -> dict[str, float]:
    """One micro-batch: mixup, forward under autocast, loss, backward (gradients synchronised on the last one)."""
    cfg, info = run.cfg, run.info
    target = None
    if run.mixup is not None and video.shape[0] % 2 == 0:
        b, t = video.shape[:2]
        flat, target = run.mixup(video.flatten(1, 2), labels)  # cutmix boxes on the spatial dims, all frames
        video = flat.reshape(b, t, *video.shape[2:])
    for op in run.model.video_vit.operators.values():
        op.on_train_step(run.step, cfg.train)
    sync = nullcontext() if not info.distributed or last_micro else run.ddp.no_sync()
    with sync:
        with torch.autocast(info.device.type, dtype=run.autocast_dtype, enabled=run.autocast_dtype is not None):
            out = run.ddp(video)
            logits = out.logits.float()
            ce = SoftTargetCrossEntropy()(logits, target) if target is not None else \
                F.cross_entropy(logits, labels, label_smoothing=cfg.train.label_smoothing)
            loss = ce + cfg.model.align_loss_weight * out.aux_loss.float()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at step {run.step + 1} (epoch {run.epoch}); the last "
                f"good checkpoint {run.ckpt_path} is kept. Lower train.optim.lr or check the data."
            )
        (loss / cfg.train.accum_steps).backward()
    return {"loss": loss.item(), "ce": ce.item(), "align": out.aux_loss.item()}


def _optimizer_step(run: _Run) -> None:
    if run.cfg.train.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.train.optim.grad_clip)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    if run.ema is not None:
        run.ema.update(run.model, step=run.step)
    run.scheduler.step_update(run.step)


class _Meter:
    """Loss and throughput per logging window, and whole-run throughput from the second optimiser step on (the
    first pays for warm-up and caches). Data wait: from the previous step's end until a batch is ready on the device
    (decoding and augmentation there included)."""

    def __init__(self, first_step: int = 0):
        self.overall = {"clips": 0, "wait": 0.0, "total": 0.0}
        # The pace for the time left: this process's steps only (a resumed run did not run the steps before it).
        self.first_step, self.t0 = first_step, time.perf_counter()
        self._reset()

    def _reset(self) -> None:
        self.window = {"loss": 0.0, "ce": 0.0, "align": 0.0, "clips": 0, "wait": 0.0, "total": 0.0, "n": 0}

    def micro(self, losses: dict[str, float], clips: int, wait: float, total: float) -> None:
        for k, v in losses.items():
            self.window[k] += v
        self.window["clips"] += clips
        self.window["n"] += 1
        self.window["wait"] += wait
        self.window["total"] += total

    def step_done(self, step: int, clips: int, wait: float, total: float) -> None:
        if step > 1:
            self.overall["clips"] += clips
            self.overall["wait"] += wait
            self.overall["total"] += total

    def row(self, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        w, n = self.window, max(self.window["n"], 1)
        lrs = {g["group"]: g["lr"] for g in optimizer.param_groups}
        row = {"train/loss": w["loss"] / n, "train/ce": w["ce"] / n, "train/align": w["align"] / n,
               "train/lr": lrs.get("clip", lrs.get("new")), "train/lr_new": lrs.get("new", 0.0),
               "train/clips_per_s": w["clips"] / max(w["total"], 1e-9),
               "train/data_wait_frac": w["wait"] / max(w["total"], 1e-9)}
        self._reset()
        return row

    def progress(self, step: int, steps: int) -> str:
        """``1m02s elapsed, ~2m25s left``: time since this process started training, and the remaining steps at
        its pace so far."""
        elapsed = time.perf_counter() - self.t0
        done = step - self.first_step
        left = f"~{_duration(elapsed / done * (steps - step))} left" if done > 0 else "time left unknown"
        return f"{_duration(elapsed)} elapsed, {left}"

    def summary(self, step: int) -> dict[str, Any]:
        out: dict[str, Any] = {"train_steps": step}
        if self.overall["total"] > 0:
            out["train_clips_per_s"] = self.overall["clips"] / self.overall["total"]
            out["train_data_wait_frac"] = self.overall["wait"] / self.overall["total"]
        return out


def _duration(seconds: float) -> str:
    """``42s``, ``1m02s``, ``3h05m``: a log line's times, as coarse as they are useful."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _run_steps(run: _Run, tracker: Tracker, bar: tqdm) -> _Meter:
    """Train until ``train.steps``: one loader for the rest of the run (its workers stay up across epochs), each
    batch saying which epoch and which batch of it it is (what the checkpoint records to resume after)."""
    info, tcfg = run.info, run.cfg.train
    meter, micro = _Meter(first_step=run.step), 0
    loader = build_dataloader(run.train_set, world_size=info.world_size, rank=info.rank, epoch=run.epoch,
                              skip_batches=run.batch_in_epoch, epochs=None)
    on_device = BatchOnDevice(run.train_set, info.device)
    t_start = time.perf_counter()
    for batch in iterate_batches(loader) if run.step < tcfg.steps else ():
        run.epoch, run.batch_in_epoch = int(batch["epoch"][0]), int(batch["batch"][0]) + 1
        finished = on_device(batch)
        if finished is None:  # no clip of this batch decoded on the device (each failure counted)
            continue
        wait = time.perf_counter() - t_start
        micro += 1
        losses = _forward_backward(run, *finished, last_micro=micro == tcfg.accum_steps)
        clips = finished[0].shape[0] * info.world_size
        if micro == tcfg.accum_steps:
            micro = 0
            _optimizer_step(run)
            bar.update()
        meter.micro(losses, clips, wait, time.perf_counter() - t_start)
        if micro == 0:
            # Whole-run figures: the step's last micro-batch, its clips counted accum_steps times.
            meter.step_done(run.step, clips * tcfg.accum_steps, wait, time.perf_counter() - t_start)
            _log_and_save(run, tracker, meter, bar)
        t_start = time.perf_counter()
        if run.step >= tcfg.steps:
            break
    del loader  # stops the workers
    return meter


def _log_and_save(run: _Run, tracker: Tracker, meter: _Meter, bar: tqdm) -> None:
    tcfg, step = run.cfg.train, run.step
    if step % tcfg.log_every == 0 or step == tcfg.steps:
        row = meter.row(run.optimizer)
        tracker.log_metrics(row, step)
        bar.set_postfix(loss=f"{row['train/loss']:.3f}", lr=f"{row['train/lr']:.2e}")
        log.info("step %d/%d (%d%%) %s | %s", step, tcfg.steps, 100 * step // tcfg.steps,
                 " ".join(f"{k}={v:.4g}" for k, v in row.items()), meter.progress(step, tcfg.steps))
    if step % tcfg.checkpoint_every == 0 or step == tcfg.steps:
        _save(run)


def _train(cfg: RunConfig, info: DistInfo, run_dir: Path, tracker: Tracker, resume: bool,
           run_eval: bool) -> dict[str, Any]:
    run = _prepare(cfg, info, run_dir)
    _restore(run, resume)
    tracker.start(cfg, {"dataset": Path(cfg.data.root).name, "variant": cfg.model.variant,
                        "backbone": cfg.model.backbone, "world_size": str(info.world_size)})
    run.ddp = DistributedDataParallel(run.model, device_ids=[info.local_rank] if info.device.type == "cuda"
                                      else None) if info.distributed else run.model
    bar = progress_bar(total=cfg.train.steps, initial=run.step, desc=f"train {run_dir.name}", unit="step",
                       disable=None if info.is_main else True)
    run.model.train()
    meter = _run_steps(run, tracker, bar)
    bar.close()
    # The precision the steps actually ran in (train.precision 'auto' resolves by device): bf16 autocast or fp32.
    summary = {**meter.summary(run.step), "train_precision": "bf16" if run.autocast_dtype == torch.bfloat16 else "fp32"}
    if info.is_main:
        (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not run_eval:
        return summary
    evaluated = run.ema.module if run.ema is not None else run.model
    metrics = {**run_evaluation(evaluated, cfg, info, run.autocast_dtype), **summary}
    if info.is_main:
        json_path, png = write_metrics(metrics, run_dir)
        tracker.log_metrics(metrics_for_mlflow(metrics), run.step)
        for path in (json_path, png):
            tracker.log_artifact(path)
        log.info("top-1 %.4f top-5 %.4f on %d videos (%d skipped)", metrics["top1"], metrics["top5"],
                 metrics["num_videos"], metrics["num_skipped"])
    return metrics
