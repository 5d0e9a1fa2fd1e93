"""The video model every table row shares: an image ViT run frame by frame with a temporal operator in chosen
blocks (``video_vit.py``), a catalogued video aggregator (frame mean, Eq. 8, or X-CLIP's MIT; ``aggregators.py``),
and a head (class-name text embeddings with an optional video-specific prompt generator, or a linear classifier)."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ila.config import ModelConfig
from ila.errors import ConfigError
from ila.models.aggregators import AggregatorContext, build_aggregator
from ila.models.video_vit import VideoViT


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


def _rename_legacy_keys(module, state_dict, prefix, *args) -> None:
    """Checkpoints written before the aggregators were registered hold X-CLIP's MIT as ``mit.*``."""
    for key in [k for k in state_dict if k.startswith(prefix + "mit.")]:
        state_dict[prefix + "aggregator." + key[len(prefix) + 4:]] = state_dict.pop(key)


@contextlib.contextmanager
def part_rng(base: int, part: str) -> Iterator[None]:
    """Initialise one part of the model from its own stream: ``base`` (drawn once from the run's seeded generator)
    mixed with the part's name, the global generator restored afterwards.

    Common random numbers between table rows: rows trained with one seed differ in their temporal operator, and
    without this the head would be initialised from wherever the operator left the global generator (a row's new
    layers shifting another part's draws), so two rows' difference would carry a difference of luck in the head's
    initialisation. With it, every row of a seed starts the head (and anything after the model) from the same
    numbers."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((base ^ zlib.crc32(part.encode())) % (2**63))
        yield


@dataclass
class VideoOutput:
    logits: torch.Tensor  # [B, C]
    aux_loss: torch.Tensor  # scalar: summed alignment losses (0 for operators without one)
    video: torch.Tensor  # [B, E] video representation
    frames: torch.Tensor  # [B, T, E] frame embeddings


class VideoCLIP(nn.Module):
    """A CLIP model made a video model by ``cfg`` (a resolved :class:`~ila.config.ModelConfig`)."""

    def __init__(self, clip: nn.Module, tokenizer, class_names: list[str], cfg: ModelConfig):
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.class_names = list(class_names)
        self.prompt_template = cfg.prompt_template
        self.head_type = cfg.head
        self.freeze_text = cfg.freeze_text
        base = int(torch.randint(0, 2**62, (), device="cpu"))  # one draw, whatever the row: see part_rng
        with part_rng(base, "temporal operators"):
            self.video_vit = VideoViT(clip.visual, cfg)
        backbone = self.video_vit.backbone
        dim = backbone.output_dim
        with part_rng(base, "aggregator"):
            self.aggregator = build_aggregator(cfg.aggregator, AggregatorContext(
                cfg.num_frames, dim, backbone.width, backbone.heads, backbone.depth, self.video_vit.grid))
        with part_rng(base, "head"):
            self._build_head(cfg, backbone.width, dim, len(class_names))
        self.register_buffer("_text_cache", torch.empty(0), persistent=False)
        self.register_load_state_dict_pre_hook(_rename_legacy_keys)
        self._set_trainable(clip, cfg)

    def _build_head(self, cfg: ModelConfig, width: int, dim: int, num_classes: int) -> None:
        """Class-name text embeddings (with X-CLIP's prompt generator when asked) or a linear classifier."""
        if cfg.head == "text":
            if self.aggregator.output_dim not in (None, dim):
                raise ConfigError(f"model.aggregator: {cfg.aggregator!r} feeds a linear head only: set model.head: "
                                  "linear")
            self.prompt = VideoSpecificPrompt(width, dim) if cfg.prompt_generator else None
            self.classifier = None
        else:  # "linear" (the config accepts nothing else)
            self.prompt = None
            self.classifier = nn.Linear(self.aggregator.output_dim or dim, num_classes)

    def _set_trainable(self, clip: nn.Module, cfg: ModelConfig) -> None:
        # The text tower is unused by a linear head; it is frozen then too so it never enters the optimiser.
        frozen_text = cfg.freeze_text or cfg.head == "linear"
        for name, p in clip.named_parameters():
            if name.startswith("visual."):
                p.requires_grad_(not cfg.freeze_visual)
            else:
                p.requires_grad_(not frozen_text)
        # A linear probe (model.probe_from) trains the head only: everything else is the source run's, frozen.
        self.probe = cfg.probe_from is not None
        if self.probe:
            for name, p in self.named_parameters():
                p.requires_grad_(name.startswith("classifier."))

    def train(self, mode: bool = True) -> VideoCLIP:
        """A probe keeps its frozen model in eval mode while its head trains: no dropout, no BatchNorm statistics
        updated, no point jitter (the representation is the source run's, as evaluated)."""
        super().train(mode)
        if self.probe:
            for name, child in self.named_children():
                if name != "classifier":
                    child.eval()
        return self

    # Where a probe's representation lives: the image tower, the operators in it, the aggregator.
    REPRESENTATION_PREFIXES = ("clip.visual.", "video_vit.", "aggregator.")

    def load_representation(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load the representation's weights (``REPRESENTATION_PREFIXES``) from a trained run's state dict; a
        missing or differently shaped one fails naming ``source`` (another model than this config's)."""
        own = {k: v for k, v in self.state_dict().items() if k.startswith(self.REPRESENTATION_PREFIXES)}
        missing = [k for k in own if k not in state]
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or wrong:
            raise ConfigError(f"{source}: not a run of this model (model.probe_from): "
                              + (f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}" if missing else "")
                              + (f" shapes differ for {wrong[:3]}" if wrong else ""))
        self.load_state_dict({k: state[k] for k in own}, strict=False)  # the head stays new

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

    # ------------------------------------------------------------------ forward

    def forward(self, video: torch.Tensor) -> VideoOutput:
        agg = self.aggregator
        feats = self.video_vit(video, agg.intermediate_blocks, agg.attention_qk)
        rep, frames, aux = agg(feats), feats.frames, feats.aux_loss
        if self.classifier is not None:
            return VideoOutput(self.classifier(rep), aux, rep, frames)
        text = self.class_text_embeddings()
        if self.prompt is not None:
            text = self.prompt(text, feats.patches)  # [B, C, E]
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
