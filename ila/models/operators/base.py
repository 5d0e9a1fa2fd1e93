"""The temporal-operator interface: one hook per transformer block, so one ViT wrapper serves every table row.

In each block where it is installed, an operator sees the block's input tokens of all frames, ``[B*T, 1+HW, D]``
(frame-major within a video), and returns an :class:`OperatorOutput`:

* ``x`` — the tokens to continue with (an operator may mix information across frames here: temporal shift,
  divided attention, the released ILA's additive injection);
* ``extra`` — tokens ``[B*T, k, D]`` appended to each frame's sequence for the spatial attention only and dropped
  before the MLP (ILA's MI token, X-CLIP's message token);
* ``aux_loss`` — a scalar added to the training loss (ILA's alignment loss, already averaged over pairs).

Operators are registered by name and built from declarative options; the block wrapper is in ``video_vit.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class BlockContext:
    """What an operator needs to know about the block it lives in."""

    width: int
    heads: int
    grid: tuple[int, int]
    num_frames: int
    block_index: int
    spatial_block: nn.Module  # the open_clip ResidualAttentionBlock (for operators initialised from it)


@dataclass
class OperatorOutput:
    x: torch.Tensor
    extra: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None


class TemporalOperator(nn.Module):
    """Base class; subclasses implement :meth:`forward`."""

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def on_train_step(self, step: int, train: Any) -> None:
        """Called by the trainer before each training forward with the optimiser steps done so far and the run's
        ``train`` config: an operator with a schedule (ILA's point jitter) updates itself here. Default: nothing."""

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Parameters that start as copies of the backbone's pretrained weights (see :func:`copy_pretrained`).

        The model puts them in the backbone's learning-rate group: the recipe's 10x rate is meant for freshly
        initialised weights, and pretrained copies trained at it leave the solution they start from. Measured on
        the embedded default (400 steps): divided space-time attention reached 20.8% top-1 with its copied attention
        at 10x and 50.5% with the copies at the base rate (its zero-initialised projection still at 10x); ATA 15.2%
        and 54.5%."""
        return [p for m in self.modules() if getattr(m, "is_pretrained_copy", False) for p in m.parameters()]


def copy_pretrained(module: nn.Module) -> nn.Module:
    """A trainable copy of a pretrained backbone module, marked for the backbone's learning rate."""
    out = copy.deepcopy(module)
    out.is_pretrained_copy = True
    return out


_OPERATORS: dict[str, Callable[..., TemporalOperator]] = {}


def register_operator(name: str):
    def deco(cls):
        if name in _OPERATORS:
            raise ValueError(f"temporal operator {name!r} registered twice")
        _OPERATORS[name] = cls
        cls.registry_name = name
        return cls

    return deco


def list_operators() -> list[str]:
    return sorted(_OPERATORS)


def build_operator(name: str, ctx: BlockContext, options: dict) -> TemporalOperator:
    if name not in _OPERATORS:
        raise ValueError(f"unknown temporal operator {name!r}; registered: {', '.join(list_operators())}")
    try:
        return _OPERATORS[name](ctx, **options)
    except TypeError as exc:
        raise ValueError(f"bad options {sorted(options)} for temporal operator {name!r}: {exc}") from None


def split_frames(x: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B*T, 1+HW, D]`` -> class tokens ``[B, T, 1, D]`` and patch tokens ``[B, T, HW, D]``."""
    bt, n, d = x.shape
    v = x.reshape(bt // num_frames, num_frames, n, d)
    return v[:, :, :1], v[:, :, 1:]
