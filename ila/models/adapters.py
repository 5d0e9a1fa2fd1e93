"""Backbone adapters: one view of a ViT image tower whatever library built it.

The video model and every temporal operator talk to the backbone only through :class:`BackboneAdapter` (patch
embedding, the blocks, pooling, grid, width) and :class:`BlockAdapter` (a block's norm / attention / layer scale /
MLP). Two families are adapted: open_clip's own ``VisionTransformer`` and a timm ``VisionTransformer`` inside
open_clip's ``TimmModel`` (a CLIP config with ``timm_model_name``). A new family is one adapter class and one entry in
the catalog (``ila.catalog.ADAPTERS``); nothing else in the suite reads a backbone's blocks or tokens.

Attention is recomputed here from each block's own projection weights through ``scaled_dot_product_attention`` (fused
kernels on GPU; the math path decomposes into matmuls that FLOP counters see) so that extra tokens can join it and
its queries and keys can be returned (:meth:`VideoViT.forward_intermediates`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import Attention as TimmAttention
from timm.models.vision_transformer import Block as TimmViTBlock
from torch import nn

from ila import catalog

QK = tuple[torch.Tensor, torch.Tensor]  # queries and keys [N, heads, tokens, head_dim]


def mha_attention(attn: nn.MultiheadAttention, x: torch.Tensor, want_qk: bool = False
                  ) -> tuple[torch.Tensor, QK | None]:
    """``nn.MultiheadAttention``'s self-attention (open_clip's blocks, X-CLIP's message attention), batch first."""
    b, n, d = x.shape
    h = attn.num_heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, d)), ((q, k) if want_qk else None)


def timm_attention(attn: nn.Module, x: torch.Tensor, want_qk: bool = False) -> tuple[torch.Tensor, QK | None]:
    """timm's ``Attention`` (fused qkv, optional q/k norms, attention dropout, output norm and gate)."""
    b, n, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(q), attn.k_norm(k)
    drop = attn.attn_drop.p if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
    out = out.transpose(1, 2).reshape(b, n, attn.num_heads * attn.head_dim)
    if hasattr(attn, "norm"):  # timm >= 1.0's optional output norm (an Identity unless scale_norm)
        out = attn.norm(out)
    if getattr(attn, "gate", None) is not None:
        out = out * attn.gate(x).sigmoid()
    return attn.proj_drop(attn.proj(out)), ((q, k) if want_qk else None)


class BlockAdapter:
    """A pre-norm transformer block: ``x + scale_attn(attn(norm1(x)))``, then ``x + scale_mlp(mlp(norm2(x)))``
    (``scale_*``: the branch's layer scale, and on timm its drop path).

    ``norm1``, ``attn``, ``norm2`` and ``mlp`` are the block's own modules (operators copy them); ``attend`` runs an
    attention module of this family (the block's or a copy of it)."""

    norm1: nn.Module
    attn: nn.Module
    norm2: nn.Module
    mlp: nn.Module
    attend: Callable[..., tuple[torch.Tensor, QK | None]]

    def scale_attn(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scale_mlp(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def heads(self) -> int:
        return self.attn.num_heads

    def attention_residual(self, x: torch.Tensor, extra: torch.Tensor | None = None, want_qk: bool = False
                           ) -> tuple[torch.Tensor, QK | None]:
        """The attention half. ``extra`` tokens ``[N, k, D]`` join the attention only and are dropped after it
        (Eq. 3b-4)."""
        n = x.shape[1]
        h = x if extra is None else torch.cat([x, extra], dim=1)
        out, qk = self.attend(self.attn, self.norm1(h), want_qk)
        return (h + self.scale_attn(out))[:, :n], qk

    def mlp_residual(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale_mlp(self.mlp(self.norm2(x)))


class OpenCLIPBlock(BlockAdapter):
    """open_clip's ``ResidualAttentionBlock`` (``ln_1 / attn / ls_1 / ln_2 / mlp / ls_2``)."""

    attend = staticmethod(mha_attention)

    def __init__(self, block: nn.Module):
        self.norm1, self.attn, self.norm2, self.mlp = block.ln_1, block.attn, block.ln_2, block.mlp
        self._ls1, self._ls2 = block.ls_1, block.ls_2

    def scale_attn(self, y):
        return self._ls1(y)

    def scale_mlp(self, y):
        return self._ls2(y)


class TimmBlock(BlockAdapter):
    """timm's ViT ``Block`` (``norm1 / attn.qkv / attn.proj / ls1 / drop_path1 / norm2 / mlp / ls2 / drop_path2``)."""

    attend = staticmethod(timm_attention)

    def __init__(self, block: nn.Module):
        if not isinstance(block, TimmViTBlock) or type(block.attn) is not TimmAttention:
            raise ValueError(f"timm block {type(block).__name__} with {type(block.attn).__name__}: only timm's "
                             "pre-norm ViT Block with its standard Attention is adapted")
        self.norm1, self.attn, self.norm2, self.mlp = block.norm1, block.attn, block.norm2, block.mlp
        self._block = block

    def scale_attn(self, y):
        return self._block.drop_path1(self._block.ls1(y))

    def scale_mlp(self, y):
        return self._block.drop_path2(self._block.ls2(y))


class BackboneAdapter:
    """A ViT image tower: ``embed`` images ``[N, 3, H, W]`` to tokens ``[N, 1+HW, width]`` (class token first), run
    ``blocks``, ``pool`` the last block's tokens to the embedding ``[N, output_dim]``."""

    blocks: list[BlockAdapter]
    grid: tuple[int, int]
    width: int
    output_dim: int

    @classmethod
    def fits(cls, visual: nn.Module) -> bool:
        """Whether this adapter adapts the image tower ``visual`` (``clip.visual``)."""
        raise NotImplementedError

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def heads(self) -> int:
        return self.blocks[0].heads


class OpenCLIPViT(BackboneAdapter):
    """open_clip's ``VisionTransformer``."""

    @classmethod
    def fits(cls, visual: nn.Module) -> bool:
        return hasattr(visual, "transformer") and hasattr(visual, "_embeds") and hasattr(visual, "grid_size")

    def __init__(self, visual: nn.Module):
        _refuse_patch_dropout(visual.patch_dropout)
        self.visual = visual
        self.blocks = [OpenCLIPBlock(b) for b in visual.transformer.resblocks]
        self.grid = tuple(visual.grid_size)
        self.width = visual.transformer.width
        self.output_dim = visual.output_dim

    def embed(self, images):
        return self.visual._embeds(images)

    def pool(self, tokens):
        pooled, _ = self.visual._pool(tokens)
        return pooled if self.visual.proj is None else pooled @ self.visual.proj


class TimmViT(BackboneAdapter):
    """A timm ``VisionTransformer`` as open_clip's ``TimmModel`` wraps it (``.trunk``, projection in ``.head``)."""

    @classmethod
    def fits(cls, visual: nn.Module) -> bool:
        return hasattr(visual, "trunk") and hasattr(visual.trunk, "blocks") and hasattr(visual.trunk, "patch_embed")

    def __init__(self, visual: nn.Module):
        trunk = self.trunk = visual.trunk
        if getattr(trunk, "num_prefix_tokens", None) != 1 or not getattr(trunk, "has_class_token", False):
            raise ValueError(f"timm model {type(trunk).__name__} must have exactly one class token and no register "
                             "tokens (operators split tokens into the class token and the patch grid)")
        _refuse_patch_dropout(trunk.patch_drop)
        self.head = visual.head
        self.blocks = [TimmBlock(b) for b in trunk.blocks]
        self.grid = tuple(trunk.patch_embed.grid_size)
        self.width = trunk.embed_dim
        # The embedding's size: the last linear layer of open_clip's head, else of the trunk's own head (open_clip's
        # timm_proj: none with an embed_dim-wide classifier), else the trunk's features.
        linears = [m for m in (*visual.head.modules(), *trunk.get_classifier().modules()) if isinstance(m, nn.Linear)]
        self.output_dim = linears[-1].out_features if linears else trunk.num_features

    def embed(self, images):
        t = self.trunk
        return t.norm_pre(t.patch_drop(t._pos_embed(t.patch_embed(images))))

    def pool(self, tokens):
        # As TimmModel.forward: the trunk's pooling, norms and head (an Identity unless it is the projection), then
        # open_clip's projection head.
        return self.head(self.trunk.forward_head(self.trunk.norm(tokens)))


def _refuse_patch_dropout(module: nn.Module) -> None:
    """Patch dropout removes tokens in training; the operators need every frame's full patch grid."""
    if not isinstance(module, nn.Identity) and getattr(module, "prob", 0.0) > 0:
        raise ValueError(f"the image tower drops patches in training (patch dropout {module.prob}); the temporal "
                         "operators need the full patch grid: build it without patch dropout")


def adapt_backbone(visual: nn.Module) -> BackboneAdapter:
    """The adapter for an image tower (``clip.visual``); a tower no adapter knows fails naming its type."""
    for entry in catalog.ADAPTERS.values():
        adapter = catalog.load_class(entry.location, BackboneAdapter)
        if adapter.fits(visual):
            return adapter(visual)
    inner: Any = getattr(visual, "trunk", None)
    raise ValueError(f"no backbone adapter for image tower {type(visual).__name__}"
                     + (f" (timm {type(inner).__name__})" if inner is not None else "")
                     + "; adapted: " + ", ".join(entry.description for entry in catalog.ADAPTERS.values()))
