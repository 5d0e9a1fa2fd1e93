"""The temporal operators ILA is compared with in Table 4, on the same block interface.

Each one that adds parameters starts as an identity of the image block (zero-initialised output projection), so
training begins from the image model and only the temporal operator differs between rows. Each follows its
reference implementation (TSM's shift, TimeSformer's divided attention, X-CLIP's message tokens, ATA's alignment).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from ila.models.adapters import mha_attention
from ila.models.operators.base import (
    BlockContext,
    OperatorOutput,
    TemporalOperator,
    average_class_tokens,
    copy_pretrained,
    split_frames,
)
from ila.operator_options import DividedSTOptions, NoOptions, TemporalShiftOptions


class CrossFrameMessageOperator(TemporalOperator):
    """X-CLIP's cross-frame communication: a message token per frame made from its CLS (Linear + LayerNorm), the
    T messages exchange information by self-attention, and each frame's message joins its tokens for the spatial
    attention only (dropped before the MLP)."""

    def __init__(self, ctx: BlockContext, options: NoOptions):
        super().__init__()
        d = ctx.width
        self.message_fc = nn.Linear(d, d)
        self.message_ln = nn.LayerNorm(d)
        self.message_attn = nn.MultiheadAttention(d, ctx.heads, batch_first=True)

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:
        bt, _, d = x.shape
        msg = self.message_fc(x[:, 0]).reshape(bt // num_frames, num_frames, d)
        msg = msg + mha_attention(self.message_attn, self.message_ln(msg))[0]
        return OperatorOutput(x, extra=msg.reshape(bt, 1, d))


class _TemporalAttention(nn.Module):
    """Self-attention over T for each of a set of token tracks, initialised from the block's spatial attention,
    with a zero-initialised output projection (TimeSformer's ``temporal_fc``)."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        self.norm = copy_pretrained(ctx.block.norm1)
        self.attn = copy_pretrained(ctx.block.attn)
        self.attend = ctx.block.attend  # the backbone family's attention, run on this copy
        self.fc = nn.Linear(ctx.width, ctx.width)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, tracks: torch.Tensor) -> torch.Tensor:
        """``[B, T, K, D]`` -> residual ``[B, T, K, D]`` (attention along T for each of the K tracks)."""
        b, t, k, d = tracks.shape
        seq = tracks.permute(0, 2, 1, 3).reshape(b * k, t, d)
        res = self.fc(self.attend(self.attn, self.norm(seq))[0])
        return res.reshape(b, k, t, d).permute(0, 2, 1, 3)


class DividedSpaceTimeOperator(TemporalOperator):
    """TimeSformer's divided space-time attention: before the spatial attention, each patch position attends over
    the T frames (CLS excluded); the residual goes through a zero-initialised projection.

    ``video_cls=False`` (the ``divided_st`` variant): every frame keeps its own class token, as the image model does.
    ``video_cls=True`` (``timesformer``): TimeSformer's one video-level class token. Each frame's spatial attention
    sees the video token (every frame carries the same copy); after it the frames' class outputs are averaged back
    into one token, which every frame carries into the MLP. With the operator in every block (the variant's
    default) the copies stay equal, so the frame mean the head takes is that token's embedding; a block without it
    (``model.blocks``) lets them drift apart again."""

    def __init__(self, ctx: BlockContext, options: DividedSTOptions):
        super().__init__()
        self.temporal = _TemporalAttention(ctx)
        self.video_cls = options.video_cls

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:
        cls, patches = split_frames(x, num_frames)
        patches = patches + self.temporal(patches)
        return OperatorOutput(torch.cat([cls, patches], dim=2).flatten(0, 1))

    def after_attention(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return average_class_tokens(x, num_frames) if self.video_cls else x


def temporal_shift(patches: torch.Tensor, fold_div: int = 8) -> torch.Tensor:
    """``[B, T, N, C]``: channels ``[0, C/8)`` take the next frame's values, ``[C/8, 2C/8)`` the previous frame's,
    the rest stay; zeros enter at the clip's ends."""
    fold = patches.shape[-1] // fold_div
    out = torch.zeros_like(patches)
    out[:, :-1, :, :fold] = patches[:, 1:, :, :fold]
    out[:, 1:, :, fold : 2 * fold] = patches[:, :-1, :, fold : 2 * fold]
    out[..., 2 * fold :] = patches[..., 2 * fold :]
    return out


class TemporalShiftOperator(TemporalOperator):
    """Temporal shift (as in ActionCLIP) on every block's input, patch tokens only. No parameters."""

    def __init__(self, ctx: BlockContext, options: TemporalShiftOptions):
        super().__init__()
        self.fold_div = options.fold_div

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:
        cls, patches = split_frames(x, num_frames)
        shifted = temporal_shift(patches, self.fold_div)
        return OperatorOutput(torch.cat([cls, shifted], dim=2).flatten(0, 1))


_POOL: ThreadPoolExecutor | None = None


def _assignment_pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, torch.get_num_threads())),
                                   thread_name_prefix="ata-hungarian")
    return _POOL


def assignment_trajectories(patches: torch.Tensor) -> torch.Tensor:
    """Patch trajectories from frame-to-frame assignments: ``[B, T, N, D]`` -> indices ``[B, T, N]``.

    Adjacent frames' patch tokens (detached) are matched one-to-one by the Hungarian algorithm on a -cosine cost
    (scipy); the permutations are chained so that track k starts at patch k of frame 0. The cost matrices are one
    batched matmul; the assignments run on a small thread pool. On the meta device (FLOP counting) the assignment, which
    has no multiply-adds, is replaced by the identity.
    """
    b, t, n, _ = patches.shape
    dev = patches.device.type
    # fp32 even under autocast: the Hungarian step needs exact ties broken the same way, and numpy has no bf16.
    # (The meta device of the FLOP counter has no autocast to leave.)
    with torch.autocast(dev, enabled=False) if dev != "meta" else nullcontext():
        feats = F.normalize(patches.detach().float(), dim=-1)
        cost = -(feats[:, :-1] @ feats[:, 1:].transpose(-1, -2))  # [B, T-1, N, N]
    if dev == "meta":
        return torch.arange(n, device=cost.device).expand(b, t, n)
    cost_np = cost.cpu().numpy().reshape(b * (t - 1), n, n)
    step = np.empty((b * (t - 1), n), dtype=np.int64)
    # The B x (T-1) problems are independent and scipy's solver releases the GIL for part of its work: spread them
    # over a few threads (the answer does not depend on how; 15 ms -> 12 ms for 224 problems of 49 on 2 cores).
    for k, (rows, cols) in enumerate(_assignment_pool().map(linear_sum_assignment, cost_np)):
        step[k, rows] = cols
    step = step.reshape(b, t - 1, n)
    traj = np.empty((b, t, n), dtype=np.int64)
    traj[:, 0] = np.arange(n)
    for j in range(t - 1):
        traj[:, j + 1] = np.take_along_axis(step[:, j], traj[:, j], axis=1)
    return torch.from_numpy(traj).to(patches.device)


class AlignedTemporalAttentionOperator(TemporalOperator):
    """ATA (alignment-guided temporal attention): patches are aligned across frames by assignment, attend over T
    along their trajectories, and the result is put back in place (the inverse permutation, "de-alignment")."""

    def __init__(self, ctx: BlockContext, options: NoOptions):
        super().__init__()
        self.temporal = _TemporalAttention(ctx)

    def forward(self, x: torch.Tensor, num_frames: int) -> OperatorOutput:
        cls, patches = split_frames(x, num_frames)
        traj = assignment_trajectories(patches)  # [B, T, N]
        index = traj.unsqueeze(-1).expand_as(patches)
        aligned = torch.gather(patches, 2, index)
        # .to: under autocast the attention's output is bf16 while a backbone's residual stream may stay fp32 (timm's).
        res = torch.zeros_like(patches).scatter(2, index, self.temporal(aligned).to(patches.dtype))
        return OperatorOutput(torch.cat([cls, patches + res], dim=2).flatten(0, 1))
