"""Video readers: decord by default, PyAV as the fallback.

A reader is opened per ``__getitem__`` call and closed after it: decord readers deadlock when they cross a
DataLoader fork, and one decode thread per reader keeps N workers from oversubscribing the cores.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

# torch must be imported before decord (tooling.md: decord's bundled libraries clash otherwise).
import torch  # noqa: F401


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded (truncated, empty, not a video)."""


class VideoReader(Protocol):
    path: Path

    def __len__(self) -> int: ...

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 RGB ``[T, H, W, 3]``."""
        ...


def available_backends() -> list[str]:
    names = []
    if importlib.util.find_spec("decord") is not None:
        names.append("decord")
    if importlib.util.find_spec("av") is not None:
        names.append("pyav")
    return names


def resolve_backend(name: str) -> str:
    """'auto' picks decord when it is installed, else PyAV; a named backend must be installed."""
    have = available_backends()
    if name == "auto":
        if not have:
            raise RuntimeError("no video backend installed: pip install decord (x86_64 Linux) or av")
        return have[0]
    if name not in ("decord", "pyav"):
        raise ValueError(f"unknown video reader {name!r}; expected 'auto', 'decord' or 'pyav'")
    if name not in have:
        package = "decord" if name == "decord" else "av"
        raise RuntimeError(f"video reader {name!r} requested but the '{package}' package is not installed")
    return name


def open_video(path: str | Path, backend: str = "auto") -> VideoReader:
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: file is empty (0 bytes)")
    backend = resolve_backend(backend)
    reader = DecordReader(path) if backend == "decord" else PyAVReader(path)
    if len(reader) <= 0:
        raise VideoDecodeError(f"{path}: no decodable frames")
    return reader


def _check_indices(path: Path, indices: Sequence[int], n: int) -> list[int]:
    idx = [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise IndexError(f"{path}: frame indices {bad[:5]} outside 0..{n - 1}")
    return idx


class DecordReader:
    def __init__(self, path: Path):
        import decord

        self.path = path
        try:
            self._vr = decord.VideoReader(str(path), num_threads=1, ctx=decord.cpu(0))
        except Exception as exc:  # decord raises DECORDError (a RuntimeError) or others on bad files
            raise VideoDecodeError(f"{path}: decord cannot open it: {exc}") from exc

    def __len__(self) -> int:
        return len(self._vr)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(self.path, indices, len(self))
        try:
            frames = self._vr.get_batch(idx).asnumpy()
        except Exception as exc:
            raise VideoDecodeError(f"{self.path}: decord failed to decode frames: {exc}") from exc
        if frames.shape[0] != len(idx):
            raise VideoDecodeError(f"{self.path}: decoded {frames.shape[0]} of {len(idx)} frames")
        return frames


class PyAVReader:
    """Decodes sequentially up to the last requested frame: exact frame indices, no seeking surprises."""

    def __init__(self, path: Path):
        import av

        self.path = path
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise VideoDecodeError(f"{path}: no video stream")
                n = container.streams.video[0].frames
                if n <= 0:  # container without a frame count: count by decoding
                    n = sum(1 for _ in container.decode(video=0))
        except VideoDecodeError:
            raise
        except Exception as exc:  # av.error.FFmpegError and friends
            raise VideoDecodeError(f"{path}: PyAV cannot open it: {exc}") from exc
        self._n = n

    def __len__(self) -> int:
        return self._n

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        import av

        idx = _check_indices(self.path, indices, len(self))
        wanted = set(idx)
        last = max(idx)
        found: dict[int, np.ndarray] = {}
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_count = 1
                for i, frame in enumerate(container.decode(stream)):
                    if i in wanted:
                        found[i] = frame.to_ndarray(format="rgb24")
                    if i >= last:
                        break
        except Exception as exc:
            raise VideoDecodeError(f"{self.path}: PyAV failed to decode: {exc}") from exc
        missing = wanted - found.keys()
        if missing:
            raise VideoDecodeError(
                f"{self.path}: frames {sorted(missing)[:5]} not decodable (header says {len(self)} frames)"
            )
        return np.stack([found[i] for i in idx])


class DecodedVideo:
    """A reader over frames already decoded into memory (what :class:`FrameCache` hands out)."""

    def __init__(self, path: Path, frames: np.ndarray):
        self.path = path
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        return self.frames[_check_indices(self.path, indices, len(self))]


class FrameCache:
    """Whole videos decoded once and kept in memory (uint8), up to ``limit_mb`` MiB, for one loading process.

    A training run draws each video once per epoch; when the decoded dataset fits in memory (the embedded default's
    2,000 clips of 16 frames at 32x32 take 94 MiB), decoding each file once instead of once per draw takes the
    decoder off the training loop's path after the first epoch. The frames are the decoder's own, so a clip is the
    same with or without the cache. Once the budget is spent the cache stops decoding whole videos: later misses
    read only the frames asked for, as without a cache.
    """

    def __init__(self, limit_mb: int, backend: str):
        self.limit = int(limit_mb) * 2**20
        self.backend = backend
        self.used = 0
        self.full = self.limit <= 0
        self.videos: dict[Path, np.ndarray] = {}

    def open(self, path: str | Path) -> VideoReader:
        path = Path(path)
        frames = self.videos.get(path)
        if frames is not None:
            return DecodedVideo(path, frames)
        reader = open_video(path, self.backend)
        if self.full:
            return reader
        frames = reader.get_frames(range(len(reader)))
        if self.used + frames.nbytes > self.limit:
            self.full = True
            return DecodedVideo(path, frames)
        self.videos[path] = frames
        self.used += frames.nbytes
        return DecodedVideo(path, frames)
