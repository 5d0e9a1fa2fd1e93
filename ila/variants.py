"""The registry of named model variants (as timm's model registry), kept free of torch.

A variant is a declarative set of :class:`~ila.config.ModelConfig` defaults; a config names a variant and overrides
any field. Every ablation row resolves to a variant plus overrides, and the tests iterate over the registry. This
module imports nothing heavy, so reading and checking configs (the Snakefile does it for every row before any job
starts) never loads torch or open_clip; the models are built by :func:`ila.models.create_model`.
"""

from __future__ import annotations

from typing import Any

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


def variant_defaults(name: str) -> dict[str, Any]:
    """The ``ModelConfig`` fields variant ``name`` sets (KeyError for an unknown name)."""
    return dict(_VARIANTS[name])


register_variant("baseline", "CLIP without temporal modelling: frame embeddings averaged (Eq. 8)", operator=None)
register_variant(
    "avg_pool", "CLIP + Average Pooling: MI token = mean of the frame's patch tokens, no alignment", operator="avg_pool"
)
register_variant("ila", "ILA as the paper describes it: aligned, pooled and concatenated MI token", operator="ila")
register_variant(
    "xclip", "X-CLIP: cross-frame message tokens, MIT head (and, like every text-head row, the video prompt)",
    operator="xclip", aggregator="mit",
)
register_variant(
    "divided_st",
    "CLIP + divided space-time attention: temporal attention per patch position before the spatial attention, "
    "temporal position embedding, zero-initialised temporal projection; every frame keeps its own CLS token",
    operator="divided_st", time_embed=True,
)
register_variant(
    "timesformer",
    "TimeSformer's divided space-time attention with one video-level CLS token: as divided_st, and after each "
    "spatial attention the frames' CLS outputs are averaged into one token that every frame carries on",
    operator="divided_st", operator_args={"video_cls": True}, time_embed=True,
)
register_variant(
    "timesformer_ila",
    "TimeSformer + ILA (Table 3): TimeSformer with its temporal attention replaced by ILA's alignment module; its "
    "video-level CLS token and temporal position embedding kept",
    operator="ila", operator_args={"video_cls": True}, time_embed=True,
)
register_variant(
    "evl",
    "EVL: the image tower frozen, a 4-layer decoder over its last blocks with temporal convolution, temporal position "
    "embedding and temporal cross-attention, one learnable query, a linear head",
    operator=None, aggregator="evl", head="linear", prompt_generator=False, freeze_visual=True,
)
register_variant(
    "evl_ila",
    "EVL + ILA (Table 3): ILA in the blocks of EVL's frozen image tower (its modules train, by gradients through the "
    "frozen blocks), EVL's decoder unchanged",
    operator="ila", aggregator="evl", head="linear", prompt_generator=False, freeze_visual=True,
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
    aggregator="mit",
    freeze_visual=True,
    freeze_text=True,
)
