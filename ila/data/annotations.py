"""Annotation files in the Kinetics-400 format used by X-CLIP and the ILA release.

* Video list (``train.txt``, ``val.txt``): one video per line, ``<path relative to the dataset root> <label id>``,
  separated by whitespace (the path may itself contain spaces: the label is the last field).
* Labels (``labels.csv``): a header ``id,name`` and one row per class, ids ``0..N-1`` in order. Optional columns:
  ``group`` (e.g. ``temporal`` / ``static``, for per-group accuracy), ``twin`` (the id of the class whose clips are
  this class's clips reversed in time) and ``flip_to`` (the id a horizontally flipped clip belongs to).
  The real Kinetics-400 file (``id,name``) reads unchanged.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ila.errors import IlaError


class AnnotationError(IlaError, ValueError):
    """A malformed annotation file; the message names ``file:line`` and what was expected."""

    kind = "annotation error"


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    group: str = ""
    twin: int | None = None
    flip_to: int | None = None


@dataclass(frozen=True)
class VideoRecord:
    path: Path
    label: int


LABEL_COLUMNS = ("id", "name", "group", "twin", "flip_to")


def read_labels(path: str | Path) -> list[ClassInfo]:
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: labels file not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if "id" not in header or "name" not in header:
            raise AnnotationError(f"{path}:1: expected a header with columns 'id,name', got {header}")
        extra = [c for c in header if c not in LABEL_COLUMNS]
        if extra:
            raise AnnotationError(f"{path}:1: unknown columns {extra}; expected a subset of {list(LABEL_COLUMNS)}")
        rows = list(reader)
    classes: list[ClassInfo] = []
    for i, row in enumerate(rows):
        line = i + 2
        try:
            cid = int(row["id"])
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}:{line}: expected an integer class id, got {row['id']!r}") from None
        if cid != i:
            raise AnnotationError(f"{path}:{line}: expected class id {i} (ids must be 0..N-1 in order), got {cid}")
        name = (row.get("name") or "").strip()
        if not name:
            raise AnnotationError(f"{path}:{line}: expected a non-empty class name")
        classes.append(
            ClassInfo(
                id=cid,
                name=name,
                group=(row.get("group") or "").strip(),
                twin=_optional_id(row.get("twin"), path, line, "twin"),
                flip_to=_optional_id(row.get("flip_to"), path, line, "flip_to"),
            )
        )
    if not classes:
        raise AnnotationError(f"{path}: expected at least one class")
    n = len(classes)
    for c in classes:
        for key in ("twin", "flip_to"):
            ref = getattr(c, key)
            if ref is not None and not 0 <= ref < n:
                raise AnnotationError(f"{path}:{c.id + 2}: {key} {ref} is not a class id in 0..{n - 1}")
    return classes


def _optional_id(value: str | None, path: Path, line: int, key: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise AnnotationError(f"{path}:{line}: expected an integer {key} class id or empty, got {value!r}") from None


def write_labels(path: str | Path, classes: list[ClassInfo]) -> None:
    with Path(path).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(LABEL_COLUMNS)
        for c in classes:
            writer.writerow(
                [c.id, c.name, c.group, "" if c.twin is None else c.twin, "" if c.flip_to is None else c.flip_to]
            )


def read_video_list(path: str | Path, num_classes: int, root: str | Path | None = None) -> list[VideoRecord]:
    """Parse a video list; paths are resolved against ``root`` (default: the list's directory)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: video list not found")
    root = Path(root) if root is not None else path.parent
    records: list[VideoRecord] = []
    with path.open() as fh:
        for line_no, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise AnnotationError(f"{path}:{line_no}: expected '<video path> <label id>', got {text!r}")
            rel, label_text = parts
            try:
                label = int(label_text)
            except ValueError:
                raise AnnotationError(
                    f"{path}:{line_no}: expected an integer label id as the last field, got {label_text!r}"
                ) from None
            if not 0 <= label < num_classes:
                raise AnnotationError(
                    f"{path}:{line_no}: unknown label {label}; the labels file defines ids 0..{num_classes - 1}"
                )
            records.append(VideoRecord(path=root / rel, label=label))
    if not records:
        raise AnnotationError(f"{path}: expected at least one video")
    return records


def first_per_class(records: list[VideoRecord], limit: int | None) -> list[VideoRecord]:
    """The first ``limit`` records of each class, in list order (all of them for None): a subset that is the same on
    every run and every rank, and that a longer list extends rather than reshuffles."""
    if limit is None:
        return records
    taken: dict[int, int] = {}
    kept = []
    for rec in records:
        if taken.get(rec.label, 0) < limit:
            taken[rec.label] = taken.get(rec.label, 0) + 1
            kept.append(rec)
    return kept


def write_video_list(path: str | Path, entries: list[tuple[str, int]]) -> None:
    with Path(path).open("w") as fh:
        for rel, label in entries:
            fh.write(f"{rel} {label}\n")
