"""The one place that knows where things live.

Every path the suite writes is derived from the project root: the directory named by ``ILA_ROOT``
if set, else the current working directory (Snakemake runs jobs from the workflow directory, so the
two agree in the workflow and in an interactive shell started at the repository root).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    return Path(os.environ.get("ILA_ROOT", os.getcwd())).resolve()


def data_dir() -> Path:
    """Generated or downloaded datasets."""
    return project_root() / "data"


def resources_dir() -> Path:
    """Cached artefacts that several runs share (e.g. the pretrained mini-CLIP)."""
    return project_root() / "resources"


def results_dir() -> Path:
    """Runs, tables and figures."""
    return project_root() / "results"
