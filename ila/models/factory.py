"""One factory for every video model, and the registry of named variants (as timm's ``create_model``).

A variant is a declarative set of :class:`~ila.config.ModelConfig` defaults; a config names a variant and overrides
any field. Every ablation row resolves to a variant plus overrides, and the tests iterate over the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from ila.config import ConfigError, ModelConfig, build, to_dict
from ila.models.backbone import build_clip, tokenizer_for
from ila.models.video_clip import VideoCLIP

_VARIANTS: dict[str, dict[str, Any]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_variant(name: str, description: str, **defaults: Any) -> None:
    if name in _VARIANTS:
        raise ValueError(f"model variant {name!r} registered twice")
    _VARIANTS[name] = defaults
    _DESCRIPTIONS[name] = description


def list_variants() -> list[str]:
    return list(_VARIANTS)


def describe_variant(name: str) -> str:
    return _DESCRIPTIONS[name]


register_variant("baseline", "CLIP without temporal modelling: frame embeddings averaged (Eq. 8)", operator=None)
register_variant(
    "avg_pool", "CLIP + Average Pooling: MI token = mean of the frame's patch tokens, no alignment", operator="avg_pool"
)
register_variant("ila", "ILA as the paper describes it: aligned, pooled and concatenated MI token", operator="ila")
register_variant(
    "xclip", "X-CLIP: cross-frame message tokens, MIT head (and, like every text-head row, the video prompt)",
    operator="xclip", mit=True,
)
register_variant(
    "divided_st",
    "CLIP + divided space-time attention (TimeSformer): temporal position embedding, zero-initialised temporal "
    "projection",
    operator="divided_st", time_embed=True,
)
register_variant("temporal_shift", "CLIP + temporal shift of 1/4 of the patch channels", operator="temporal_shift")
register_variant(
    "ata",
    "CLIP + ATA: temporal position embedding, Hungarian patch alignment, temporal attention along trajectories, "
    "de-alignment",
    operator="ata", time_embed=True,
)
register_variant(
    "ila_released",
    "ILA as the authors released it: additive injection, Conv3d, MIT head, frozen CLIP",
    operator="ila_released",
    mit=True,
    freeze_visual=True,
    freeze_text=True,
)


def resolve_model_config(data: Mapping[str, Any] | ModelConfig | None = None, where: str = "model") -> ModelConfig:
    """Variant defaults, then the given fields. Unknown variants and keys fail naming the key."""
    if isinstance(data, ModelConfig):
        data = to_dict(data)
    data = dict(data or {})
    variant = data.get("variant", ModelConfig.variant)
    if variant not in _VARIANTS:
        raise ConfigError(f"{where}.variant: unknown model variant {variant!r}; expected one of {list_variants()}")
    merged = {**_VARIANTS[variant], **data}
    if "operator_args" in data and "operator_args" in _VARIANTS[variant]:
        merged["operator_args"] = {**_VARIANTS[variant]["operator_args"], **data["operator_args"]}
    return build(ModelConfig, merged, where)


def create_model(cfg: Mapping[str, Any] | ModelConfig, class_names: list[str], device: str | None = None) -> VideoCLIP:
    """The video model for ``cfg`` with a head over ``class_names``; ``device='meta'`` builds it without weights."""
    cfg = resolve_model_config(cfg)
    clip = build_clip(cfg.backbone, cfg.pretrained, device=device)
    with torch.device(device) if device else contextlib.nullcontext():
        return _assemble(cfg, clip, class_names)


def operator_blocks(cfg: ModelConfig, depth: int) -> list[int] | None:
    """The 0-based blocks that get the temporal operator on a backbone of ``depth`` blocks (None: all of them)."""
    if cfg.block_group is None:
        return cfg.blocks
    k, n = cfg.block_group
    if depth % n:
        raise ConfigError(f"model.block_group: {n} groups do not divide the backbone's {depth} blocks")
    size = depth // n
    return list(range((k - 1) * size, k * size))


def _assemble(cfg: ModelConfig, clip, class_names: list[str]) -> VideoCLIP:
    return VideoCLIP(
        clip,
        tokenizer_for(cfg.backbone),
        class_names,
        num_frames=cfg.num_frames,
        operator=cfg.operator,
        operator_args={**cfg.profile_operator_args, **cfg.operator_args},
        blocks=operator_blocks(cfg, len(clip.visual.transformer.resblocks)),
        head=cfg.head,
        prompt_generator=cfg.prompt_generator,
        mit=cfg.mit,
        time_embed=cfg.time_embed,
        freeze_visual=cfg.freeze_visual,
        freeze_text=cfg.freeze_text,
        prompt_template=cfg.prompt_template,
    )
