"""Each temporal operator's options (``model.operator_args``), declared without torch.

An operator is built from its options dataclass (``ila.models.operators``); the same dataclass checks a config's
``operator_args`` when the config is read, so the Snakefile refuses a misspelt option or value for every ablation row
before any job starts (``ila.config.resolve_model_config``). The catalog (``ila.catalog.OPERATORS``) names each
operator's options class; a new operator without options takes ``NoOptions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ila.errors import ConfigError


@dataclass
class NoOptions:
    """An operator without options."""


@dataclass
class ILAOptions:
    """ILA as the paper describes it (see ``ILAOperator``): Table 6's aligning ``strategy``, Table 8's alignment
    ``operator``, Table 9's ``mi_token``, the alignment module's ``conv_stack`` and ``hidden`` channels, the training
    point ``jitter``, what the alignment loss compares (``align_features``) and ``video_cls`` (TimeSformer's one
    video-level class token, for TimeSformer + ILA)."""

    strategy: Literal["adjacent", "first", "middle"] = "adjacent"
    operator: Literal["conv2d", "window_attention"] = "conv2d"
    mi_token: Literal["pool_concat", "add", "concat_all"] = "pool_concat"
    conv_stack: Literal["k400", "ssv2"] = "k400"
    jitter: float = 0.2
    hidden: int = 256
    align_features: Literal["raw", "detached", "ln_1"] = "raw"
    video_cls: bool = False

    def validate(self, where: str) -> None:
        _check_jitter_hidden(self, where)


@dataclass
class ReleasedILAOptions:
    """ILA as released (``ReleasedILAOperator``)."""

    conv_stack: Literal["k400", "ssv2"] = "k400"
    jitter: float = 0.2
    hidden: int = 256

    def validate(self, where: str) -> None:
        _check_jitter_hidden(self, where)


@dataclass
class DividedSTOptions:
    """Divided space-time attention; ``video_cls``: TimeSformer's one video-level class token."""

    video_cls: bool = False


@dataclass
class TemporalShiftOptions:
    """Temporal shift: 1/``fold_div`` of the channels from the next frame, 1/``fold_div`` from the previous."""

    fold_div: int = 8

    def validate(self, where: str) -> None:
        if self.fold_div < 2:
            raise ConfigError(f"{where}.fold_div: expected an integer >= 2, got {self.fold_div}")


def _check_jitter_hidden(options: Any, where: str) -> None:
    if options.jitter < 0:
        raise ConfigError(f"{where}.jitter: expected >= 0, got {options.jitter}")
    if options.hidden < 4 or options.hidden % 4:
        # The point head halves the channels twice, the second time in two groups.
        raise ConfigError(f"{where}.hidden: expected a positive multiple of 4, got {options.hidden}")

