"""The kinds of dataset the suite trains on, named once: the ablation files' ``datasets:``, the workflow's
``dataset.kind``, ``ila data --dataset`` and ``analysis/make_table.py --dataset-kind`` all take them from here.

Imports nothing heavy (the workflow's planning and the command line's help read it).
"""

from __future__ import annotations

from ila.errors import ConfigError

# The published datasets that `ila data` fetches, extracts and lists (Kinetics-400, Something-Something-v2).
PUBLISHED_DATASETS = ("kinetics400", "ssv2")
# What an ablation row may name under `datasets:`: the embedded synthetic benchmark and the published datasets.
DATASET_KINDS = ("synth", *PUBLISHED_DATASETS)
# The workflow's dataset.kind: one of those, or "lists", the user's own train/val lists and labels (no row names
# it: a row that names its datasets does not run on such lists, one that names none does).
WORKFLOW_DATASET_KINDS = (*DATASET_KINDS, "lists")


def check_dataset_kind(kind: object, key: str = "dataset.kind") -> str:
    """``kind`` if the workflow can run on it; else a :class:`ConfigError` naming ``key`` and the kinds."""
    if kind not in WORKFLOW_DATASET_KINDS:
        raise ConfigError(f"{key}: expected one of {list(WORKFLOW_DATASET_KINDS)}, got {kind!r}")
    return kind
