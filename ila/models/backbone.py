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


def fetch_weights(backbone: str, tag: str, out: str | Path, url: str | None = None) -> Path:
    """Download pretrained weights once and store them as a local checkpoint for offline runs.

    With ``url`` the file is fetched directly (any HTTP(S) mirror of the checkpoint); otherwise open_clip resolves
    ``tag`` through its hub. The result is loaded once through :func:`build_clip` to check it fits ``backbone``,
    then moved into place atomically.
    """
    import shutil
    import urllib.request

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    if url:
        with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as fh:
            shutil.copyfileobj(response, fh)
    else:
        model = open_clip.create_model(backbone, pretrained=tag)
        torch.save(model.state_dict(), tmp)
    try:
        build_clip(backbone, str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"downloaded weights do not load into {backbone}: {exc}") from exc
    os.replace(tmp, out)
    return out
