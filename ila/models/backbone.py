"""CLIP backbones from open_clip: by model name with a pretrained tag or a local weight file.

The suite's own small architectures (the embedded default's mini-CLIP) are JSON files in ``configs/`` registered
with open_clip's model registry, so they are built by the same factory as ViT-B/32 … L/14@336.
"""

from __future__ import annotations

import os
from pathlib import Path

import open_clip
import torch
from torch import nn

_CONFIG_DIR = Path(__file__).parent / "configs"
open_clip.add_model_config(_CONFIG_DIR)

PAPER_BACKBONES = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336")


class MissingWeightsError(FileNotFoundError):
    """A local weight file named in the config does not exist."""


def _is_file_reference(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def build_clip(
    name: str,
    pretrained: str | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """An open_clip CLIP model.

    ``pretrained`` is an open_clip tag (``openai``, ``laion2b_s34b_b79k``, … — fetched through the hub), a path to a
    local checkpoint (never touches the network), or None for random initialisation. ``device='meta'`` builds the
    architecture without allocating weights (FLOPs counting).
    """
    if name not in open_clip.list_models():
        raise ValueError(f"unknown backbone {name!r}; open_clip knows e.g. {', '.join(PAPER_BACKBONES)}, ILA-mini-32")
    if pretrained and _is_file_reference(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            tag = "openai"
            raise MissingWeightsError(
                f"backbone weights {path} not found. Fetch them on a machine with internet access, e.g.\n"
                f"  python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{tag}', "
                f"cache_dir='weights')\"\n"
                f"then copy the downloaded checkpoint (open_clip_pytorch_model.bin or the .pt file) to {path}."
            )
        pretrained = str(path)
    meta = str(device) == "meta"
    return open_clip.create_model(name, pretrained=None if meta else pretrained, device=device or "cpu")


def tokenizer_for(name: str):
    return open_clip.get_tokenizer(name)
