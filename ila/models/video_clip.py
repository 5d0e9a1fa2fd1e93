"""The video model every table row shares: an open_clip ViT run frame by frame with a temporal operator hooked
into chosen blocks, a video representation (frame mean, Eq. 8, or X-CLIP's MIT), and a head (class-name text
embeddings with an optional video-specific prompt generator, or a linear classifier)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from ila.models.operators.base import BlockContext, TemporalOperator, build_operator


def self_attention(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """The block's own attention weights through ``scaled_dot_product_attention`` (fused kernels on GPU; the math
    path decomposes into matmuls that FLOP counters see). Same function as ``nn.MultiheadAttention``."""
    b, n, d = x.shape
    h = attn.num_heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, d))


class VideoViT(nn.Module):
    """Runs an open_clip ``VisionTransformer`` on ``[B, T, 3, H, W]`` with temporal operators in chosen blocks."""

    def __init__(self, visual: nn.Module, num_frames: int, operator: str | None, options: dict,
                 blocks: list[int] | None, time_embed: bool = False):
        super().__init__()
        self.visual = visual
        self.num_frames = num_frames
        resblocks = visual.transformer.resblocks
        self.grid = tuple(visual.grid_size)
        width = visual.transformer.width
        heads = resblocks[0].attn.num_heads
        chosen = list(range(len(resblocks))) if blocks is None else list(blocks)
        bad = [i for i in chosen if not 0 <= i < len(resblocks)]
        if bad:
            raise ValueError(f"model.blocks: {bad} outside 0..{len(resblocks) - 1} for this backbone")
        # Blocks whose output tokens the next forward keeps in `kept` (block index -> [B*T, 1+HW, W]): for figures
        # that look inside the model (feature heatmaps); empty, nothing is kept.
        self.keep_blocks: set[int] = set()
        self.kept: dict[int, torch.Tensor] = {}
        # As TimeSformer: zero at the start (the image model's features), added to the patch tokens only.
        self.time_embed = nn.Parameter(torch.zeros(num_frames, width)) if time_embed else None
        self.operators = nn.ModuleDict()
        if operator is not None:
            for i in chosen:
                ctx = BlockContext(width, heads, self.grid, num_frames, i, resblocks[i])
                self.operators[str(i)] = build_operator(operator, ctx, dict(options))

    def operator_at(self, index: int) -> TemporalOperator | None:
        key = str(index)
        return self.operators[key] if key in self.operators else None

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns frame embeddings ``[B, T, E]``, pre-``ln_post`` patch tokens ``[B, T, HW, W]`` and the summed
        auxiliary loss of all blocks."""
        b, t = video.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"model was built for {self.num_frames} frames, got a clip of {t}")
        x = self.visual._embeds(video.flatten(0, 1))
        if self.time_embed is not None:
            n, d = x.shape[1:]
            frame_pos = self.time_embed.to(x.dtype)[:, None].expand(t, n - 1, d)  # keeps the stream's dtype
            x = x + torch.cat([frame_pos.new_zeros(t, 1, d), frame_pos], dim=1).repeat(b, 1, 1)
        aux = x.new_zeros(())
        for i, blk in enumerate(self.visual.transformer.resblocks):
            extra = None
            op = self.operator_at(i)
            if op is not None:
                out = op(x, t)
                x, extra = out.x, out.extra
                if out.aux_loss is not None:
                    aux = aux + out.aux_loss
            n = x.shape[1]
            h = x if extra is None else torch.cat([x, extra], dim=1)
            # Extra tokens take part in the spatial attention only: dropped before the MLP (Eq. 3b-4).
            x = (h + blk.ls_1(self_attention(blk.attn, blk.ln_1(h))))[:, :n]
            x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
            if i in self.keep_blocks:
                self.kept[i] = x.detach()
        n = x.shape[1]
        pooled, _ = self.visual._pool(x)
        if self.visual.proj is not None:
            pooled = pooled @ self.visual.proj
        return pooled.reshape(b, t, -1), x[:, 1:].reshape(b, t, n - 1, -1), aux


class MultiframeIntegration(nn.Module):
    """X-CLIP's MIT: learned temporal position embedding, one transformer layer over T, residual, mean."""

    def __init__(self, num_frames: int, dim: int):
        super().__init__()
        self.pos = nn.Parameter(torch.empty(1, num_frames, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.block = ResidualAttentionBlock(dim, max(1, dim // 64), act_layer=nn.GELU, batch_first=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return (self.block(frames + self.pos) + frames).mean(1)


class PromptGeneratorLayer(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, max(1, dim // 64), batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        text = text + self.cross_attn(self.norm1(text), visual, visual, need_weights=False)[0]
        return text + self.mlp(self.norm2(text))


class VideoSpecificPrompt(nn.Module):
    """X-CLIP's video-specific prompt: class text embeddings cross-attend to the video's patch tokens (averaged
    over frames) in two layers; the result, scaled by a per-channel alpha initialised to 0.1, is added to the text."""

    def __init__(self, vision_width: int, dim: int, layers: int = 2, alpha: float = 0.1):
        super().__init__()
        self.visual_ln = nn.LayerNorm(vision_width)
        self.visual_proj = nn.Linear(vision_width, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(PromptGeneratorLayer(dim) for _ in range(layers))
        self.alpha = nn.Parameter(torch.full((dim,), alpha))

    def forward(self, text: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """``text [C, E]``, ``patches [B, T, HW, W]`` -> per-video text embeddings ``[B, C, E]``."""
        visual = self.norm(self.visual_proj(self.visual_ln(patches)).mean(1))  # [B, HW, E]
        q = text.unsqueeze(0).expand(visual.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, visual)
        return text.unsqueeze(0) + self.alpha * q


@dataclass
class VideoOutput:
    logits: torch.Tensor  # [B, C]
    aux_loss: torch.Tensor  # scalar: summed alignment losses (0 for operators without one)
    video: torch.Tensor  # [B, E] video representation
    frames: torch.Tensor  # [B, T, E] frame embeddings


class VideoCLIP(nn.Module):
    def __init__(
        self,
        clip: nn.Module,
        tokenizer,
        class_names: list[str],
        num_frames: int,
        operator: str | None = None,
        operator_args: dict | None = None,
        blocks: list[int] | None = None,
        head: str = "text",
        prompt_generator: bool = True,
        mit: bool = False,
        time_embed: bool = False,
        freeze_visual: bool = False,
        freeze_text: bool = True,
        prompt_template: str = "a video of {}.",
    ):
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.class_names = list(class_names)
        self.prompt_template = prompt_template
        self.head_type = head
        self.freeze_text = freeze_text
        self.video_vit = VideoViT(clip.visual, num_frames, operator, operator_args or {}, blocks, time_embed)
        dim = clip.visual.output_dim
        vision_width = clip.visual.transformer.width
        self.mit = MultiframeIntegration(num_frames, dim) if mit else None
        if head == "text":
            self.prompt = VideoSpecificPrompt(vision_width, dim) if prompt_generator else None
            self.classifier = None
        elif head == "linear":
            self.prompt = None
            self.classifier = nn.Linear(dim, len(class_names))
        else:
            raise ValueError(f"model.head must be 'text' or 'linear', got {head!r}")
        self.register_buffer("_text_cache", torch.empty(0), persistent=False)
        # The text tower is unused by a linear head; it is frozen then too so it never enters the optimiser.
        frozen_text = freeze_text or head == "linear"
        for name, p in clip.named_parameters():
            if name.startswith("visual."):
                p.requires_grad_(not freeze_visual)
            else:
                p.requires_grad_(not frozen_text)

    # ------------------------------------------------------------------ text

    def text_tokens(self) -> torch.Tensor:
        return self.tokenizer([self.prompt_template.format(n) for n in self.class_names])

    def class_text_embeddings(self) -> torch.Tensor:
        """``[C, E]``; computed once and cached while the text tower is frozen."""
        if self.freeze_text:
            if self._text_cache.numel() == 0 or self._text_cache.device != self.clip.logit_scale.device:
                with torch.no_grad():
                    self._text_cache = self.clip.encode_text(self.text_tokens().to(self.clip.logit_scale.device))
            return self._text_cache
        return self.clip.encode_text(self.text_tokens().to(self.clip.logit_scale.device))

    def set_class_names(self, names: list[str]) -> None:
        if self.classifier is not None and len(names) != self.classifier.out_features:
            raise ValueError("a linear head cannot change its number of classes")
        self.class_names = list(names)
        self._text_cache = torch.empty(0, device=self._text_cache.device)

    # ------------------------------------------------------------------ forward

    def forward(self, video: torch.Tensor) -> VideoOutput:
        frames, patches, aux = self.video_vit(video)
        rep = self.mit(frames) if self.mit is not None else frames.mean(1)  # Eq. 8: average over frames
        if self.classifier is not None:
            return VideoOutput(self.classifier(rep), aux, rep, frames)
        text = self.class_text_embeddings()
        if self.prompt is not None:
            text = self.prompt(text, patches)  # [B, C, E]
        v = F.normalize(rep, dim=-1)
        t = F.normalize(text, dim=-1)
        cos = torch.einsum("be,bce->bc", v, t) if t.dim() == 3 else v @ t.T
        return VideoOutput(self.clip.logit_scale.exp() * cos, aux, rep, frames)

    # ------------------------------------------------------------------ parameters

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters split into pretrained CLIP weights (with the operators' copies of them) and the
        ones this model adds (the trainer gives the latter a 10x learning rate)."""
        clip_ids = {id(p) for p in self.clip.parameters()}
        for op in self.video_vit.operators.values():
            clip_ids.update(id(p) for p in op.pretrained_parameters())
        groups: dict[str, list[nn.Parameter]] = {"clip": [], "new": []}
        for p in self.parameters():
            if p.requires_grad:
                groups["clip" if id(p) in clip_ids else "new"].append(p)
        return groups

    def operator_parameters(self) -> int:
        return sum(p.numel() for p in self.video_vit.operators.parameters())
