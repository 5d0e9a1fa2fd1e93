"""The backbones' architecture configs (open_clip's model JSON files and the suite's own), read without torch.

``model.backbone`` names an open_clip model config; reading the JSON directly (open_clip's package is located, not
imported) lets a config be checked, backbone name and block indices included, before any job imports torch.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

SUITE_CONFIGS = Path(__file__).parent / "models" / "configs"
PAPER_BACKBONES = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336")


@lru_cache(maxsize=1)
def _config_files() -> dict[str, Path]:
    dirs = [SUITE_CONFIGS]
    spec = importlib.util.find_spec("open_clip")  # finds the package without running it
    if spec is not None and spec.submodule_search_locations:
        dirs.insert(0, Path(next(iter(spec.submodule_search_locations))) / "model_configs")
    return {p.stem: p for d in dirs if d.is_dir() for p in sorted(d.glob("*.json"))}


def backbone_examples() -> str:
    """The backbones an unknown name's message offers: the paper's and the suite's own."""
    return ", ".join([*PAPER_BACKBONES, *suite_backbones()])


def suite_backbones() -> list[str]:
    """The suite's own small backbones (the embedded default's), which ``ila pretrain-clip`` pretrains."""
    return sorted(p.stem for p in SUITE_CONFIGS.glob("ILA-*.json"))


def _vision_int(name: str, key: str) -> int | None:
    """An integer of the backbone's ``vision_cfg``; None where the config does not give one."""
    files = _config_files()
    if name not in files:
        raise KeyError(name)
    value = json.loads(files[name].read_text()).get("vision_cfg", {}).get(key)
    return value if isinstance(value, int) else None


def backbone_image_size(name: str) -> int | None:
    """The image tower's input size (its position embeddings' grid times the patch), None where not given."""
    return _vision_int(name, "image_size")


def backbone_depth(name: str) -> int | None:
    """The image tower's number of blocks; None when the config does not say (a timm tower names its timm model)."""
    return _vision_int(name, "layers")
