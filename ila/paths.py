"""The one place that knows where things live, and how a file the suite writes is written whole.

Every path the suite writes is derived from the project root: the directory named by ``ILA_ROOT``
if set, else the current working directory (Snakemake runs jobs from the workflow directory, so the
two agree in the workflow and in an interactive shell started at the repository root).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# What ran since an invocation started is judged by files' modification times; filesystems with coarse timestamps
# (1 s, 2 s on FAT) can stamp a file a little before the clock read at its start.
MTIME_SLACK_S = 2.0


def project_root() -> Path:
    return Path(os.environ.get("ILA_ROOT", os.getcwd())).resolve()


def resolve_root(root: str | Path) -> Path:
    """A dataset's root as the suite reads it: relative paths are relative to the project root."""
    root = Path(root)
    return root if root.is_absolute() else project_root() / root


def synth_root(preset: str) -> str:
    """Where the synthetic benchmark of a preset (ila.data.synth.PRESETS) is generated, relative to the project
    root."""
    return f"data/{_SYNTH_PREFIX}{preset}"


def synth_preset_of(root: str | Path) -> str | None:
    """The preset whose benchmark a directory named as :func:`synth_root` names it holds (None: another name)."""
    name = Path(root).name
    return name.removeprefix(_SYNTH_PREFIX) if name.startswith(_SYNTH_PREFIX) else None


_SYNTH_PREFIX = "synth-"


def run_dir(table: str, row: str, seed: int | str) -> str:
    """A run's directory under the results directory: one per (table, row, seed). A row shared from another
    table (``from:``) has its runs under that table."""
    return f"{table}/{row}/seed{seed}"


def write_json(data: Any, path: str | Path) -> Path:
    """Written whole or not at all (a temporary file, then a rename): an interrupted job leaves no half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


# How the embedded default pretrains its mini-CLIP backbones (ila.pretrain): CLIP's contrastive loss on captions, or
# one-hot labels (Table 10's question: ILA on a backbone pretrained without language).
PRETRAINING_OBJECTIVES = ("contrastive", "supervised")


def backbone_weights_file(name: str, tag: str | None = None, pretraining: str | None = None) -> str | None:
    """Where a backbone's weights live, relative to the project root: the suite's own pretraining
    (``pretraining`` given: ``resources/pretrained/<name>.pt``, ``<name>-supervised.pt``), or weights fetched for a
    pretrained ``tag`` (``resources/weights/<name>-<tag>.pt``, what ``ila fetch-weights`` writes); None for neither."""
    if pretraining is not None:
        if pretraining not in PRETRAINING_OBJECTIVES:
            raise ValueError(f"pretraining: expected one of {PRETRAINING_OBJECTIVES}, got {pretraining!r}")
        suffix = "" if pretraining == "contrastive" else f"-{pretraining}"
        return f"resources/pretrained/{name}{suffix}.pt"
    return f"resources/weights/{name}-{tag}.pt" if tag else None
