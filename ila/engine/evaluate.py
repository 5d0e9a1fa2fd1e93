"""``ila evaluate``: deterministic multi-view evaluation with an exact distributed reduction.

Every validation video is seen by exactly one rank (no padding), its ``test_clips x test_crops`` views are scored
and their softmax averaged; confusion matrix, top-5 hits and twin-pair hits are summed across ranks, so the figures
are the same for any number of processes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ila.config import RunConfig, to_dict
from ila.data.dataset import VideoDataset, build_dataloader, iterate_batches
from ila.engine.command import autocast_dtype_of, run_command
from ila.engine.distributed import DistInfo, all_gather_objects, all_reduce_sum
from ila.engine.runs import load_trained
from ila.metrics import RunMetrics, cost_key, mlflow_cost_label
from ila.paths import resolve_root
from ila.progress import progress_bar

log = logging.getLogger(__name__)


def evaluate(
    cfg: RunConfig, checkpoint: str | Path | None = None, cost_at: list[tuple[str, int, str | None]] | None = None
) -> dict[str, Any]:
    """Evaluate a run's final checkpoint (or the given one) and write ``metrics.json`` beside it.

    The metrics also carry the model's cost per view (GFLOPs, parameters) at the run's config and at each
    ``(backbone, frames, head)`` of ``cost_at`` (e.g. the paper's ViT-B/32, 8 frames, text head; head None keeps
    the run's), so tables read every figure from one file. Eval metrics and artifacts join the run's MLflow run
    when it has one.
    """
    with run_command(cfg, "evaluate.log", new_mlflow_run=False) as command:
        info, run_dir, tracker = command.info, command.run_dir, command.tracker
        model, _ = load_trained(cfg, checkpoint, info.device)
        metrics = run_evaluation(model, cfg, info, autocast_dtype_of(cfg, info))
        summary = run_dir / "train_summary.json"
        if summary.exists():
            metrics.update(json.loads(summary.read_text()))
        if info.is_main:
            metrics["cost"] = _costs(cfg, cost_at or [])
            tracker.start(cfg, {})
            paths = write_metrics(metrics, run_dir)
            tracker.log_metrics(metrics_for_mlflow(metrics), metrics.get("train_steps", 0))
            for path in (*paths, run_dir / "config.yaml"):
                if path.is_file():
                    tracker.log_artifact(path)
        return metrics


def _costs(cfg: RunConfig, cost_at: list[tuple[str, int, str | None]]) -> dict[str, Any]:
    from ila.models.flops import model_cost

    out = {"run_config": {"backbone": cfg.model.backbone, "num_frames": cfg.model.num_frames,
                          **asdict(model_cost(cfg.model))}}
    for backbone, frames, head in cost_at:
        head = head or cfg.model.head
        cost = model_cost({**to_dict(cfg.model), "backbone": backbone, "num_frames": frames, "pretrained": None,
                           "profile_operator_args": {}, "head": head})
        out[cost_key(backbone, frames)] = {"backbone": backbone, "num_frames": frames, "head": head, **asdict(cost)}
    return out


@torch.no_grad()
def run_evaluation(model: torch.nn.Module, cfg: RunConfig, info: DistInfo, autocast_dtype=None) -> dict[str, Any]:
    dataset = VideoDataset(cfg.data, "val", seed=cfg.seed)
    loader = build_dataloader(dataset, cfg.train.eval_batch_size or cfg.data.batch_size, info.world_size, info.rank)
    classes = dataset.classes
    c = len(classes)
    twin = torch.tensor([cl.twin if cl.twin is not None else -1 for cl in classes], device=info.device)
    confusion = torch.zeros(c, c, dtype=torch.long, device=info.device)
    top5 = torch.zeros(c, dtype=torch.long, device=info.device)  # per true class, for the class groups' top-5
    twin_hits = torch.zeros((), dtype=torch.long, device=info.device)
    twin_total = torch.zeros((), dtype=torch.long, device=info.device)
    model.eval()
    # Per-video outcomes (list index, prediction, top-5 hit, twin-order hit or -1): the tables' paired tests compare
    # rows on the same videos, and their indices are the rank's shard.
    outcomes: list[tuple[int, int, int, int]] = []
    probe = ReversalProbe(len(dataset))
    bar = progress_bar(total=len(loader), desc="evaluate", unit="batch", disable=None if info.is_main else True)
    for batch in iterate_batches(loader):
        video = batch["video"].to(info.device, non_blocking=True)  # [B, V, T, 3, S, S]
        labels = batch["label"].to(info.device)
        b, v = video.shape[:2]
        with torch.autocast(info.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(video.flatten(0, 1)).logits.float()
        probe.update(model, batch["index"], video[:, 0], logits.reshape(b, v, c)[:, 0], autocast_dtype)
        probs = logits.softmax(-1).reshape(b, v, c).mean(1)
        pred = probs.argmax(-1)
        confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
        k = min(5, c)
        hit5 = (probs.topk(k, dim=-1).indices == labels[:, None]).any(-1)
        top5.index_add_(0, labels, hit5.long())
        t = twin[labels]
        has = t >= 0
        twin_hit = torch.full_like(labels, -1)
        if has.any():
            idx = torch.arange(b, device=info.device)[has]
            twin_hit[has] = (probs[idx, labels[has]] > probs[idx, t[has]]).long()
            twin_hits += twin_hit[has].sum()
            twin_total += has.sum()
        outcomes += zip(batch["index"].tolist(), pred.tolist(), hit5.long().tolist(), twin_hit.tolist(), strict=False)
        bar.update()
    bar.close()
    for t in (confusion, top5, twin_hits, twin_total):
        all_reduce_sum(t, info)
    skipped: dict[str, str] = {}
    for part in all_gather_objects(dataset.bad, info):
        skipped.update(part)
    # Decode failures were attempted by this rank too: they count towards its shard.
    failed = [i for i, rec in enumerate(dataset.records) if str(rec.path) in dataset.bad]
    gathered = all_gather_objects((outcomes, failed), info)
    shards = [sorted([o[0] for o in done] + bad) for done, bad in gathered]
    check_shards(shards, len(dataset))
    metrics = summarise(confusion.cpu(), top5.cpu(), int(twin_hits), int(twin_total), classes, skipped,
                        dataset.num_listed)
    metrics.update(probe.summary(info))
    metrics["per_video"] = per_video_outcomes([o for done, _ in gathered for o in done], dataset)
    metrics["eval_world_size"] = info.world_size
    metrics["eval_videos_per_rank"] = [len(s) for s in shards]
    return metrics


class ReversalProbe:
    """How much a model's output depends on frame order: on the first view of ``clips`` evenly spaced validation
    videos, the mean absolute change of the logits when the clip is played backwards, relative to the logits' spread
    (``reversal_logit_change``; 0 for any model blind to order), and how often the top-1 class changes
    (``reversal_top1_flip``). Costs one extra forward pass of one view for those clips."""

    def __init__(self, num_videos: int, clips: int = 64):
        self.step = max(1, num_videos // clips)
        self.limit = clips * self.step
        self.change = self.spread = self.flips = self.count = 0.0

    def update(self, model, index: torch.Tensor, first_view: torch.Tensor, logits: torch.Tensor, autocast_dtype):
        pick = ((index % self.step == 0) & (index < self.limit)).to(first_view.device)
        if not pick.any():
            return
        with torch.autocast(first_view.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            rev = model(first_view[pick].flip(1)).logits.float()
        fwd = logits[pick]
        self.change += float((fwd - rev).abs().mean(-1).sum())
        self.spread += float(fwd.std(-1).sum())
        self.flips += float((fwd.argmax(-1) != rev.argmax(-1)).sum())
        self.count += int(pick.sum())

    def summary(self, info: DistInfo) -> dict[str, float]:
        totals = torch.tensor([self.change, self.spread, self.flips, self.count], dtype=torch.float64,
                              device=info.device)
        all_reduce_sum(totals, info)
        change, spread, flips, count = totals.tolist()
        if not count:
            return {}
        return {"reversal_logit_change": change / max(spread, 1e-12), "reversal_top1_flip": flips / count,
                "reversal_probe_clips": int(count)}


def per_video_outcomes(outcomes: list[tuple[int, int, int, int]], dataset: VideoDataset) -> dict[str, list]:
    """Column lists in list order, keyed by the video's path relative to the dataset root (stable across runs)."""
    outcomes = sorted(outcomes)
    return {
        "video": video_keys(dataset, [i for i, *_ in outcomes]),
        "label": [dataset.records[i].label for i, *_ in outcomes],
        "pred": [p for _, p, _, _ in outcomes],
        "top5_hit": [h for _, _, h, _ in outcomes],
        "twin_hit": [t for *_, t in outcomes],
    }


def video_keys(dataset: VideoDataset, indices: list[int]) -> list[str]:
    """The videos at ``indices`` of the dataset's list, as paths relative to its root: what every per-video result
    (evaluation outcomes, EMD) is keyed by, so tables pair rows video by video."""
    root = resolve_root(dataset.cfg.root)
    return [str(relative_path(dataset.records[i].path, root)) for i in indices]


def relative_path(path: Path, root: Path) -> Path:
    try:
        return Path(path).resolve().relative_to(root.resolve())
    except ValueError:
        return Path(path)


def check_shards(shards: list[list[int]], length: int) -> None:
    """Every video attempted by exactly one rank: the sums above would otherwise count some twice or never."""
    seen = [i for shard in shards for i in shard]
    if len(seen) != len(set(seen)) or set(seen) != set(range(length)):
        dup = len(seen) - len(set(seen))
        missing = length - len(set(seen) & set(range(length)))
        raise RuntimeError(
            f"evaluation shards are wrong: {dup} videos evaluated by more than one rank, {missing} by none "
            f"({len(shards)} ranks, {length} videos); check the process group (RANK / WORLD_SIZE)"
        )


def summarise(confusion, top5, twin_hits, twin_total, classes, skipped, num_listed) -> dict[str, Any]:
    """``top5``: top-5 hits per true class ``[C]``."""
    n = int(confusion.sum())
    correct = confusion.diag()
    per_class_total = confusion.sum(1)
    per_class = [float(correct[i] / per_class_total[i]) if per_class_total[i] > 0 else None
                 for i in range(len(classes))]
    metrics: dict[str, Any] = {
        "num_videos": n,
        "num_listed": num_listed,
        "num_skipped": len(skipped),
        "top1": float(correct.sum() / max(n, 1)),
        "top5": int(top5.sum()) / max(n, 1),
        "mean_class_top1": float(sum(p for p in per_class if p is not None)
                                 / max(1, sum(p is not None for p in per_class))),
    }
    groups = sorted({cl.group for cl in classes if cl.group})
    for g in groups:
        ids = [cl.id for cl in classes if cl.group == g]
        total = int(per_class_total[ids].sum())
        metrics[f"top1_{g}"] = float(correct[ids].sum() / total) if total else None
        metrics[f"top5_{g}"] = float(top5[ids].sum() / total) if total else None
    if metrics.get("top1_temporal") is not None and metrics.get("top1_static") is not None:
        # The temporal score of the paper's Table 13 (from its benchmark [72]): Top-1 on classes that need frame
        # order minus Top-1 on classes that appearance alone decides.
        metrics["temporal_score"] = metrics["top1_temporal"] - metrics["top1_static"]
    if twin_total:
        # Within a time-reversed twin pair, how often the true class outscores its twin: 0.5 is chance, the ceiling
        # of any model that ignores frame order.
        metrics["twin_order_accuracy"] = twin_hits / twin_total
    metrics["per_class_top1"] = {cl.name: per_class[cl.id] for cl in classes}
    metrics["class_groups"] = {cl.name: cl.group for cl in classes}
    metrics["confusion_matrix"] = confusion.tolist()
    metrics["class_names"] = [cl.name for cl in classes]
    metrics["skipped_files"] = skipped
    return metrics


def write_metrics(metrics: dict[str, Any], run_dir: Path) -> tuple[Path, Path]:
    """``metrics.json`` (through :class:`ila.metrics.RunMetrics`, the format the tables read) and the confusion
    matrix's plot."""
    path = RunMetrics.from_json(metrics, "the evaluation", strict=True).write(run_dir / "metrics.json")
    png = run_dir / "confusion_matrix.png"
    plot_confusion(metrics, png)
    return path, png


def plot_confusion(metrics: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = torch.tensor(metrics["confusion_matrix"], dtype=torch.float)
    cm = cm / cm.sum(1, keepdim=True).clamp(min=1)
    names = metrics["class_names"]
    fig, ax = plt.subplots(figsize=(2 + 0.35 * len(names), 1.5 + 0.35 * len(names)))
    im = ax.imshow(cm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"top-1 {metrics['top1']:.3f} ({metrics['num_videos']} videos)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


COST_FIELDS = ("gflops", "gflops_operator", "params_total", "params_trainable", "params_operator", "params_added")


def metrics_for_mlflow(metrics: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics under ``eval/``, and the model's cost per view (``metrics["cost"]``) under
    ``cost/run_config/...`` and ``cost/at_<backbone>_<frames>f/...`` (e.g. the paper's ViT-B/32, 8 frames), so runs
    can be compared on cost as well as accuracy."""
    out = {f"eval/{k}": float(v) for k, v in metrics.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
    for where, cost in metrics.get("cost", {}).items():
        out.update({f"cost/{mlflow_cost_label(where)}/{k}": float(cost[k])
                    for k in COST_FIELDS if cost.get(k) is not None})
    return out
