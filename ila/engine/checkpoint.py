"""Checkpoints that survive faults.

* Atomic: written to ``<name>.tmp`` and renamed, so an interruption never leaves a half-written checkpoint, and a
  failed write (a full disk) removes the temporary file and keeps the previous checkpoint.
* Verified on load: a torch checkpoint is a zip archive whose every record carries a CRC-32 of its bytes; :func:`load`
  checks all of them before unpickling, so a truncated file or an overwritten block is refused by name instead of
  loading silently wrong tensors (torch itself does not check them).
* Safe: loading is weights-only (tensors and plain containers); a file carrying other Python objects is refused.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ila.errors import IlaError


class CheckpointError(IlaError, RuntimeError):
    """A checkpoint could not be written or read; the message names the file and what to do."""

    kind = "checkpoint error"


def evaluated_weights(state: dict[str, Any]) -> dict[str, Any]:
    """The weights a training's results are measured on: the averaged ones (``train.ema_decay``) when the run kept
    an average, else the last step's."""
    return state["ema"] if state.get("ema") is not None else state["model"]


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(_plain_to_numpy_state(state["numpy"]))
    random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(st) -> dict[str, Any]:
    # weights_only loading accepts tensors and plain containers, not numpy arrays.
    return {"name": st[0], "keys": torch.from_numpy(st[1].astype(np.int64)), "pos": int(st[2]),
            "has_gauss": int(st[3]), "gauss": float(st[4])}


def _plain_to_numpy_state(d: dict[str, Any]):
    return (d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["gauss"])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        # Measured before the partial file is removed: that is what the write ran into.
        free = shutil.disk_usage(path.parent).free
        tmp.unlink(missing_ok=True)
        if _out_of_space(exc, free):
            kept = f"the previous checkpoint {path} is kept" if path.exists() else "no earlier checkpoint exists"
            raise CheckpointError(
                f"no space left on device while writing checkpoint {path} ({free / 2**20:.0f} MiB free there); "
                f"the partial file was removed and {kept}: free some space and run the same command again to resume"
            ) from exc
        raise
    os.replace(tmp, path)


LOW_SPACE_BYTES = 64 * 2**20  # free space under which a failed write is put down to the disk


def _out_of_space(exc: BaseException, free_bytes: int) -> bool:
    """A failed checkpoint write that was the disk's doing. A write that fails outright raises ENOSPC; when the disk
    fills in the middle of torch's zip writer, torch reports only ``unexpected pos`` (seen on a full disk here), so
    an almost-full device at the moment of failure counts too."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(exc, (OSError, RuntimeError)) and free_bytes < LOW_SPACE_BYTES


def verify(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless every record of the checkpoint matches its stored CRC-32."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a complete checkpoint ({exc}); it may be truncated") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint: record {bad!r} does not match its stored checksum")


def load(path: str | Path, map_location: str | torch.device = "cpu", what_to_do: str = "") -> dict[str, Any]:
    """Verify, then load a checkpoint weights-only; errors say which file and ``what_to_do`` about it."""
    path = Path(path)
    hint = f" ({what_to_do})" if what_to_do else ""
    try:
        verify(path)
        return torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{hint}") from None
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects other than tensors and plain containers, and loading "
            f"it could run arbitrary code ({first}). Only load checkpoints written by this suite{hint}"
        ) from None
