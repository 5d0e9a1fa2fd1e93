"""Defaults named once where the command line needs them without importing the modules that use them: the default
MLflow store (the tracker, the command line's help, the workflow's summary and ``analysis/make_table.py`` derive
their forms of it from here) and the most seeds a power projection tries. Imports nothing heavy."""

from __future__ import annotations

from pathlib import Path

MLFLOW_DB = "mlflow.db"  # the default store's database file, at the project root
# Relative to the working directory: the project root's store when run from there, as the workflow and the docs are.
DEFAULT_MLFLOW_URI = f"sqlite:///{MLFLOW_DB}"
TRACKING_URI_HELP = f"tracking URI (default: $MLFLOW_TRACKING_URI or {DEFAULT_MLFLOW_URI} at the project root)"


def mlflow_uri_at(root: str | Path) -> str:
    """The default store under ``root`` (the project root): with an absolute ``root``, the same store from any
    working directory."""
    return f"sqlite:///{Path(root) / MLFLOW_DB}"

# The most seeds per row a power projection tries (ila.stats.seeds_for_mde, `ila power --max-seeds`): a comparison that
# needs more is reported as needing "over" this many (a recipe or a validation set should change instead).
MAX_SEEDS = 200
