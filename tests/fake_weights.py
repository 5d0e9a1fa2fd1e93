"""Weights files in OpenAI's format, made here: OpenAI ships CLIP as TorchScript archives whose modules carry the
CLIP state dict's names, so a scripted module tree with the same names (and random values) stands for one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def module_tree(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A module whose buffers are ``state`` under the same dotted names."""
    root = torch.nn.Module()
    for key, value in state.items():
        *path, leaf = key.split(".")
        module = root
        for name in path:
            if not hasattr(module, name):
                module.add_module(name, torch.nn.Module())
            module = getattr(module, name)
        module.register_buffer(leaf, value.clone())
    return root


def write_openai_archive(path: Path, backbone: str, seed: int = 0) -> tuple[dict[str, torch.Tensor], str]:
    """A randomly initialised ``backbone`` (an open_clip name) saved as OpenAI's TorchScript archive at ``path``, in
    fp16 as OpenAI's files are; returns its state dict (as stored) and the file's sha256."""
    from ila.models.backbone import build_clip

    torch.manual_seed(seed)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in build_clip(backbone).state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(module_tree(state)), str(path))
    return state, hashlib.sha256(path.read_bytes()).hexdigest()
