"""The temporal-operator interface: an operator runs the transformer block it is installed in, so one ViT wrapper
serves every table row.

By default (:meth:`TemporalOperator.run_block`) an operator hooks the block twice. Before the spatial attention,
:meth:`~TemporalOperator.forward` sees the block's input tokens of all frames, ``[B*T, 1+HW, D]`` (frame-major
within a video), and returns an :class:`OperatorOutput`:

* ``x`` — the tokens to continue with (an operator may mix information across frames here: temporal shift,
  divided attention, the released ILA's additive injection);
* ``extra`` — tokens ``[B*T, k, D]`` appended to each frame's sequence for the spatial attention only and dropped
  before the MLP (ILA's MI token, X-CLIP's message token);
* ``aux_loss`` — a scalar added to the training loss (ILA's alignment loss, already averaged over pairs).

After the attention, :meth:`~TemporalOperator.after_attention` may change the tokens before the MLP (TimeSformer's
video-level class token is averaged over the frames there). An operator that needs a different block altogether
overrides ``run_block``. The block itself is reached through its adapter (``ila.models.adapters.BlockAdapter``),
never through a library's field names, so every operator works on every adapted backbone.

Operators are catalogued by name (``ila.catalog``) and built from declarative options; the block wrapper is in
``video_vit.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ila import catalog
from ila.models.adapters import QK, BlockAdapter


@dataclass
class BlockContext:
    """What an operator needs to know about the block it lives in."""

    width: int
    heads: int
    grid: tuple[int, int]
    num_frames: int
    block_index: int
    block: BlockAdapter  # the block it runs (operators copy its norm and attention, or call its attention)


@dataclass
class OperatorOutput:
    x: torch.Tensor
    extra: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None


@dataclass
class BlockOutput:
    """One block's result: its output tokens, the operator's auxiliary loss and, when asked, the attention's
    queries and keys."""

    x: torch.Tensor
    aux_loss: torch.Tensor | None = None
    qk: QK | None = None


def plain_block(block: BlockAdapter, x: torch.Tensor, want_qk: bool = False) -> BlockOutput:
    """A block without a temporal operator: the image model's."""
    x, qk = block.attention_residual(x, None, want_qk)
    return BlockOutput(block.mlp_residual(x), None, qk)


class TemporalOperator(nn.Module):
    """Base class; subclasses implement :meth:`forward` (and may override :meth:`after_attention` or the whole
    :meth:`run_block`)."""

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def after_attention(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The tokens ``[B*T, 1+HW, D]`` after the spatial attention's residual, before the MLP. Default: as they
        are."""
        return x

    def run_block(self, block: BlockAdapter, x: torch.Tensor, num_frames: int, want_qk: bool = False) -> BlockOutput:
        """The block with this operator: the hook before the attention, the attention with the hook's extra tokens
        (dropped after it), the hook after the attention, the MLP."""
        out = self(x, num_frames)
        x, qk = block.attention_residual(out.x, out.extra, want_qk)
        return BlockOutput(block.mlp_residual(self.after_attention(x, num_frames)), out.aux_loss, qk)

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


def build_operator(name: str, ctx: BlockContext, options: Any) -> TemporalOperator:
    """Operator ``name`` for one block, its class imported from the catalog's location (``ila.catalog.OPERATORS``);
    ``options``: its options dataclass (``ModelConfig.operator_options()``)."""
    entry = catalog.lookup(catalog.OPERATORS, name, "model.operator", "temporal operator")
    operator = catalog.load_class(entry.location, TemporalOperator)(ctx, options)
    operator.registry_name = name  # the catalog name it was built under (a class may serve several)
    return operator


def average_class_tokens(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """TimeSformer's video-level class token, after a spatial attention: the frames' class outputs ``x[:, 0]`` of
    each video averaged into one token that every frame carries on (``[B*T, 1+HW, D]`` in and out)."""
    cls, patches = split_frames(x, num_frames)
    cls = cls.mean(1, keepdim=True).expand_as(cls)
    return torch.cat([cls, patches], dim=2).flatten(0, 1)


def split_frames(x: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B*T, 1+HW, D]`` -> class tokens ``[B, T, 1, D]`` and patch tokens ``[B, T, HW, D]``."""
    bt, n, d = x.shape
    v = x.reshape(bt // num_frames, num_frames, n, d)
    return v[:, :, :1], v[:, :, 1:]
