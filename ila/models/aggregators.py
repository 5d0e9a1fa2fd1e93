"""Video aggregators: how a video's representation is made from its frames, registered by name like the operators.

An aggregator receives the video ViT's :class:`~ila.models.video_vit.VideoFeatures` and returns ``[B, E]``. One that
needs more than the pooled frames names the blocks it reads (``intermediate_blocks``, negative from the end) and
whether it needs their attention queries and keys (``attention_qk``): the model asks
:meth:`~ila.models.video_vit.VideoViT.forward_intermediates` for them (a decoder over the last blocks, as EVL's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from ila.models.registry import Registry
from ila.models.video_vit import VideoFeatures


@dataclass
class AggregatorContext:
    num_frames: int
    dim: int  # the frame embeddings' size (the tower's output)
    width: int  # the backbone's token width
    heads: int
    depth: int


class VideoAggregator(nn.Module):
    intermediate_blocks: tuple[int, ...] = ()
    attention_qk: bool = False

    def forward(self, features: VideoFeatures) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


AGGREGATORS = Registry("video aggregator", "model.aggregator")
register_aggregator = AGGREGATORS.register
list_aggregators = AGGREGATORS.names


def build_aggregator(name: str, ctx: AggregatorContext) -> VideoAggregator:
    return AGGREGATORS.get(name)(ctx)


@register_aggregator("mean")
class FrameMean(VideoAggregator):
    """Eq. 8: the average of the frame embeddings."""

    def __init__(self, ctx: AggregatorContext):
        super().__init__()

    def forward(self, features: VideoFeatures) -> torch.Tensor:
        return features.frames.mean(1)


@register_aggregator("mit")
class MultiframeIntegration(VideoAggregator):
    """X-CLIP's MIT: learned temporal position embedding, one transformer layer over T, residual, mean."""

    def __init__(self, ctx: AggregatorContext):
        super().__init__()
        dim = ctx.dim
        self.pos = nn.Parameter(torch.empty(1, ctx.num_frames, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.block = ResidualAttentionBlock(dim, max(1, dim // 64), act_layer=nn.GELU, batch_first=True)

    def forward(self, features: VideoFeatures) -> torch.Tensor:
        frames = features.frames
        return (self.block(frames + self.pos) + frames).mean(1)
