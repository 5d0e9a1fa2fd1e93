"""One evaluated run's results, as its ``metrics.json`` holds them: written by the evaluation
(:mod:`ila.engine.evaluate`), read by the tables (:mod:`ila.tables`). Torch-free, so the tables read runs without
loading torch.

The file is the JSON object of :meth:`RunMetrics.as_json`: the fields in this class's order, a class group's
accuracies as ``top1_<group>`` / ``top5_<group>`` after ``mean_class_top1``, the training summary's ``train_*`` keys
before ``cost``, and an optional field left out when absent. Reading checks every field's presence and type and names
the file; a key this version does not know (an older version's) is ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from ila.errors import IlaError
from ila.paths import write_json


def cost_key(backbone: str, num_frames: int) -> str:
    """The key of a cost counted at ``(backbone, num_frames)`` in ``metrics.json``'s ``cost`` (``ila evaluate
    --cost-at``), e.g. ``ViT-B-32@8f``; the run's own configuration is ``run_config``."""
    return f"{backbone}@{num_frames}f"


def mlflow_cost_label(key: str) -> str:
    """A ``cost`` key as an MLflow metric's path segment: ``run_config``, or ``at_ViT-B-32_8f``."""
    return key if key == "run_config" else "at_" + re.sub(r"[^\w.-]", "_", key)


class MetricsError(IlaError, ValueError):
    """A run's metrics.json is unreadable, lacks a field or holds one of the wrong type, or runs' results do not fit
    together; the message names the file."""

    kind = "metrics error"


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# What a field's value must be, by the `kind` in its metadata: (test, what the error says was expected).
KINDS = {
    "count": (_is_count, "a whole number"),
    "number": (_is_number, "a number"),
    "mapping": (lambda v: isinstance(v, dict), "a JSON object"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "text": (lambda v: isinstance(v, str), "a string"),
}
# The per-video columns, each a list in the order of the dataset's list (what the tables' paired tests read).
PER_VIDEO_COLUMNS = ("video", "label", "pred", "top5_hit", "twin_hit")
GROUP_PREFIXES = ("top1_", "top5_")
TRAINING_PREFIX = "train_"


def _kind(kind: str, optional: bool = False):
    """A field of ``kind``; an optional one is None when the file lacks it (an older evaluation, or a run without
    it) and is then left out of the file."""
    return field(default=None, metadata={"kind": kind}) if optional else field(metadata={"kind": kind})


@dataclass(frozen=True)
class GroupAccuracy:
    """Top-1 and top-5 on the validation videos of one class group (``temporal``, ``static``); None where the group
    has no video."""

    top1: float | None
    top5: float | None


@dataclass(frozen=True, kw_only=True)
class RunMetrics:
    """The fields of metrics.json, in the file's order (see the module's docstring)."""

    num_videos: int = _kind("count")  # evaluated
    num_listed: int = _kind("count")  # in the validation list
    num_skipped: int = _kind("count")  # listed but missing or undecodable
    top1: float = _kind("number")  # fractions in [0, 1]
    top5: float = _kind("number")
    mean_class_top1: float = _kind("number")
    groups: dict[str, GroupAccuracy] = field(default_factory=dict)  # by class group, in the file's order
    temporal_score: float | None = _kind("number", optional=True)  # top-1 temporal minus top-1 static
    twin_order_accuracy: float | None = _kind("number", optional=True)
    per_class_top1: dict[str, float | None] = _kind("mapping")
    class_groups: dict[str, str | None] = _kind("mapping")
    confusion_matrix: list[list[int]] = _kind("list")
    class_names: list[str] = _kind("list")
    skipped_files: dict[str, str] = _kind("mapping")
    reversal_logit_change: float | None = _kind("number", optional=True)
    reversal_top1_flip: float | None = _kind("number", optional=True)
    reversal_probe_clips: int | None = _kind("count", optional=True)
    per_video: dict[str, list] | None = _kind("mapping", optional=True)  # PER_VIDEO_COLUMNS
    eval_world_size: int | None = _kind("count", optional=True)
    eval_videos_per_rank: list[int] | None = _kind("list", optional=True)
    training: dict[str, Any] = field(default_factory=dict)  # the run's train_summary.json (train_*), if trained here
    cost: dict[str, dict[str, Any]] | None = _kind("mapping", optional=True)  # per view: "run_config", "<bb>@<T>f"
    source: str = field(default="metrics", compare=False)  # the file (or producer) named in errors; not written

    def value(self, metric: str) -> float | None:
        """A scalar metric by its name in the file (``top1``, ``top1_temporal``, ``reversal_logit_change``, ...); None
        where the run has none."""
        kind, _, group = metric.partition("_")
        if kind in ("top1", "top5") and group and metric not in _FIELD_NAMES:
            accuracy = self.groups.get(group)
            return None if accuracy is None else getattr(accuracy, kind)
        if metric not in _FIELD_NAMES or _FIELD_KINDS[metric] not in ("count", "number"):
            raise KeyError(f"{metric!r} is not a scalar metric of metrics.json")
        return getattr(self, metric)

    @property
    def train_steps(self) -> int | None:
        return self.training.get("train_steps")

    def per_video_column(self, column: str) -> list:
        """One per-video column; a metrics.json written before there were any fails naming the file."""
        if self.per_video is None:
            raise MetricsError(f"{self.source}: no per_video outcomes (written by an older `ila evaluate`): re-run "
                               "the evaluation")
        return self.per_video[column]

    def as_json(self) -> dict[str, Any]:
        """The metrics.json object: the fields in order, groups and training summary spliced in, absent ones out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "groups":
                for group, accuracy in value.items():
                    out[f"top1_{group}"], out[f"top5_{group}"] = accuracy.top1, accuracy.top5
            elif f.name == "training":
                out.update(value)
            elif f.name != "source" and (value is not None or f.default is MISSING):
                out[f.name] = value
        return out

    def write(self, path: Path) -> Path:
        return write_json(self.as_json(), path)

    @classmethod
    def read(cls, path: Path) -> RunMetrics:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise MetricsError(f"{path}: not JSON ({exc}); re-run the evaluation") from None
        return cls.from_json(data, str(path))

    @classmethod
    def from_json(cls, data: Any, source: str, strict: bool = False) -> RunMetrics:
        """The metrics of a metrics.json object (or of the evaluation's dict, ``strict``: a key this class lacks is
        then a programming error, since it would be dropped from the file)."""
        if not isinstance(data, dict):
            raise MetricsError(f"{source}: expected a JSON object of metrics, got {type(data).__name__}")
        values: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        training: dict[str, Any] = {}
        for key, value in data.items():
            if key in _FIELD_NAMES:
                values[key] = value
            elif key.startswith(GROUP_PREFIXES):
                groups.setdefault(key[len("top1_"):], {})[key[:4]] = value
            elif key.startswith(TRAINING_PREFIX):
                training[key] = value
            elif strict:
                raise ValueError(f"{source}: {key!r} is not a field of ila.metrics.RunMetrics: add it there, or it is "
                                 "left out of metrics.json")
        _check_fields(values, source)
        return cls(**values, groups=_group_accuracies(groups, source), training=training, source=source)


_FIELD_KINDS = {f.name: f.metadata["kind"] for f in fields(RunMetrics) if "kind" in f.metadata}
_FIELD_NAMES = set(_FIELD_KINDS)


def _check_fields(values: dict[str, Any], source: str) -> None:
    """Every field there that must be, each of its kind; per-video columns complete."""
    for f in fields(RunMetrics):
        if f.name not in _FIELD_KINDS:
            continue
        if f.name not in values:
            if f.default is MISSING:
                raise MetricsError(f"{source}: no {f.name!r}: not a metrics.json of `ila evaluate`; re-run the "
                                   "evaluation")
            continue
        test, expected = KINDS[_FIELD_KINDS[f.name]]
        value = values[f.name]
        if not (test(value) or (value is None and f.default is None)):
            raise MetricsError(f"{source}: {f.name}: expected {expected}, got {value!r}")
    per_video = values.get("per_video")
    if per_video is not None:
        lacking = [c for c in PER_VIDEO_COLUMNS if not isinstance(per_video.get(c), list)]
        if lacking:
            raise MetricsError(f"{source}: per_video: expected the lists {list(PER_VIDEO_COLUMNS)}, lacking {lacking}")


def _group_accuracies(groups: dict[str, dict[str, Any]], source: str) -> dict[str, GroupAccuracy]:
    out = {}
    for group, scores in groups.items():
        for kind in ("top1", "top5"):
            value = scores.get(kind, MISSING)
            if value is MISSING:
                raise MetricsError(f"{source}: {kind}_{group}: missing (the group's other accuracy is there)")
            if not (value is None or _is_number(value)):
                raise MetricsError(f"{source}: {kind}_{group}: expected a number or null, got {value!r}")
        out[group] = GroupAccuracy(scores["top1"], scores["top5"])
    return out
