"""ILA as the authors released it (Francis-Rings/ILA, Kinetics branch), where it departs from the paper.

Per block: tokens pass a new Linear + LayerNorm ("message" features); adjacent pairs go through the alignment
module; the interaction features (two 128-channel halves per pair) are merged per frame (first frame: the first
pair's earlier half; last frame: the last pair's later half; others: the mean of the two pairs they belong to), run
through a Conv3d with kernel (3, 1, 1) over time and a Linear back to the width; the masked (aligned) token maps
are merged per frame the same way. Both are *added* to every token through zero-initialised Linear layers, so at
initialisation the block computes exactly what the image block computes. No MI token is concatenated.
The MIT head and the frozen backbone are model-level options set by the ``ila_released`` variant.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ila.models.operators.base import BlockContext, OperatorOutput, TemporalOperator, split_frames
from ila.models.operators.ila import AlignmentModule, alignment_loss, decayed_jitter, predict_pair_masks
from ila.operator_options import ReleasedILAOptions


def merge_pair_sides(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per-frame features from per-pair sides of adjacent pairs ``[B, P, ...]`` -> ``[B, P+1, ...]``."""
    middle = (first[:, 1:] + second[:, :-1]) / 2
    return torch.cat([first[:, :1], middle, second[:, -1:]], dim=1)


class ReleasedILAOperator(TemporalOperator):
    def __init__(self, ctx: BlockContext, options: ReleasedILAOptions):
        super().__init__()
        d, conv_stack, jitter, hidden = ctx.width, options.conv_stack, options.jitter, options.hidden
        self.grid, self.jitter, self.half = ctx.grid, float(jitter), hidden // 2
        self.base_jitter = self.jitter
        self.message_fc = nn.Linear(d, d)
        self.message_ln = nn.LayerNorm(d)
        self.align = AlignmentModule(d, "conv2d", conv_stack, hidden)
        self.temporal_conv = nn.Conv3d(self.half, self.half, kernel_size=(3, 1, 1), padding=(1, 0, 0))
        self.interactive_fc = nn.Linear(self.half, d)
        self.skip_align_fc = nn.Linear(d, d)
        self.skip_interactive_fc = nn.Linear(d, d)
        for layer in (self.skip_align_fc, self.skip_interactive_fc):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def on_train_step(self, step: int, train: Any) -> None:
        self.jitter = decayed_jitter(self.base_jitter, step, train)

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:
        bt, n, d = x.shape
        b, t = bt // num_frames, num_frames
        msg = self.message_ln(self.message_fc(x))
        cls, patches = split_frames(msg, t)  # [B, T, 1, D], [B, T, HW, D]
        first, second = patches[:, :-1], patches[:, 1:]
        p, _hw = t - 1, n - 1
        _, masks, inter = predict_pair_masks(self.align, first, second, self.grid,
                                             self.jitter if self.training else 0.0)
        # Interaction features: the earlier frame's half and the later frame's half of each pair.
        inter = inter.reshape(b, p, 2, self.half, *self.grid)
        per_frame = merge_pair_sides(inter[:, :, 0], inter[:, :, 1])  # [B, T, C, H, W]
        per_frame = self.temporal_conv(per_frame.transpose(1, 2)).transpose(1, 2)
        inter_tokens = self.interactive_fc(per_frame.flatten(3).transpose(-1, -2))  # [B, T, HW, D]
        inter_tokens = torch.cat([cls, inter_tokens], dim=2).reshape(bt, n, d)

        aligned_a, aligned_b = masks[:, :, 0, :, None] * first, masks[:, :, 1, :, None] * second
        loss = alignment_loss(aligned_a.sum(2), aligned_b.sum(2))
        with_cls_a = torch.cat([cls[:, :-1], aligned_a], dim=2)
        with_cls_b = torch.cat([cls[:, 1:], aligned_b], dim=2)
        aligned = merge_pair_sides(with_cls_a, with_cls_b).reshape(bt, n, d)

        x = x + self.skip_align_fc(aligned) + self.skip_interactive_fc(inter_tokens)
        return OperatorOutput(x, aux_loss=loss)
