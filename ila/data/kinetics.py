"""Kinetics-400 from the CVDF mirror (cvdfoundation/kinetics-dataset): download, extract, list.

The mirror publishes, under one base URL (default :data:`K400_BASE_URL`):

* ``<split>/k400_<split>_path.txt`` — one tarball URL per line (``…/<split>/part_N.tar.gz``: 242 train, 20 val,
  39 test parts; ~436 GB in all). Only each line's file name is used: the tarballs are fetched from
  ``<base>/<split>/`` so that a mirror with the same layout works by changing the base URL.
* ``annotations/<split>.csv`` — header ``label,youtube_id,time_start,time_end,split[,is_cc]``, labels quoted where
  they have spaces. A clip's file is ``<youtube_id>_<time_start:06d>_<time_end:06d>.mp4``, flat in the tarballs.
* ``replacement_for_corrupted_k400.tgz`` — ~1,400 re-encoded clips for files corrupted in the tarballs (all of them
  train clips when this was written); each replaces the clip of the same name, or of the same YouTube id, in
  whichever split lists it.

Class ids are the label names sorted as Python sorts strings, which is the order of X-CLIP's and the ILA release's
``kinetics_400_labels.csv`` (``0 abseiling`` … ``208 passing American football (in game)`` …). Sorting folder names
with the punctuation removed instead swaps two classes (the skiing ones), so the raw CSV strings are sorted.
"""

from __future__ import annotations

import csv
import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from ila.data.annotations import ClassInfo
from ila.data.class_groups import kinetics400_group
from ila.data.download import RemoteFile, fetch_all, quarantine
from ila.data.prepare import ARCHIVE_ERRORS, DataPrepError, extract_videos, resolve_split, write_prepared

log = logging.getLogger(__name__)

K400_BASE_URL = "https://s3.amazonaws.com/kinetics/400"
K400_REPLACEMENT = "replacement_for_corrupted_k400.tgz"
CSV_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def path_list_name(split: str) -> str:
    return f"k400_{split}_path.txt"


def downloads_dir(root: Path, split: str) -> Path:
    return Path(root) / "downloads" / split


def video_name(youtube_id: str, start: str | float, end: str | float) -> str:
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}.mp4"


def read_path_list(path: Path) -> list[str]:
    """The tarball file names of a ``k400_<split>_path.txt``."""
    names = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        name = Path(urlparse(text).path).name
        if not name.endswith((".tar.gz", ".tgz")):
            raise DataPrepError(f"{path}:{line_no}: expected the URL of a .tar.gz part, got {text!r}")
        names.append(name)
    if not names:
        raise DataPrepError(f"{path}: lists no tarball")
    return names


def read_csv(path: Path) -> list[tuple[str, str]]:
    """``(label, video file name)`` per row of an annotation CSV."""
    if not path.is_file():
        raise DataPrepError(f"{path}: annotation CSV not found (it is downloaded with its split)")
    rows = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataPrepError(f"{path}:1: expected columns {list(CSV_COLUMNS)}, missing {missing} "
                                f"(header: {reader.fieldnames})")
        for line_no, row in enumerate(reader, start=2):
            try:
                name = video_name(row["youtube_id"].strip(), row["time_start"], row["time_end"])
            except (TypeError, ValueError):
                raise DataPrepError(f"{path}:{line_no}: expected numeric time_start/time_end, got "
                                    f"{row['time_start']!r}, {row['time_end']!r}") from None
            label = (row["label"] or "").strip()
            if not label:
                raise DataPrepError(f"{path}:{line_no}: empty label")
            rows.append((label, name))
    return rows


def download_split(root: Path, split: str, base_url: str = K400_BASE_URL, **fetch_options) -> int:
    """Fetch a split's path list, annotation CSV and tarballs into ``downloads/<split>/``; returns the part count."""
    base = base_url.rstrip("/")
    target = downloads_dir(root, split)
    fetch_all([RemoteFile(f"{base}/{split}/{path_list_name(split)}", path_list_name(split)),
               RemoteFile(f"{base}/annotations/{split}.csv", f"{split}.csv")], target,
              **{**fetch_options, "jobs": 2})
    parts = read_path_list(target / path_list_name(split))
    fetch_all([RemoteFile(f"{base}/{split}/{name}", name) for name in parts], target, **fetch_options)
    return len(parts)


def download_replacement(root: Path, base_url: str = K400_BASE_URL, **fetch_options) -> None:
    fetch_all([RemoteFile(f"{base_url.rstrip('/')}/{K400_REPLACEMENT}", K400_REPLACEMENT)],
              Path(root) / "downloads" / "replacement", **fetch_options)


def _extract_part(args: tuple[str, str]) -> tuple[str, int | str]:
    archive, out = args
    try:
        return Path(archive).name, extract_videos(archive, out)
    except ARCHIVE_ERRORS as exc:
        return Path(archive).name, f"{type(exc).__name__}: {exc}"


def extract_split(root: Path, split: str, workers: int = 1, replacement: bool = True) -> dict:
    """Extract a split's tarballs into ``videos/<split>/`` (one marker per part, so a rerun skips done parts), then
    copy the replacement clips over the corrupted ones. A tarball that does not extract is moved aside and dropped
    from the manifest after the other parts are done; the error names it and a rerun downloads it again."""
    root = Path(root)
    source = downloads_dir(root, split)
    out = root / "videos" / split
    markers = root / "videos" / f".{split}-parts"
    markers.mkdir(parents=True, exist_ok=True)
    parts = read_path_list(source / path_list_name(split))
    todo = [(str(source / p), str(out)) for p in parts if not (markers / f"{p}.done").exists()]
    log.info("%s: %d parts, %d already extracted", out, len(parts), len(parts) - len(todo))
    bad = {}
    extracted = 0
    with ProcessPoolExecutor(max(1, workers)) as pool:
        for name, result in pool.map(_extract_part, todo):
            if isinstance(result, str):
                bad[name] = result
                continue
            (markers / f"{name}.done").touch()
            extracted += result
            log.info("%s: %d videos", name, result)
    if bad:
        moved = [f"{quarantine(source, name)} ({why})" for name, why in sorted(bad.items())]
        raise DataPrepError(f"{len(bad)} of {len(parts)} {split} tarball(s) do not extract (damaged in transfer or "
                            "on the server); moved aside, rerun to download them again:\n  " + "\n  ".join(moved))
    replaced = apply_replacements(root, split) if replacement else 0
    return {"parts": len(parts), "videos_extracted_now": extracted, "replaced": replaced}


def apply_replacements(root: Path, split: str) -> int:
    """Copy each clip of the replacement tarball over the split's clip of the same file name (or, failing that, the
    split's only clip of the same YouTube id). Returns how many were replaced."""
    from filelock import FileLock

    root = Path(root)
    archive = root / "downloads" / "replacement" / K400_REPLACEMENT
    unpacked = root / "videos" / "replacement"
    marker = root / "videos" / ".replacement.done"
    # The train and val jobs may get here at once: one unpacks, the other waits for it.
    with FileLock(str(root / "videos" / ".replacement.lock")):
        if not marker.exists():
            if not archive.is_file():
                raise DataPrepError(f"{archive}: replacement tarball not found (the k400_download job with split "
                                    "'replacement' fetches it; or set dataset.replacement: false)")
            try:
                extract_videos(archive, unpacked)
            except ARCHIVE_ERRORS as exc:
                moved = quarantine(archive.parent, archive.name)
                raise DataPrepError(f"{archive}: does not extract ({exc}); moved aside to {moved}, rerun to "
                                    "download it again") from None
            marker.touch()
    wanted = [name for _, name in read_csv(downloads_dir(root, split) / f"{split}.csv")]
    by_name = set(wanted)
    by_id: dict[str, list[str]] = {}
    for name in wanted:
        by_id.setdefault(name[:11], []).append(name)
    replaced = 0
    for clip in sorted(unpacked.iterdir()):
        target = clip.name if clip.name in by_name else None
        if target is None and len(by_id.get(clip.name[:11], [])) == 1:
            target = by_id[clip.name[:11]][0]
        if target:
            shutil.copyfile(clip, root / "videos" / split / target)
            replaced += 1
    log.info("%s: %d clips replaced from %s", split, replaced, archive.name)
    return replaced


def build_lists(root: Path, video_dir: str = "videos", preprocessed: bool = False,
                splits: dict[str, str] | None = None) -> dict:
    """``labels.csv`` (classes of the train CSV, sorted) and one list per split (default ``train.txt`` from train,
    ``val.txt`` from val) pointing into ``<video_dir>/<split>/``; missing and undecodable clips are counted."""
    root = Path(root)
    splits = splits or {"train": "train", "val": "val"}
    annotations = {name: read_csv(downloads_dir(root, split) / f"{split}.csv") for name, split in splits.items()}
    names = sorted({label for label, _ in annotations.get("train") or next(iter(annotations.values()))})
    ids = {name: i for i, name in enumerate(names)}
    lists, counts = {}, {}
    for list_name, split in splits.items():
        for label, clip in annotations[list_name]:
            if label not in ids:
                raise DataPrepError(f"{downloads_dir(root, split) / f'{split}.csv'}: label {label!r} of {clip} is "
                                    f"not a class of the training CSV ({len(names)} classes)")
        entries = [(clip, ids[label]) for label, clip in annotations[list_name]]
        lists[list_name], counts[list_name] = resolve_split(root, entries, video_dir, split, preprocessed)
    # The group column: Table 13's temporal and static classes (ila.data.class_groups).
    classes = [ClassInfo(id=i, name=name, group=kinetics400_group(name)) for i, name in enumerate(names)]
    return write_prepared(root, classes, lists, counts, {"dataset": "kinetics400", "videos": video_dir})
