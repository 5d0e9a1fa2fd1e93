"""One factory for every video model (as timm's ``create_model``).

The named variants, operators, aggregators and adapters are catalogued in the torch-free :mod:`ila.catalog`;
:func:`ila.config.resolve_model_config` turns a variant plus overrides into a :class:`~ila.config.ModelConfig`, and
:func:`create_model` builds it on any backbone a catalogued adapter fits, importing each part's class from its
catalog location.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ila.config import ModelConfig, resolve_model_config
from ila.models.backbone import build_clip, tokenizer_for
from ila.models.video_clip import VideoCLIP


def create_model(cfg: Mapping[str, Any] | ModelConfig, class_names: list[str], device: str | None = None) -> VideoCLIP:
    """The video model for ``cfg`` with a head over ``class_names``; ``device='meta'`` builds it without weights. A
    probe (``model.probe_from``) starts from the source run's trained weights, frozen."""
    cfg = resolve_model_config(cfg)
    clip = build_clip(cfg.backbone, cfg.pretrained, device=device)
    with torch.device(device) if device else contextlib.nullcontext():
        model = VideoCLIP(clip, tokenizer_for(cfg.backbone), class_names, cfg)
    if cfg.probe_from is not None and device != "meta":
        from ila.engine import checkpoint as ckpt

        path = Path(cfg.probe_from)
        if not path.is_file():
            raise FileNotFoundError(f"model.probe_from: {path} not found: train the source run first")
        state = ckpt.evaluated_weights(ckpt.load(path, "cpu", what_to_do="train the source run again"))
        model.load_representation(state, str(path))
    return model
