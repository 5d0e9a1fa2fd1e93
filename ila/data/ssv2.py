"""Something-Something-v2 from the files a user downloaded (an account is needed, so nothing is fetched here).

What the download page (https://www.qualcomm.com/developer/software/something-something-v-2-dataset/downloads)
gives, to be put in ``<root>/downloads/``:

* the videos: one gzip'd tar split into parts ``20bn-something-something-v2-00``, ``-01``, … (20 parts in the
  original release, 2 in the current one), each possibly inside a zip wrapper ``20bn-something-something-v2-NN.zip``.
  Joined in order they hold ``20bn-something-something-v2/<id>.webm`` (VP9, 220,847 clips).
* the labels package (``20bn-something-something-download-package-labels.zip``, unzipped): ``labels.json``,
  ``train.json``, ``validation.json`` — or the original names ``something-something-v2-labels.json``,
  ``-train.json``, ``-validation.json``; either set, at the top level of ``downloads/`` or in ``downloads/labels/``.

``labels.json`` maps a template to its class id (a string); an annotation's class is its ``template`` with the
brackets removed (``"Putting [something] on [something]"`` -> ``"Putting something on something"``).
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from pathlib import Path

from ila.data.annotations import ClassInfo
from ila.data.prepare import ARCHIVE_ERRORS, DataPrepError, extract_videos, resolve_split, write_prepared

log = logging.getLogger(__name__)

DOWNLOAD_PAGE = "https://www.qualcomm.com/developer/software/something-something-v-2-dataset/downloads"
PART_PATTERN = re.compile(r"^20bn-something-something-v2-(\d\d)(\.zip)?$")
LABEL_FILES = {
    "labels": ("labels.json", "something-something-v2-labels.json"),
    "train": ("train.json", "something-something-v2-train.json"),
    "validation": ("validation.json", "something-something-v2-validation.json"),
}
SPLIT_DIR = "all"  # SSv2 clips are not split by directory: one flat folder, videos/all/


class MissingUserFilesError(DataPrepError):
    """The user-provided download is not where the workflow expects it."""


def downloads_dir(root: Path) -> Path:
    return Path(root) / "downloads"


def find_parts(downloads: Path) -> list[Path]:
    """The video parts in order, raw or zipped (a raw part wins over its zip)."""
    found: dict[int, Path] = {}
    for path in sorted(downloads.iterdir()) if downloads.is_dir() else []:
        match = PART_PATTERN.match(path.name)
        if match and path.is_file() and (int(match.group(1)) not in found or not match.group(2)):
            found[int(match.group(1))] = path
    return [found[i] for i in sorted(found)]


def find_label_files(downloads: Path) -> dict[str, Path]:
    found = {}
    for key, names in LABEL_FILES.items():
        for folder in (downloads, downloads / "labels"):
            hit = next((folder / n for n in names if (folder / n).is_file()), None)
            if hit:
                found[key] = hit
                break
    return found


def missing_message(root: Path, parts: list[Path], labels: dict[str, Path]) -> str | None:
    """What is missing from ``downloads/`` and exactly what to download; None when everything is there."""
    downloads = downloads_dir(root).resolve()
    problems = []
    numbers = [int(PART_PATTERN.match(p.name).group(1)) for p in parts]
    if not parts:
        problems.append("the video parts 20bn-something-something-v2-00, -01, … (or their .zip wrappers)")
    elif numbers != list(range(len(numbers))):
        gaps = sorted(set(range(max(numbers) + 1)) - set(numbers))
        problems.append(f"video parts {', '.join(f'{n:02d}' for n in gaps)} are missing (found {len(parts)})")
    for key, names in LABEL_FILES.items():
        if key not in labels:
            problems.append(f"the label file {names[0]} (or {names[1]})")
    if not problems:
        return None
    return (
        f"Something-Something-v2 is not in {downloads}/. Missing: " + "; ".join(problems) + ".\n"
        "It needs an account, so the workflow cannot fetch it. Sign in at\n"
        f"  {DOWNLOAD_PAGE}\n"
        "download every video part ('20bn-something-something-v2-00', '-01', … or the zip files wrapping them) and "
        "the labels package ('20bn-something-something-download-package-labels.zip'), and put them in\n"
        f"  {downloads}/\n"
        "(video parts as downloaded, zipped or not; the labels zip unzipped there, giving labels/labels.json, "
        "labels/train.json, labels/validation.json). Then rerun the same snakemake command."
    )


class _JoinedParts(io.RawIOBase):
    """The parts read one after another as one stream (what ``cat part-?? |`` does), zip wrappers opened in place."""

    def __init__(self, parts: list[Path]):
        self.parts = list(parts)
        self.current = None
        self.zip = None

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        self._close_current()
        if not self.parts:
            return False
        part = self.parts.pop(0)
        if part.suffix == ".zip":
            self.zip = zipfile.ZipFile(part)
            members = [m for m in self.zip.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise DataPrepError(f"{part}: expected one video part inside the zip, found "
                                    f"{[m.filename for m in members]}")
            self.current = self.zip.open(members[0])
        else:
            self.current = part.open("rb")
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self.current is None and not self._next():
                return 0
            n = self.current.readinto(buffer)
            if n:
                return n
            self.current = self._close_current()

    def _close_current(self):
        for handle in (self.current, self.zip):
            if handle is not None:
                handle.close()
        self.current = self.zip = None
        return None

    def close(self) -> None:
        self._close_current()
        super().close()


def check_downloads(root: Path) -> list[Path]:
    """The video parts, in order; raises :class:`MissingUserFilesError` saying what to get from where if any file
    is missing."""
    parts = find_parts(downloads_dir(root))
    message = missing_message(Path(root), parts, find_label_files(downloads_dir(root)))
    if message:
        raise MissingUserFilesError(message)
    return parts


def extract(root: Path) -> int:
    """Check the user's files and extract the clips into ``videos/all/``. Returns the number of clips."""
    root = Path(root)
    parts = check_downloads(root)
    log.info("extracting %d parts: %s", len(parts), ", ".join(p.name for p in parts))
    stream = io.BufferedReader(_JoinedParts(parts), buffer_size=1 << 20)
    try:
        with stream:
            count = extract_videos(stream, root / "videos" / SPLIT_DIR, mode="r|gz")
    except ARCHIVE_ERRORS as exc:
        raise DataPrepError(f"the video parts in {downloads_dir(root)} do not form a valid .tar.gz ({exc}): a part "
                            "is damaged or incomplete; compare their sizes with the download page and download the "
                            f"bad one again ({', '.join(p.name for p in parts)})") from None
    log.info("%d clips in %s", count, root / "videos" / SPLIT_DIR)
    return count


def template_class(template: str) -> str:
    return template.replace("[", "").replace("]", "")


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataPrepError(f"{path}: not valid JSON ({exc})") from None


def build_lists(root: Path, video_dir: str = "videos", preprocessed: bool = False) -> dict:
    """``labels.csv`` (the 174 templates in the order of their ids), ``train.txt`` and ``val.txt`` (validation)."""
    root = Path(root)
    files = find_label_files(downloads_dir(root))
    if len(files) < len(LABEL_FILES):  # the lists need only the label files (the video parts may be gone by now)
        raise MissingUserFilesError(missing_message(root, [Path("20bn-something-something-v2-00")], files))
    mapping = _load_json(files["labels"])
    try:
        ids = {name: int(cid) for name, cid in mapping.items()}
    except (AttributeError, TypeError, ValueError):
        raise DataPrepError(f"{files['labels']}: expected a mapping of template -> class id") from None
    if sorted(ids.values()) != list(range(len(ids))):
        raise DataPrepError(f"{files['labels']}: class ids must be 0..{len(ids) - 1}, each once")
    lists, counts = {}, {}
    for list_name, key in (("train", "train"), ("val", "validation")):
        entries = []
        for i, item in enumerate(_load_json(files[key])):
            if not isinstance(item, dict) or "id" not in item or "template" not in item:
                raise DataPrepError(f"{files[key]}: entry {i}: expected an object with 'id' and 'template', got "
                                    f"{item!r:.120}")
            template = template_class(item["template"])
            if template not in ids:
                raise DataPrepError(f"{files[key]}: entry {i} (video {item['id']}): template {template!r} is not in "
                                    f"{files['labels'].name}")
            entries.append((f"{item['id']}.webm", ids[template]))
        lists[list_name], counts[list_name] = resolve_split(root, entries, video_dir, SPLIT_DIR, preprocessed)
    classes = [ClassInfo(id=cid, name=name) for name, cid in sorted(ids.items(), key=lambda kv: kv[1])]
    return write_prepared(root, classes, lists, counts, {"dataset": "ssv2", "videos": video_dir})
