"""One switch for every progress bar the suite draws (``--no-progress`` on the command line turns them all off).

Bars stay tqdm's: each call site keeps its own ``disable`` (tqdm's ``None`` hides a bar when stderr is not a
terminal, e.g. in a Snakemake job's log), and the switch only ever turns a bar off.
"""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

_enabled = True


def set_progress(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    if not _enabled:
        kwargs["disable"] = True
    return tqdm(*args, **kwargs)
