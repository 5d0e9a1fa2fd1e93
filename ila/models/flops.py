"""FLOPs and parameter counts in the convention of the video-CLIP papers.

Convention (fvcore, as X-CLIP and ILA report): one multiply-add counts as one FLOP; per view, i.e. one video
``[1, T, 3, H, W]`` plus one class text ``[1, context_length]``; matrix multiplications and convolutions,
attention's QK^T and AV included; normalisation, softmax and activations not counted.

Counting runs on the ``meta`` device (no weights are allocated, a ViT-B/32 takes well under a second) under
``torch.utils.flop_counter.FlopCounterMode``, which counts 2 per multiply-add (halved here). Two pitfalls make it
miss attention silently: the fused CPU kernels have no FLOP formula, and ``nn.MultiheadAttention`` takes a fused
fast path under ``no_grad`` in eval mode. The count therefore runs with grad enabled, the MHA fast path disabled and
SDPA forced to its math decomposition, so every attention matmul is seen.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ila.config import ModelConfig, resolve_model_config
from ila.models.factory import create_model


@contextlib.contextmanager
def exact_attention_counting():
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH), torch.enable_grad():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def count_macs_by_module(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, int]:
    """Multiply-adds of one call of ``fn`` (fvcore convention) per module path (``'Global'`` is the total)."""
    with exact_attention_counting(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return {name: sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()}


@dataclass
class ModelCost:
    gflops: float  # G multiply-adds per view: one video + one text
    gflops_operator: float  # of which the temporal operators (alignment modules etc.)
    gflops_text: float  # of which the text tower and the video-specific prompt generator
    params_total: int
    params_trainable: int
    params_operator: int  # added by the temporal operator
    params_added: int  # everything that is not a CLIP weight (operator, prompt generator, MIT, head)


def model_cost(cfg: Mapping[str, Any] | ModelConfig, image_size: int | None = None) -> ModelCost:
    """Cost of one view of a model config, computed on the meta device."""
    cfg = resolve_model_config(cfg)
    model = create_model(cfg, ["a class"], device="meta").eval()
    size = image_size or model.clip.visual.image_size[0]
    video = torch.empty(1, cfg.num_frames, 3, size, size, device="meta")
    macs = count_macs_by_module(model, video)
    operator = sum(v for k, v in macs.items() if re.fullmatch(r".*\.video_vit\.operators\.[^.]+", k))
    text = sum(v for k, v in macs.items() if re.fullmatch(r"[^.]+\.(clip\.transformer|prompt)", k))
    clip_ids = {id(p) for p in model.clip.parameters()}
    total = sum(p.numel() for p in model.parameters())
    if cfg.head == "linear":  # the text tower is never run
        total -= sum(p.numel() for n, p in model.clip.named_parameters() if not n.startswith("visual."))
    return ModelCost(
        gflops=macs["Global"] / 1e9,
        gflops_operator=operator / 1e9,
        gflops_text=text / 1e9,
        params_total=total,
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        params_operator=model.operator_parameters(),
        params_added=sum(p.numel() for p in model.parameters() if id(p) not in clip_ids),
    )
