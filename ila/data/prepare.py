"""What preparing any real dataset shares: safe archive extraction, and turning annotations into the suite's lists
while counting (never silently dropping) the videos that are listed but not usable.

Layout under a dataset root (``data/kinetics400`` …)::

    downloads/<split>/          what was fetched (+ manifest.json); SSv2: the user's files
    videos/<split>/             extracted videos, flat (one directory per split)
    videos_s<N>/<split>/        the same re-encoded to short side N (ila.data.preprocess), when the profile asks
    train.txt val.txt labels.csv   the suite's annotation files (ila.data.annotations), paths relative to the root
    prepare_report.json         per split: listed, written, missing, undecodable, examples of each
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ila.data.annotations import ClassInfo, write_labels, write_video_list
from ila.data.preprocess import VIDEO_SUFFIXES, output_name, report_path
from ila.errors import IlaError
from ila.paths import write_json

log = logging.getLogger(__name__)

# What a damaged or truncated archive raises while it is read (SSv2's zip wrappers included). Other OSErrors (a full
# disk, permissions) are not the archive's fault and pass through as they are.
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile)


class DataPrepError(IlaError, RuntimeError):
    """Preparing a dataset failed; the message names the file and what to do."""

    kind = "data preparation error"


def extract_videos(archive: str | Path | IO[bytes], out_dir: str | Path, mode: str = "r:*") -> int:
    """Extract the video files of a tar archive (a path, or a stream with ``mode='r|*'``) into ``out_dir``, flat:
    only the file name is kept, so no member can write outside ``out_dir``. Each file is written to a temporary
    name and renamed, so an interrupted extraction never leaves a truncated video. Returns the number extracted."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    opener = tarfile.open(fileobj=archive, mode=mode) if hasattr(archive, "read") else tarfile.open(archive, mode)
    with opener as tar:
        for member in tar:
            name = Path(member.name).name
            if not member.isfile() or Path(name).suffix.lower() not in VIDEO_SUFFIXES or name.startswith("."):
                continue
            source = tar.extractfile(member)
            tmp = out_dir / f".{name}.partial"
            try:
                with tmp.open("wb") as fh:
                    shutil.copyfileobj(source, fh, 1 << 20)
                os.replace(tmp, out_dir / name)
            finally:
                tmp.unlink(missing_ok=True)
            count += 1
    return count


def video_file(video_dir: str, split_dir: str, name: str, preprocessed: bool) -> str:
    """The path (relative to the root) a listed video has in the directory the lists point at."""
    return f"{video_dir}/{split_dir}/{output_name(name) if preprocessed else name}"


def resolve_split(
    root: Path,
    entries: Iterable[tuple[str, int]],
    video_dir: str,
    split_dir: str,
    preprocessed: bool,
) -> tuple[list[tuple[str, int]], dict]:
    """Keep the listed videos that exist; count the others as *missing* (never extracted: absent from the download)
    or *undecodable* (extracted but skipped by the preprocessing, which names them in its report)."""
    undecodable_names: dict[str, str] = {}
    if preprocessed:
        report = report_path(root / video_dir / split_dir)
        if report.is_file():
            undecodable_names = json.loads(report.read_text()).get("undecodable", {})
    kept: list[tuple[str, int]] = []
    missing: list[str] = []
    undecodable: list[str] = []
    listed = 0
    for name, label in entries:
        listed += 1
        rel = video_file(video_dir, split_dir, name, preprocessed)
        if (root / rel).is_file():
            kept.append((rel, label))
        elif name in undecodable_names:
            undecodable.append(name)
        else:
            missing.append(name)
    counts = {
        "listed": listed,
        "written": len(kept),
        "missing": len(missing),
        "undecodable": len(undecodable),
        "missing_examples": missing[:20],
        "undecodable_examples": {n: undecodable_names[n] for n in undecodable[:20]},
    }
    return kept, counts


def write_prepared(root: Path, classes: list[ClassInfo], lists: dict[str, list[tuple[str, int]]],
                   counts: dict[str, dict], source: dict) -> dict:
    """Write ``labels.csv``, ``<list>.txt`` per split and ``prepare_report.json``; lists last, so a root with lists
    is complete. Logs one line per split with the counts."""
    for split, entries in lists.items():
        if not entries:
            raise DataPrepError(f"{root}: no video of the {split} split was found on disk "
                                f"({counts[split]['listed']} listed, e.g. {counts[split]['missing_examples'][:3]})")
    report = {"source": source, "classes": len(classes), "splits": counts}
    write_json(report, root / "prepare_report.json")
    write_labels(root / "labels.csv", classes)
    for split, entries in lists.items():
        write_video_list(root / f"{split}.txt", entries)
        c = counts[split]
        share = 100.0 * (c["missing"] + c["undecodable"]) / max(c["listed"], 1)
        log.info("%s.txt: %d of %d listed videos (%d missing on disk, %d undecodable: %.1f%%); details in %s",
                 split, c["written"], c["listed"], c["missing"], c["undecodable"], share,
                 root / "prepare_report.json")
    return report
