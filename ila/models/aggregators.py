"""Video aggregators: how a video's representation is made from its frames, catalogued by name like the operators
(``ila.catalog.AGGREGATORS``).

An aggregator receives the video ViT's :class:`~ila.models.video_vit.VideoFeatures` and returns ``[B, E]``. One that
needs more than the pooled frames names the blocks it reads (``intermediate_blocks``, negative from the end) and
whether it needs their attention queries and keys (``attention_qk``): the model asks
:meth:`~ila.models.video_vit.VideoViT.forward_intermediates` for them (a decoder over the last blocks, as EVL's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock
from torch import nn

from ila import catalog
from ila.models.video_vit import VideoFeatures


@dataclass
class AggregatorContext:
    num_frames: int
    dim: int  # the frame embeddings' size (the tower's output)
    width: int  # the backbone's token width
    heads: int
    depth: int
    grid: tuple[int, int]  # the patch grid (rows, columns)


class VideoAggregator(nn.Module):
    intermediate_blocks: tuple[int, ...] = ()
    attention_qk: bool = False
    # The size of the representation it returns: None means the frame embeddings' (``AggregatorContext.dim``), which
    # a text head needs; an aggregator that returns another size feeds a linear head only.
    output_dim: int | None = None

    def forward(self, features: VideoFeatures) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def build_aggregator(name: str, ctx: AggregatorContext) -> VideoAggregator:
    """Aggregator ``name``, its class imported from the catalog's location (``ila.catalog.AGGREGATORS``)."""
    entry = catalog.lookup(catalog.AGGREGATORS, name, "model.aggregator", "video aggregator")
    aggregator = catalog.load_class(entry.location, VideoAggregator)(ctx)
    aggregator.registry_name = name  # the catalog name it was built under
    return aggregator


class FrameMean(VideoAggregator):
    """Eq. 8: the average of the frame embeddings."""

    def __init__(self, ctx: AggregatorContext):
        super().__init__()

    def forward(self, features: VideoFeatures) -> torch.Tensor:
        return features.frames.mean(1)


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


# --------------------------------------------------------------------------- EVL

# EVL's K400 ViT-B/16 configuration (OpenGVLab/efficient-video-recognition, main.py and its train script): a decoder of
# 4 layers over the last 4 blocks, MLP ratio 4, dropout 0.5 in the MLPs and before the head.
EVL_LAYERS = 4
EVL_MLP_RATIO = 4
EVL_DROPOUT = 0.5


class EVLTemporalCrossAttention(nn.Module):
    """EVL's temporal cross-attention: each patch of frame t attends (softmax of the block's own q·k, averaged over
    the heads) to the patches of frames t-1 and t+1, and returns the attention-weighted sum of a learned vector per
    2-D relative offset (one table for the previous frame, one for the next), both zero-initialised: the module adds
    nothing until trained. The class token gets nothing; the first frame has no previous one, the last no next."""

    def __init__(self, grid: tuple[int, int], width: int):
        super().__init__()
        h, w = grid
        self.grid = grid
        self.previous = nn.Parameter(torch.zeros((2 * h - 1) * (2 * w - 1), width))
        self.next = nn.Parameter(torch.zeros((2 * h - 1) * (2 * w - 1), width))
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        rows, cols = rows.flatten(), cols.flatten()
        offset = (rows[:, None] - rows[None] + h - 1) * (2 * w - 1) + (cols[:, None] - cols[None] + w - 1)
        self.register_buffer("offset", offset, persistent=False)  # [HW, HW]: query x key -> relative offset

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``q, k [B, T, heads, 1+HW(+extra), head_dim]`` -> ``[B, T, 1+HW, width]`` (zeros at the class token)."""
        hw = self.grid[0] * self.grid[1]
        q, k = q[..., 1:1 + hw, :], k[..., 1:1 + hw, :]
        b, t = q.shape[:2]
        out = q.new_zeros(b, t, 1 + hw, self.previous.shape[1])
        for table, src, dst in ((self.previous, slice(1, t), slice(0, t - 1)), (self.next, slice(0, t - 1),
                                                                                  slice(1, t))):
            attn = (q[:, src] @ k[:, dst].transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1).mean(2)
            out[:, src, 1:] += torch.einsum("btqk,qkd->btqd", attn, table.to(q.dtype)[self.offset])
        return out


class EVLDecoderLayer(nn.Module):
    """One pre-norm decoder layer: the query cross-attends to all the video's tokens, then an MLP (QuickGELU)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_query, self.norm_tokens, self.norm_mlp = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        hidden = EVL_MLP_RATIO * width
        self.mlp = nn.Sequential(nn.Linear(width, hidden), QuickGELU(), nn.Dropout(EVL_DROPOUT),
                                 nn.Linear(hidden, width))

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm_tokens(tokens)
        query = query + self.attn(self.norm_query(query), kv, kv, need_weights=False)[0]
        return query + self.mlp(self.norm_mlp(query))


class EVLDecoder(VideoAggregator):
    """EVL (Lin et al., ECCV 2022): a decoder over the last blocks of the image tower, which EVL keeps frozen.

    Layer i reads block ``depth - L + i``'s output tokens (no final norm) and adds, per frame, a depthwise temporal
    convolution over the frames (kernel 3, PyTorch's default init, every token), a zero-initialised temporal position
    embedding and the temporal cross-attention (zero-initialised); one learnable query (zeros, as EVL's) attends to
    all T x (1+HW) tokens. The representation is the query after a LayerNorm and dropout, in the tower's width, for a
    linear head (EVL's)."""

    attention_qk = True

    def __init__(self, ctx: AggregatorContext):
        super().__init__()
        layers = min(EVL_LAYERS, ctx.depth)
        self.intermediate_blocks = tuple(range(-layers, 0))
        self.output_dim = ctx.width
        self.temporal_conv = nn.ModuleList(
            nn.Conv1d(ctx.width, ctx.width, 3, padding=1, groups=ctx.width) for _ in range(layers))
        self.temporal_pos = nn.ParameterList(nn.Parameter(torch.zeros(ctx.num_frames, ctx.width))
                                             for _ in range(layers))
        self.cross_attention = nn.ModuleList(EVLTemporalCrossAttention(ctx.grid, ctx.width) for _ in range(layers))
        self.decoder = nn.ModuleList(EVLDecoderLayer(ctx.width, ctx.heads) for _ in range(layers))
        self.query = nn.Parameter(torch.zeros(ctx.width))
        self.head_norm, self.head_dropout = nn.LayerNorm(ctx.width), nn.Dropout(EVL_DROPOUT)

    def forward(self, features: VideoFeatures) -> torch.Tensor:
        any_block = next(iter(features.intermediates.values()))
        b, t = any_block.shape[:2]
        query = self.query.to(any_block.dtype).expand(b, 1, -1)
        blocks = sorted(features.intermediates)
        for i, index in enumerate(blocks):
            tokens = features.intermediates[index]  # [B, T, 1+HW, W]
            n, w = tokens.shape[2:]
            conv = self.temporal_conv[i](tokens.permute(0, 2, 3, 1).reshape(b * n, w, t))
            tokens = tokens + conv.reshape(b, n, w, t).permute(0, 3, 1, 2)
            tokens = tokens + self.temporal_pos[i].to(tokens.dtype)[None, :, None]
            q, k = (z.reshape(b, t, *z.shape[1:]) for z in features.qk[index])
            tokens = tokens + self.cross_attention[i](q, k)
            query = self.decoder[i](query, tokens.reshape(b, t * n, w))
        return self.head_dropout(self.head_norm(query[:, 0]))
