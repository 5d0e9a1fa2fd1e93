"""An image ViT run frame by frame on a video, with a temporal operator in chosen blocks.

Frames are processed as a batch of images, ``[B*T, 1+HW, width]``, frame-major within a video; in each block that has
one, the temporal operator (``ila.models.operators``) runs the block (by default: its hook before the spatial
attention, the block's attention with the operator's extra tokens, its optional hook after the attention, the MLP).
The backbone is read only through its adapter (``ila.models.adapters``), so any adapted family works.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ila.config import ModelConfig
from ila.data.transforms import CLIP_MEAN, CLIP_STD
from ila.models.adapters import QK, adapt_backbone
from ila.models.operators.base import BlockContext, TemporalOperator, build_operator, plain_block


@dataclass
class VideoFeatures:
    """What :meth:`VideoViT.forward_intermediates` returns.

    ``frames`` ``[B, T, E]``: pooled frame embeddings; ``patches`` ``[B, T, HW, width]``: the last block's patch tokens
    (before the tower's final norm); ``aux_loss``: the operators' summed auxiliary losses (a scalar);
    ``intermediates``: block index -> that block's output tokens ``[B, T, 1+HW, width]`` (with gradient);
    ``qk``: block index -> the block's spatial-attention queries and keys ``[B*T, heads, tokens, head_dim]`` (tokens
    include an operator's extra tokens). With ``stop_early``, ``frames`` and ``patches`` are None."""

    frames: torch.Tensor | None
    patches: torch.Tensor | None
    aux_loss: torch.Tensor
    intermediates: dict[int, torch.Tensor] = field(default_factory=dict)
    qk: dict[int, QK] = field(default_factory=dict)


class VideoViT(nn.Module):
    """Runs an image tower (``clip.visual``) on ``[B, T, 3, H, W]`` with temporal operators in chosen blocks."""

    def __init__(self, visual: nn.Module, cfg: ModelConfig):
        super().__init__()
        self.visual = visual
        self.backbone = adapt_backbone(visual)
        self.num_frames = cfg.num_frames
        self.grid = self.backbone.grid
        depth, width = self.backbone.depth, self.backbone.width
        blocks = cfg.operator_blocks(depth)
        chosen = list(range(depth)) if blocks is None else list(blocks)
        # As TimeSformer: zero at the start (the image model's features), added to the patch tokens only.
        self.time_embed = nn.Parameter(torch.zeros(cfg.num_frames, width)) if cfg.time_embed else None
        self._input_affine(visual)
        self.operators = nn.ModuleDict()
        if cfg.operator is not None:
            options = cfg.operator_options()
            for i in chosen:
                ctx = BlockContext(width, self.backbone.heads, self.grid, cfg.num_frames, i, self.backbone.blocks[i])
                self.operators[str(i)] = build_operator(cfg.operator, ctx, options)

    def _input_affine(self, visual: nn.Module) -> None:
        """Clips arrive normalised with CLIP's mean and std (ila.data.transforms); a backbone trained with others
        (an ImageNet ViT's 0.5, 0.5) gets them as it expects: x * scale + shift, per channel."""
        mean, std = getattr(visual, "image_mean", None) or CLIP_MEAN, getattr(visual, "image_std", None) or CLIP_STD
        if tuple(mean) == tuple(CLIP_MEAN) and tuple(std) == tuple(CLIP_STD):
            self.input_scale = self.input_shift = None
            return
        clip_mean, clip_std, mean, std = (torch.tensor(v).view(3, 1, 1) for v in (CLIP_MEAN, CLIP_STD, mean, std))
        self.register_buffer("input_scale", clip_std / std, persistent=False)
        self.register_buffer("input_shift", (clip_mean - mean) / std, persistent=False)

    @property
    def depth(self) -> int:
        return self.backbone.depth

    def operator_at(self, index: int) -> TemporalOperator | None:
        key = str(index)
        return self.operators[key] if key in self.operators else None

    def forward(self, video: torch.Tensor, indices: Iterable[int] = (), attention_qk: bool = False) -> VideoFeatures:
        """:meth:`forward_intermediates` through ``__call__`` (so that module hooks and FLOP counters see it)."""
        return self.forward_intermediates(video, indices, attention_qk)

    def forward_intermediates(self, video: torch.Tensor, indices: Iterable[int] = (), attention_qk: bool = False,
                              stop_early: bool = False) -> VideoFeatures:
        """The video's features, with the output tokens of blocks ``indices`` (negative counts from the end, as in
        timm and open_clip) and, with ``attention_qk``, those blocks' attention queries and keys. ``stop_early``
        ends after the last of them (no pooled frames)."""
        b, t = video.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"model was built for {self.num_frames} frames, got a clip of {t}")
        wanted = self._block_indices(indices)
        x = self._embed(video)
        out = VideoFeatures(None, None, x.new_zeros(()))
        last = max(wanted) if stop_early and wanted else self.depth - 1
        for i, block in enumerate(self.backbone.blocks[: last + 1]):
            op = self.operator_at(i)
            want_qk = attention_qk and i in wanted
            step = op.run_block(block, x, t, want_qk) if op is not None else plain_block(block, x, want_qk)
            x = step.x
            if step.aux_loss is not None:
                out.aux_loss = out.aux_loss + step.aux_loss
            if i in wanted:
                out.intermediates[i] = x.reshape(b, t, *x.shape[1:])
                if want_qk:
                    out.qk[i] = step.qk
        if last == self.depth - 1:
            out.frames = self.backbone.pool(x).reshape(b, t, -1)
            out.patches = x[:, 1:].reshape(b, t, x.shape[1] - 1, -1)
        return out

    def _embed(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        frames = video.flatten(0, 1)
        if self.input_scale is not None:
            frames = frames * self.input_scale.to(frames.dtype) + self.input_shift.to(frames.dtype)
        x = self.backbone.embed(frames)
        if self.time_embed is not None:
            n, d = x.shape[1:]
            frame_pos = self.time_embed.to(x.dtype)[:, None].expand(t, n - 1, d)  # keeps the stream's dtype
            x = x + torch.cat([frame_pos.new_zeros(t, 1, d), frame_pos], dim=1).repeat(b, 1, 1)
        return x

    def _block_indices(self, indices: Iterable[int]) -> set[int]:
        out = set()
        for i in indices:
            if not -self.depth <= i < self.depth:
                raise ValueError(f"block index {i} outside the backbone's {self.depth} blocks")
            out.add(i % self.depth)
        return out
