"""Resumable, verified, parallel downloads of dataset files, with a manifest that later runs verify against.

Why each piece is there:

* A file is written to ``<name>.part`` and renamed only once its size equals the server's ``Content-Length``, so a
  partial file is never taken for a complete one. An interrupted transfer keeps its ``.part``; the next attempt (a
  retry, or a rerun after a crash) asks for the rest with an HTTP ``Range`` request, guarded by ``If-Range`` so that
  a file changed on the server in between is fetched whole instead of spliced.
* The Kinetics-400 mirror publishes no checksums. The manifest (``manifest.json`` beside the files) records each
  file's size and sha256 when it is first downloaded, so later runs can check that nothing changed on disk
  (``verify="sha256"``) without the network.
* A file that fails verification is named in the log, moved aside to ``<name>.corrupt`` (kept for inspection), dropped
  from the manifest and fetched again; a download that fails for good is named in the error after every other file
  has been fetched, and a rerun resumes it and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests
from tqdm import tqdm

from ila.errors import IlaError
from ila.paths import write_json
from ila.progress import progress_bar

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Network reads: what was received before a dropped connection is written up to the last whole read, so small reads
# lose little of an interrupted transfer.
NET_CHUNK = 1 << 16
# Server answers worth another try: timeouts, throttling and server-side failures. Others (404, 403) are final.
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(IlaError, RuntimeError):
    """A file could not be fetched; the message names the URL and what happened."""

    kind = "download error"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str  # file name under the download directory


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class Manifest:
    """``manifest.json``: per file name its URL, size, sha256 and when it was downloaded. Thread-safe; every update
    is written atomically, so a crash never leaves a half-written manifest."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())["files"]
            except (ValueError, KeyError, TypeError) as exc:
                raise DownloadError(f"{self.path}: not a download manifest ({exc}); move it away to start over") \
                    from None

    def get(self, name: str) -> dict | None:
        with self._lock:
            return self.entries.get(name)

    def record(self, name: str, entry: dict | None) -> None:
        with self._lock:
            if entry is None:
                self.entries.pop(name, None)
            else:
                self.entries[name] = entry
            write_json({"files": dict(sorted(self.entries.items()))}, self.path)


# Byte-exact transfers: a server may otherwise gzip the body, which breaks both the size check and Range offsets.
HEADERS = {"Accept-Encoding": "identity"}
_BAR_LOCK = threading.Lock()


def remote_size(session: requests.Session, url: str, timeout: float) -> int | None:
    """The server's size of ``url`` (HEAD, else a one-byte ranged GET), or None when it does not say."""
    try:
        response = session.head(url, headers=HEADERS, allow_redirects=True, timeout=timeout)
        if response.status_code == 404:
            raise DownloadError(f"{url}: not found on the server (HTTP 404)")
        if response.ok and response.headers.get("Content-Length"):
            return int(response.headers["Content-Length"])
        with session.get(url, headers={**HEADERS, "Range": "bytes=0-0"}, stream=True, timeout=timeout) as response:
            return _total_of(response)
    except requests.RequestException:
        return None  # the download itself will retry and report


def _total_of(response: requests.Response) -> int | None:
    """The full size from a ``Content-Range: bytes a-b/N`` or ``bytes */N`` header."""
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def download_file(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    session: requests.Session | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: tqdm | None = None,
    overall: tqdm | None = None,
) -> int:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` if present; returns the size (the server's, asked for when
    ``size`` is None). Raises :class:`DownloadError` after ``retries`` failed attempts (the ``.part`` stays)."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    size = size if size is not None else remote_size(session, url, timeout)
    if part.exists():
        _advance(progress, overall, part.stat().st_size)
    last_error = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:  # a different file than the server's now: start over
            _advance(progress, overall, -have)
            part.unlink()
            have = 0
        if size is not None and have == size:
            break
        try:
            size = _fetch_into(session, url, part, have, size, timeout, progress, overall)
        except _FinalHTTPError as exc:
            raise DownloadError(str(exc)) from None
        except (requests.RequestException, OSError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s: attempt %d/%d failed (%s); retrying", url, attempt + 1, retries + 1, last_error)
            continue
        got = part.stat().st_size if part.exists() else 0
        if size is None:  # the server never said: a body that ended without an error is taken as the whole file
            size = got
        if got == size:
            break
        last_error = f"the transfer ended at {got} of {size} bytes"
        log.warning("%s: attempt %d/%d: %s; resuming", url, attempt + 1, retries + 1, last_error)
    else:
        raise DownloadError(
            f"{url}: gave up after {retries + 1} attempts ({last_error}); the partial file {part} is kept and "
            "rerunning resumes it"
        )
    os.replace(part, dest)
    _validator_path(part).unlink(missing_ok=True)
    return size


class _FinalHTTPError(Exception):
    pass


def _fetch_into(session, url, part: Path, have: int, size: int | None, timeout, progress, overall) -> int | None:
    """One GET of the bytes from ``have`` on, appended to ``part``; returns the file's size as now known.

    A resumed GET carries ``If-Range`` with the validator (ETag, else Last-Modified) the part was started under: if
    the server's file changed since, it answers with the whole new file instead of splicing new bytes onto old ones.
    """
    validator = _validator_path(part)
    headers = dict(HEADERS)
    if have:
        headers["Range"] = f"bytes={have}-"
        if validator.is_file():
            headers["If-Range"] = validator.read_text()
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416:
            # Nothing from ``have`` on: the part is complete only if the server's size says so. A part of unknown
            # size that the server refuses to extend cannot be checked: start over.
            total = _total_of(response) or size
            if total is None or have > total:
                _advance(progress, overall, -have)
                part.unlink()
            return total
        if response.status_code in RETRYABLE_STATUS:
            raise requests.HTTPError(f"HTTP {response.status_code}")
        if not response.ok:
            raise _FinalHTTPError(f"{url}: HTTP {response.status_code} {response.reason}")
        resumed = bool(have) and response.status_code == 206
        if resumed:
            size = _total_of(response) or size
        else:
            if have:  # the server ignored the Range header, or its file changed: it sends the whole file
                _advance(progress, overall, -have)
            if response.headers.get("Content-Length"):
                size = int(response.headers["Content-Length"])
            tag = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if tag:
                validator.write_text(tag)
            else:
                validator.unlink(missing_ok=True)
        with part.open("ab" if resumed else "wb") as fh:
            for block in response.iter_content(NET_CHUNK):
                fh.write(block)
                _advance(progress, overall, len(block))
    return size


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _advance(progress: tqdm | None, overall: tqdm | None, n: int) -> None:
    with _BAR_LOCK:  # the overall bar is shared by the download threads
        for bar in (progress, overall):
            if bar is not None:
                bar.update(n)


def _pooled_session(connections: int) -> requests.Session:
    """One HTTP session for every download thread, with a connection per thread."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch_all(
    files: list[RemoteFile],
    directory: str | Path,
    *,
    jobs: int = 4,
    verify: str = "size",
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> Manifest:
    """Fetch ``files`` into ``directory`` (``jobs`` at a time), recording each in ``directory/manifest.json``.

    A file already on disk and in the manifest is checked (``verify="size"``: its size; ``"sha256"``: its hash too)
    instead of downloaded again; one copied in by hand is checked against the server's size and recorded. Failures
    are collected while the other files go on; then one error names them all.
    """
    if verify not in ("size", "sha256"):
        raise ValueError(f"verify must be 'size' or 'sha256', got {verify!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(directory / "manifest.json")
    session = _pooled_session(max(jobs, 1))
    failed: list[str] = []
    todo = _still_to_fetch(files, directory, manifest, verify)
    overall = progress_bar(total=0, unit="B", unit_scale=True, desc=f"{directory.name}: {len(todo)} to fetch",
                   disable=progress is False)
    slots = list(range(max(jobs, 1)))
    slot_lock = threading.Lock()

    def work(f: RemoteFile) -> str | None:
        dest = directory / f.name
        with slot_lock:
            slot = slots.pop(0)
        try:
            size = remote_size(session, f.url, timeout)
            with progress_bar(total=size, unit="B", unit_scale=True, desc=f.name, position=slot + 1, leave=False,
                      disable=progress is False) as bar:
                if size:
                    with _BAR_LOCK:
                        overall.total += size
                        overall.refresh()
                download_file(f.url, dest, size=size, session=session, retries=retries, backoff=backoff,
                              timeout=timeout, progress=bar, overall=overall)
            _record(manifest, f, dest)
            log.info("%s: %d bytes, recorded in %s", dest, dest.stat().st_size, manifest.path)
            return None
        except DownloadError as exc:
            return str(exc)
        finally:
            with slot_lock:
                slots.append(slot)
                slots.sort()

    with overall, ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for future in as_completed([pool.submit(work, f) for f in todo]):
            if future.result():
                failed.append(future.result())
    if failed:
        raise DownloadError(f"{len(failed)} of {len(files)} file(s) not downloaded into {directory}; rerun to "
                            "resume them:\n  " + "\n  ".join(sorted(failed)))
    return manifest


def _still_to_fetch(files: list[RemoteFile], directory: Path, manifest: Manifest, verify: str) -> list[RemoteFile]:
    """The files that need downloading: not on disk, failing verification (moved aside), or never recorded."""
    todo = []
    for f in files:
        dest = directory / f.name
        entry = manifest.get(f.name)
        if dest.is_file() and entry:
            problem = _verify(dest, entry, verify)
            if problem is None:
                continue
            bad = _quarantine(dest, manifest, f.name)
            log.warning("%s failed verification (%s): moved aside to %s and downloaded again", dest, problem, bad)
        elif dest.is_file():
            # Copied in by hand, never recorded: continued as a partial download, so that the server's size (and
            # the rest of the bytes, if it is short) decide whether it is complete.
            os.replace(dest, dest.with_name(dest.name + ".part"))
            log.info("%s is not in %s: checked against the server before it is recorded", dest, manifest.path)
        todo.append(f)
    return todo


def _record(manifest: Manifest, f: RemoteFile, dest: Path) -> None:
    manifest.record(f.name, {
        "url": f.url,
        "size": dest.stat().st_size,
        "sha256": sha256_of(dest),
        "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


def _verify(path: Path, entry: dict, verify: str) -> str | None:
    size = path.stat().st_size
    if entry.get("size") is not None and size != entry["size"]:
        return f"{size} bytes on disk, the manifest recorded {entry.get('size')}"
    if verify == "sha256":
        digest = sha256_of(path)
        if digest != entry.get("sha256"):
            return f"sha256 {digest} differs from the manifest's {entry.get('sha256')}"
    return None


def _quarantine(path: Path, manifest: Manifest, name: str) -> Path:
    bad = path.with_name(path.name + ".corrupt")
    if path.exists():
        os.replace(path, bad)
    manifest.record(name, None)
    return bad


def quarantine(directory: str | Path, name: str) -> Path:
    """Move a downloaded file that turned out to be unusable (e.g. a tarball that does not extract) aside and drop it
    from its directory's manifest, so the next run downloads it again. Returns the new path."""
    directory = Path(directory)
    return _quarantine(directory / name, Manifest(directory / "manifest.json"), name)
