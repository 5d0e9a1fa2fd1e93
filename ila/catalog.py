"""The catalog of the suite's extension points: every temporal operator, video aggregator, model variant and backbone
adapter by name, in one module that imports nothing heavy.

Reading and checking a config (the Snakefile does it for every row before any job starts) needs only names,
an operator's options dataclass and a variant's defaults, so this module never imports torch or open_clip. A class is
named by its import location, ``"package.module:Class"`` (as mmaction2's registries name by location, one catalog per
kind as timm's), and imported by :func:`load_class` only when a model is built (``ila.models.create_model``); nothing is
registered by importing a module. A new operator is one class file plus one :data:`OPERATORS` entry; users' own
extensions may add entries at run time with the ``register_*`` functions, which write into the same dictionaries.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, TypeVar

from ila.errors import ConfigError
from ila.operator_options import DividedSTOptions, ILAOptions, NoOptions, ReleasedILAOptions, TemporalShiftOptions

DEFAULT_VARIANT = "ila"  # model.variant when a config names none


@dataclass(frozen=True)
class Operator:
    """A ``TemporalOperator`` subclass (``ila.models.operators.base``), built per block as ``cls(ctx, options)``."""

    location: str
    # Its options dataclass (model.operator_args), kept free of torch so that a config's options are checked when
    # the config is read; ``validate(where)``, when it has one, checks values.
    options: type = NoOptions


@dataclass(frozen=True)
class Aggregator:
    """A ``VideoAggregator`` subclass (``ila.models.aggregators``), built as ``cls(ctx)``."""

    location: str
    # What it is, for the config's messages.
    description: str
    # It returns the tower's width rather than the frame embeddings' size, which only a linear head takes.
    linear_head_only: bool = False


@dataclass(frozen=True)
class Adapter:
    """A ``BackboneAdapter`` subclass (``ila.models.adapters``): ``cls.fits(visual)`` says whether it adapts an image
    tower, ``cls(visual)`` adapts it."""

    location: str
    # The towers it adapts, for the message that refuses a tower no adapter fits.
    description: str


@dataclass(frozen=True)
class Variant:
    """A named set of ``ila.config.ModelConfig`` defaults; a config names one and overrides any field."""

    description: str
    defaults: dict[str, Any]


OPERATORS: dict[str, Operator] = {
    "ila": Operator("ila.models.operators.ila:ILAOperator", ILAOptions),
    "avg_pool": Operator("ila.models.operators.ila:AveragePoolOperator"),
    "ila_released": Operator("ila.models.operators.released:ReleasedILAOperator", ReleasedILAOptions),
    "xclip": Operator("ila.models.operators.comparisons:CrossFrameMessageOperator"),
    "divided_st": Operator("ila.models.operators.comparisons:DividedSpaceTimeOperator", DividedSTOptions),
    "temporal_shift": Operator("ila.models.operators.comparisons:TemporalShiftOperator", TemporalShiftOptions),
    "ata": Operator("ila.models.operators.comparisons:AlignedTemporalAttentionOperator"),
}

AGGREGATORS: dict[str, Aggregator] = {
    "mean": Aggregator("ila.models.aggregators:FrameMean", "the frame embeddings' mean, Eq. 8"),
    "mit": Aggregator("ila.models.aggregators:MultiframeIntegration", "X-CLIP's multi-frame integration transformer"),
    "evl": Aggregator("ila.models.aggregators:EVLDecoder", "EVL's decoder over the last blocks", linear_head_only=True),
}

# Tried in this order; the first that fits a tower adapts it.
ADAPTERS: dict[str, Adapter] = {
    "open_clip": Adapter("ila.models.adapters:OpenCLIPViT", "open_clip VisionTransformer"),
    "timm": Adapter("ila.models.adapters:TimmViT", "timm VisionTransformer through open_clip's TimmModel"),
}


def _variant(description: str, **defaults: Any) -> Variant:
    return Variant(description, defaults)


VARIANTS: dict[str, Variant] = {
    "baseline": _variant("CLIP without temporal modelling: frame embeddings averaged (Eq. 8)", operator=None),
    "avg_pool": _variant("CLIP + Average Pooling: MI token = mean of the frame's patch tokens, no alignment",
                         operator="avg_pool"),
    "ila": _variant("ILA as the paper describes it: aligned, pooled and concatenated MI token", operator="ila"),
    "xclip": _variant("X-CLIP: cross-frame message tokens, MIT head (and, like every text-head row, the video prompt)",
                      operator="xclip", aggregator="mit"),
    "divided_st": _variant(
        "CLIP + divided space-time attention: temporal attention per patch position before the spatial attention, "
        "temporal position embedding, zero-initialised temporal projection; every frame keeps its own CLS token",
        operator="divided_st", time_embed=True,
    ),
    "timesformer": _variant(
        "TimeSformer's divided space-time attention with one video-level CLS token: as divided_st, and after each "
        "spatial attention the frames' CLS outputs are averaged into one token that every frame carries on",
        operator="divided_st", operator_args={"video_cls": True}, time_embed=True,
    ),
    "timesformer_ila": _variant(
        "TimeSformer + ILA (Table 3): TimeSformer with its temporal attention replaced by ILA's alignment module; its "
        "video-level CLS token and temporal position embedding kept",
        operator="ila", operator_args={"video_cls": True}, time_embed=True,
    ),
    "evl": _variant(
        "EVL: the image tower frozen, a 4-layer decoder over its last blocks with temporal convolution, temporal "
        "position embedding and temporal cross-attention, one learnable query, a linear head",
        operator=None, aggregator="evl", head="linear", prompt_generator=False, freeze_visual=True,
    ),
    "evl_ila": _variant(
        "EVL + ILA (Table 3): ILA in the blocks of EVL's frozen image tower (its modules train, by gradients through "
        "the frozen blocks), EVL's decoder unchanged",
        operator="ila", aggregator="evl", head="linear", prompt_generator=False, freeze_visual=True,
    ),
    "temporal_shift": _variant("CLIP + temporal shift of 1/4 of the patch channels", operator="temporal_shift"),
    "ata": _variant(
        "CLIP + ATA: temporal position embedding, Hungarian patch alignment, temporal attention along trajectories, "
        "de-alignment",
        operator="ata", time_embed=True,
    ),
    "ila_released": _variant(
        "ILA as the authors released it: additive injection, Conv3d, MIT head, frozen CLIP",
        operator="ila_released", aggregator="mit", freeze_visual=True, freeze_text=True,
    ),
}

# --------------------------------------------------------------------------- reading the catalog

Entry = TypeVar("Entry")


def list_operators() -> list[str]:
    return sorted(OPERATORS)


def list_aggregators() -> list[str]:
    return sorted(AGGREGATORS)


def list_variants() -> list[str]:
    """In catalog order (the tables' and the tests' order)."""
    return list(VARIANTS)


def describe_variant(name: str) -> str:
    return VARIANTS[name].description


def variant_defaults(name: str) -> dict[str, Any]:
    """The ``ModelConfig`` fields variant ``name`` sets (KeyError for an unknown name)."""
    return dict(VARIANTS[name].defaults)


def lookup(catalog: dict[str, Entry], name: str, key: str, kind: str) -> Entry:
    """``catalog[name]``; a name the catalog lacks fails naming the config ``key`` and the choices."""
    if name not in catalog:
        raise ConfigError(f"{key}: unknown {kind} {name!r}; expected one of {sorted(catalog)}")
    return catalog[name]


def load_class(location: str, base: type) -> type:
    """The class at ``"package.module:Class"``, its module imported now; it must subclass ``base`` (the extension
    point's interface)."""
    module, sep, name = location.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"catalog location {location!r}: expected 'package.module:Class'")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"catalog location {location!r}: {cls!r} is not a {base.__name__} subclass")
    return cls


# --------------------------------------------------------------------------- users' own entries, at run time


def _add(catalog: dict[str, Entry], name: str, entry: Entry, kind: str) -> None:
    if name in catalog:
        raise ValueError(f"{kind} {name!r} is catalogued already")
    catalog[name] = entry


def register_operator(name: str, location: str, options: type = NoOptions) -> None:
    """Adds operator ``name``: the class at ``location``, with its options dataclass (import it from a module
    without torch, or configs naming the operator load torch when they are read)."""
    _add(OPERATORS, name, Operator(location, options), "temporal operator")


def register_aggregator(name: str, location: str, description: str, linear_head_only: bool = False) -> None:
    _add(AGGREGATORS, name, Aggregator(location, description, linear_head_only), "video aggregator")


def register_variant(name: str, description: str, **defaults: Any) -> None:
    _add(VARIANTS, name, Variant(description, defaults), "model variant")
