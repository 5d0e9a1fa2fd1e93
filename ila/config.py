"""The suite's one config system: typed dataclasses filled strictly from YAML and ``key=value`` overrides.

Unknown keys and values of the wrong type fail at once with the dotted key and what was expected, so a
bad config never reaches a training job.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ila import catalog
from ila.backbone_configs import backbone_depth, backbone_examples, backbone_image_size
from ila.errors import ConfigError
from ila.paths import synth_root

# --------------------------------------------------------------------------- sections


@dataclass
class AugmentConfig:
    """Training-time augmentation (paper appendix, Table 14)."""

    multiscale_scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    color_jitter_p: float = 0.8
    grayscale_p: float = 0.2
    # Only used when data.hflip is 'on' or 'remap'.
    flip_p: float = 0.5

    def validate(self, where: str) -> None:
        for name in ("color_jitter_p", "grayscale_p", "flip_p"):
            _check_range(f"{where}.{name}", getattr(self, name), 0.0, 1.0)
        if not self.multiscale_scales or any(not 0 < s <= 1 for s in self.multiscale_scales):
            raise ConfigError(f"{where}.multiscale_scales: expected scales in (0, 1], got {self.multiscale_scales}")


@dataclass
class DataConfig:
    """A file-based video dataset in the Kinetics-400 list format (see ``ila.data.annotations``)."""

    root: str = synth_root("default")
    train_list: str = "train.txt"
    val_list: str = "val.txt"
    labels: str = "labels.csv"
    num_frames: int = 8
    # 'segment': Kinetics-style sparse sampling, one frame per segment.
    # 'uniform': SSv2-style fixed-stride sampling over the whole video, no per-segment offsets.
    sampling: Literal["segment", "uniform"] = "segment"
    # Pixels per side of a training or test crop; in a run config, null (the default) takes the backbone's own input
    # size (224, or 336 for ViT-L/14@336, 32 for the mini-CLIP), which a set value must equal.
    input_size: int | None = None
    # Short side before cropping; None means input_size * 256 / 224 as in the CLIP video recipes.
    resize_short: int | None = None
    # 'auto': PyAV if installed, else decord. 'torchcodec' needs its extra and FFmpeg's shared libraries.
    reader: Literal["auto", "pyav", "decord", "torchcodec"] = "auto"
    # 'on' flips without touching labels (Kinetics); 'remap' flips and maps each label to its mirror
    # class from the labels file (direction classes); 'off' never flips (SSv2 without a mirror map).
    hflip: Literal["off", "on", "remap"] = "off"
    test_clips: int = 1
    test_crops: Literal[1, 3] = 1
    # Where training augmentation runs. 'loader': all of it in the DataLoader workers. 'device': the workers decode,
    # resize, crop and flip, and ship uint8; colour jitter, grayscale and normalisation run on the training device for
    # the whole batch at once, with the parameters still drawn in the workers from (seed, epoch, index): the same
    # clips (bit for bit on the CPU), for less worker CPU (the photometric ops are most of a clip's augmentation) and
    # a quarter of the bytes through the loader. The paper profiles use 'device'.
    augment_on: Literal["loader", "device"] = "loader"
    # Where training clips are decoded. 'loader': in the DataLoader workers (data.reader). 'device': the workers only
    # read each video's frame count and size and draw the frame indices, crop box, flip and colour parameters; the
    # training process decodes those frames on its device with torchcodec (the GPU's video decoder on CUDA) and
    # crops, flips and colours them there. For when the CPU cores cannot decode as fast as the GPU trains; needs
    # augment_on: device and the torchcodec extra (docs/paper-scale.md, "What it costs").
    decode_on: Literal["loader", "device"] = "loader"
    # Decoded training videos kept in memory per loading process, in MiB (0: off). Each video is then decoded once
    # per process rather than once per draw; worth it when the decoded training split fits (docs/paper-scale.md). A
    # training loader's workers live for the whole run, so each keeps its own cache (memory: budget x max(1,
    # num_workers)).
    frame_cache_mb: int = 0
    # Fraction of unreadable or missing videos tolerated before loading fails.
    max_bad_fraction: float = 0.01
    # At most this many videos of each class from each split's list (the first in list order; null: all of them):
    # the rehearsal's few videos per class from the real lists (workflow/config/rehearsal.yaml).
    train_per_class: int | None = None
    val_per_class: int | None = None
    batch_size: int = 8
    num_workers: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self, where: str = "data") -> None:
        for name in ("num_frames", "input_size", "test_clips", "batch_size", "train_per_class", "val_per_class"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: expected a positive integer, got {getattr(self, name)}")
        for name in ("num_workers", "frame_cache_mb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: expected >= 0, got {getattr(self, name)}")
        if self.resize_short is not None and self.resize_short < (self.input_size or 0):
            raise ConfigError(
                f"{where}.resize_short: expected >= input_size ({self.input_size}), got {self.resize_short}"
            )
        _check_range(f"{where}.max_bad_fraction", self.max_bad_fraction, 0.0, 1.0)
        if self.decode_on == "device" and self.augment_on != "device":
            raise ConfigError(f"{where}.decode_on: 'device' decodes clips in the training process, so their "
                              f"augmentation must run there too: set {where}.augment_on: device")
        self.augment.validate(f"{where}.augment")

    @property
    def crop_size(self) -> int:
        if self.input_size is None:
            raise ConfigError("data.input_size: not resolved (a run config fills it from the backbone)")
        return self.input_size

    @property
    def short_side(self) -> int:
        return self.resize_short if self.resize_short is not None else int(round(self.crop_size * 256 / 224))


@dataclass
class ModelConfig:
    """A video model: a catalogued variant (``ila.catalog.list_variants()``) plus overrides of its defaults."""

    variant: str = catalog.DEFAULT_VARIANT
    # An open_clip model name: its own CLIP towers, or a timm ViT as the image tower (open_clip's timm_model_name).
    backbone: str = "ViT-B-32"
    # An open_clip pretrained tag (needs the hub), a local checkpoint path, or null for random initialisation.
    pretrained: str | None = None
    # In a run config, filled from data.num_frames (the one frame count); set it only for a model built on its own.
    num_frames: int = 8
    # Filled from the variant: the catalogued temporal operator (ila.catalog.OPERATORS) and its options.
    operator: str | None = None
    operator_args: dict = field(default_factory=dict)
    # Options a profile sets to scale the operator with its backbone (e.g. the alignment module's channels for the
    # embedded mini-CLIP); operator_args win over them, and costs counted at another backbone leave them out.
    profile_operator_args: dict = field(default_factory=dict)
    # 0-based indices of the blocks that get the operator; null = every block.
    blocks: list[int] | None = None
    # [k, n]: the operator in the k-th (1-based) of n equal groups of consecutive blocks, whatever the depth (Table 7:
    # the paper's 12 blocks in 4 groups of 3; the mini-CLIP's 4 blocks in 4 groups of 1). Excludes `blocks`.
    block_group: list[int] | None = None
    head: Literal["text", "linear"] = "text"
    prompt_generator: bool = True
    # How frame embeddings become the video's: a catalogued aggregator (ila.catalog.AGGREGATORS): 'mean' (Eq. 8), 'mit'
    # (X-CLIP's multi-frame integration transformer), 'evl' (EVL's decoder over the last blocks; a linear head only).
    aggregator: str = "mean"
    # TimeSformer's learned temporal position embedding: a zero-initialised [T, width] parameter added to every frame's
    # patch tokens before the first block, so that attention over time can tell frames apart (without it, temporal
    # attention is permutation-equivariant and the frame mean removes the rest). Set by the divided_st and ata variants.
    time_embed: bool = False
    freeze_visual: bool = False
    freeze_text: bool = True
    prompt_template: str = "a video of {}."
    # Weight lambda of the alignment loss (Eq. 10) in the total loss.
    align_loss_weight: float = 1.0
    # A linear probe (Table 12): a trained run's checkpoint (its checkpoints/last.pt). This section is then that
    # run's model with a linear head: every weight but the head's is loaded from the checkpoint and frozen (kept in
    # eval mode), and only the new head trains, on this run's dataset.
    probe_from: str | None = None

    def validate(self, where: str = "model") -> None:
        if self.num_frames < 1:
            raise ConfigError(f"{where}.num_frames: expected a positive integer, got {self.num_frames}")
        if self.align_loss_weight < 0:
            raise ConfigError(f"{where}.align_loss_weight: expected >= 0, got {self.align_loss_weight}")
        if "{}" not in self.prompt_template:
            raise ConfigError(f"{where}.prompt_template: expected a '{{}}' placeholder for the class name")
        if self.probe_from is not None and self.head != "linear":
            raise ConfigError(f"{where}.probe_from: a linear probe trains a new linear head on the frozen model; set "
                              f"{where}.head: linear")
        aggregator = catalog.lookup(catalog.AGGREGATORS, self.aggregator, f"{where}.aggregator", "video aggregator")
        if aggregator.linear_head_only and self.head != "linear":
            raise ConfigError(f"{where}.aggregator: {self.aggregator!r} ({aggregator.description}) returns the "
                              f"tower's width for a linear head; set {where}.head: linear")
        if self.block_group is not None:
            g = self.block_group
            if not (isinstance(g, list) and len(g) == 2 and all(isinstance(v, int) for v in g) and 1 <= g[0] <= g[1]):
                raise ConfigError(f"{where}.block_group: expected [k, n] with 1 <= k <= n (the k-th of n groups of "
                                  f"blocks), got {g!r}")
            if self.blocks is not None:
                raise ConfigError(f"{where}: set either blocks or block_group, not both")

    def operator_blocks(self, depth: int) -> list[int] | None:
        """The 0-based blocks that get the temporal operator on a backbone of ``depth`` blocks (None: all of them)."""
        if self.block_group is None:
            bad = [i for i in self.blocks or [] if not 0 <= i < depth]
            if bad:
                raise ConfigError(f"model.blocks: {bad} outside 0..{depth - 1} ({self.backbone} has {depth} blocks)")
            return self.blocks
        k, n = self.block_group
        if depth % n:
            raise ConfigError(f"model.block_group: {n} groups do not divide the backbone's {depth} blocks")
        size = depth // n
        return list(range((k - 1) * size, k * size))

    def operator_options(self) -> Any:
        """The operator's options dataclass (its catalog entry's) from the profile's and the config's
        ``operator_args``; None without an operator."""
        if self.operator is None:
            return None
        operator = catalog.lookup(catalog.OPERATORS, self.operator, "model.operator", "temporal operator")
        return build(operator.options, {**self.profile_operator_args, **self.operator_args}, "model.operator_args")


@dataclass
class OptimConfig:
    """AdamW with a cosine schedule stepped per iteration (paper appendix, Table 14; K400 defaults)."""

    lr: float = 8e-6  # base learning rate: the CLIP weights
    new_lr_mult: float = 10.0  # parameters the model adds get lr x this
    min_lr: float = 8e-8
    warmup_steps: int = 0
    weight_decay: float = 0.003
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    grad_clip: float | None = 1.0

    def validate(self, where: str = "train.optim") -> None:
        for name in ("lr", "min_lr", "weight_decay", "eps", "new_lr_mult"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: expected >= 0, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"{where}.warmup_steps: expected >= 0, got {self.warmup_steps}")
        if len(self.betas) != 2:
            raise ConfigError(f"{where}.betas: expected two numbers, got {self.betas}")


@dataclass
class TrainConfig:
    steps: int = 50000  # optimiser steps (the paper: 50 000 at batch 256)
    accum_steps: int = 1  # micro-batches per optimiser step (effective batch = data.batch_size x world x this)
    optim: OptimConfig = field(default_factory=OptimConfig)
    label_smoothing: float = 0.1
    mixup: float = 0.8  # mixup alpha; 0 disables
    cutmix: float = 1.0  # cutmix alpha; 0 disables
    mixup_switch_prob: float = 0.5
    # Point jitter of ILA operators: halved every `jitter_halve_every` steps from `jitter_decay_start` (release:
    # every epoch from epoch 30); null keeps it constant.
    jitter_decay_start: int | None = None
    jitter_halve_every: int | None = None
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    threads: int | None = None  # torch threads; null: from the job's CPU allotment
    log_every: int = 20  # steps between metric flushes
    checkpoint_every: int = 500
    eval_batch_size: int | None = None
    # An exponential moving average of the weights (timm's ModelEmaV3, its decay warmed up from 0), which the run is
    # evaluated on; null: the last step's weights. Averaging over the last steps' path shrinks the spread between
    # trainings that differ only in their seed.
    ema_decay: float | None = None

    def validate(self, where: str = "train") -> None:
        for name in ("steps", "accum_steps", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"{where}.ema_decay: expected a decay between 0 and 1 (e.g. 0.99) or null, got "
                              f"{self.ema_decay}")
        for name in ("mixup", "cutmix", "label_smoothing"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: expected >= 0, got {getattr(self, name)}")
        self.optim.validate(f"{where}.optim")


@dataclass
class TrackingConfig:
    enabled: bool = True
    # null: $MLFLOW_TRACKING_URI, else the project root's store (ila.defaults.mlflow_uri_at)
    uri: str | None = None
    experiment: str = "ila"
    run_name: str | None = None  # null: the run directory's name
    tags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PretrainConfig:
    """How the embedded default pretrains a mini-CLIP (``ila pretrain-clip``; the workflow's ``pretrain:``)."""

    steps: int = 300
    batch_size: int = 128  # image-caption pairs per step
    pool_size: int = 8192  # distinct pairs drawn from
    lr: float = 1e-3  # peak learning rate (cosine schedule, 5% warm-up)
    seed: int = 0  # of the pairs and the initialisation


@dataclass
class RunConfig:
    """One training run and its evaluation: everything ``ila train`` / ``ila evaluate`` need."""

    seed: int = 0
    output_dir: str = "results/runs/default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """A YAML file plus ``key=value`` overrides -> a validated :class:`RunConfig` (model variant defaults applied)."""
    data = load_yaml(path) if path else {}
    apply_overrides(data, overrides or [])
    return resolve_run_config(data)


def resolve_run_config(data: Mapping[str, Any]) -> RunConfig:
    data = dict(data)
    model_data = dict(data.pop("model", None) or {})
    cfg = build(RunConfig, data)
    # One frame count: the clips' (data.num_frames). A model section may repeat it, never contradict it.
    frames = model_data.get("num_frames", cfg.data.num_frames)
    if frames != cfg.data.num_frames:
        raise ConfigError(f"model.num_frames: {frames!r} differs from data.num_frames ({cfg.data.num_frames}); the "
                          "model takes the clips' frame count, set data.num_frames only")
    cfg.model = resolve_model_config({**model_data, "num_frames": cfg.data.num_frames}, "model")
    size = backbone_image_size(cfg.model.backbone)
    if cfg.data.input_size is None:
        cfg.data.input_size = size or 224
    elif size is not None and size != cfg.data.input_size:
        raise ConfigError(f"data.input_size: {cfg.data.input_size} but {cfg.model.backbone} takes {size}x{size} "
                          f"images (its position embeddings are fixed): set data.input_size: {size}")
    return cfg


def resolve_model_config(data: Mapping[str, Any] | ModelConfig | None = None, where: str = "model") -> ModelConfig:
    """Variant defaults, then the given fields. Unknown variants and keys fail naming the key."""
    if isinstance(data, ModelConfig):
        data = to_dict(data)
    data = dict(data or {})
    if "mit" in data:
        _migrate_mit(data, where)
    name = data.get("variant", ModelConfig.variant)
    if name not in catalog.VARIANTS:
        raise ConfigError(f"{where}.variant: unknown model variant {name!r}; expected one of "
                          f"{catalog.list_variants()}")
    defaults = catalog.variant_defaults(name)
    merged = {**defaults, **data}
    if "operator_args" in data and "operator_args" in defaults:
        merged["operator_args"] = {**defaults["operator_args"], **data["operator_args"]}
    cfg = build(ModelConfig, merged, where)
    _check_buildable(cfg, where)
    return cfg


def _check_buildable(cfg: ModelConfig, where: str) -> None:
    """What building the model would refuse, found from the config alone: the operator and its options, the
    backbone's name, and the operator's blocks within its depth."""
    cfg.operator_options()
    try:
        depth = backbone_depth(cfg.backbone)
    except KeyError:
        raise ConfigError(f"{where}.backbone: unknown backbone {cfg.backbone!r}; expected an open_clip model name "
                          f"such as {backbone_examples()}") from None
    if depth is not None:
        cfg.operator_blocks(depth)


def _migrate_mit(data: dict[str, Any], where: str) -> None:
    """``model.mit`` (a boolean) became ``model.aggregator``: configs saved by earlier versions (every run's
    config.yaml and checkpoint) still read, as the aggregator they meant."""
    mit = data.pop("mit")
    if not isinstance(mit, bool):
        raise ConfigError(f"{where}.mit: expected a boolean (now {where}.aggregator: mit or mean), got {mit!r}")
    meant = "mit" if mit else "mean"
    if data.setdefault("aggregator", meant) != meant:
        raise ConfigError(f"{where}.mit: {mit} contradicts {where}.aggregator: {data['aggregator']}; "
                          f"{where}.mit is replaced by {where}.aggregator, drop it")
    warnings.warn(f"{where}.mit is replaced by {where}.aggregator (read as aggregator: {meant})", FutureWarning,
                  stacklevel=3)


def _check_range(key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{key}: expected a number in [{lo}, {hi}], got {value}")


# --------------------------------------------------------------------------- strict building


# A field's metadata entry naming the mapping's key for it, where that is not the field's name (``from``, a Python
# keyword); None: no key sets it (the program does, e.g. the file a table was read from).
KEY = "key"


def mapping_keys(cls: type) -> dict[str, dataclasses.Field]:
    """The keys a mapping may set for dataclass ``cls``, each with the field it fills."""
    keys = {f.metadata.get(KEY, f.name): f for f in dataclasses.fields(cls)}
    keys.pop(None, None)
    return keys


def build(cls: type, data: Mapping[str, Any] | None, where: str = ""):
    """Instantiate dataclass ``cls`` from ``data``, refusing unknown keys, missing required keys and ill-typed
    values."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or '<config>'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = mapping_keys(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = _join(where, unknown[0])
        raise ConfigError(f"{key}: unknown key; expected one of {sorted(fields)}")
    missing = [key for key in _required(fields) if key not in data]
    if missing:
        raise ConfigError(f"{_join(where, missing[0])}: missing; required keys: {_required(fields)}")
    kwargs = {fields[key].name: _coerce(hints[fields[key].name], value, _join(where, key))
              for key, value in data.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(where or cls.__name__)
    return obj


YAML_TRUE = ("on", "true", "yes")
YAML_FALSE = ("off", "false", "no")


def _required(fields: Mapping[str, dataclasses.Field]) -> list[str]:
    return [key for key, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool):
            # YAML 1.1 reads on/off, yes/no and true/false as booleans: take the spelling this key accepts.
            spelling = [w for w in (YAML_TRUE if value else YAML_FALSE) if w in allowed]
            if spelling:
                return spelling[0]
        elif value in allowed:
            return value
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                if str(exc).startswith((f"{key}[", f"{key}.")):
                    raise  # the value has this type's shape, and one of its items or keys is wrong: say which
                continue
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '2e-3' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"config type {tp!r} at {key} is not supported")
    raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (for YAML dumps and MLflow params)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = _join(prefix, k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data
