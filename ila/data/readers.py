"""Video readers: PyAV by default, decord as an alternative.

A reader is opened per ``__getitem__`` call and closed after it: decord readers deadlock when they cross a
DataLoader fork, and one decode thread per reader keeps N workers from oversubscribing the cores. PyAV comes first
since its reader seeks (``PyAVReader``): on the re-encoded Kinetics-like clips it decoded a training clip in 30-38 ms
against decord's 47-53 (``benchmarks/paper_data_feed.py``), and it has wheels everywhere (decord: x86_64 only).
"""

from __future__ import annotations

import bisect
import importlib.util
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

# torch must be imported before decord (decord's bundled libraries clash with torch's otherwise).
import torch

from ila.errors import IlaError


class VideoDecodeError(IlaError, RuntimeError):
    """A video could not be opened or decoded (truncated, empty, not a video)."""

    kind = "video error"


class VideoReader(Protocol):
    path: Path

    def __len__(self) -> int: ...

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 RGB ``[T, H, W, 3]``."""
        ...

    def close(self) -> None:
        """Release the file (a reader is opened and closed within one item)."""
        ...

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the decoded frames."""
        ...


# name -> the package it needs. 'auto' takes the first installed of AUTO_ORDER; torchcodec is never picked
# automatically (it needs FFmpeg's shared libraries on the system, which its package does not bring).
READER_PACKAGES = {"pyav": "av", "decord": "decord", "torchcodec": "torchcodec"}
AUTO_ORDER = ("pyav", "decord")
INSTALL_HINTS = {"pyav": "pip install av", "decord": "pip install decord (x86_64 Linux wheels only)",
                 "torchcodec": "pip install 'ila-repro[torchcodec]' and FFmpeg's shared libraries (4 to 7; "
                               "e.g. apt install ffmpeg or conda install -c conda-forge ffmpeg)"}


def available_backends() -> list[str]:
    """Installed readers that 'auto' may pick, the preferred first."""
    return [name for name in AUTO_ORDER if importlib.util.find_spec(READER_PACKAGES[name]) is not None]


def resolve_backend(name: str) -> str:
    """'auto' picks PyAV when it is installed, else decord; a named backend must be installed."""
    if name == "auto":
        have = available_backends()
        if not have:
            raise RuntimeError(f"no video reader installed: {INSTALL_HINTS['pyav']} (or decord)")
        return have[0]
    if name not in READER_PACKAGES:
        raise ValueError(f"unknown video reader {name!r}; expected 'auto' or one of {', '.join(READER_PACKAGES)}")
    if importlib.util.find_spec(READER_PACKAGES[name]) is None:
        raise RuntimeError(f"video reader {name!r} requested but the '{READER_PACKAGES[name]}' package is not "
                           f"installed: {INSTALL_HINTS[name]}")
    return name


def open_video(path: str | Path, backend: str = "auto") -> VideoReader:
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: file is empty (0 bytes)")
    backend = resolve_backend(backend)
    reader = {"decord": DecordReader, "pyav": PyAVReader, "torchcodec": TorchCodecReader}[backend](path)
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

    def close(self) -> None:
        self._vr = None

    @property
    def frame_size(self) -> tuple[int, int]:
        return tuple(self._vr[0].shape[:2])


class PyAVReader:
    """Opens the file once, indexes its packets (demuxing only) and decodes only from the keyframe before each frame
    it needs, converting to RGB with one thread.

    Frame ``i`` is the video's ``i``-th frame in presentation order: the packet with the ``i``-th smallest timestamp,
    exactly the frame a decoder counting from the start reaches (variable frame rates included). Each decoded frame
    is checked by its timestamp, so a container whose seeking lands late is corrected by seeking further back; a
    stream without packet timestamps is decoded from the start.
    """

    def __init__(self, path: Path):
        import av
        from av.video.reformatter import VideoReformatter

        self.path = path
        try:
            self._container = av.open(str(path))
        except Exception as exc:  # av.error.FFmpegError and friends
            raise VideoDecodeError(f"{path}: PyAV cannot open it: {exc}") from exc
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_count = 1
            self._pts, self._keyframes = self._index()
        except VideoDecodeError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise VideoDecodeError(f"{path}: PyAV cannot read its packets: {exc}") from exc
        # One scaler context for every frame: a new one per frame (what frame.to_ndarray does) costs the setup each
        # time and, without a thread count, starts a thread pool sized from the CPU count per frame.
        self._rgb = VideoReformatter()

    def _index(self) -> tuple[list[int] | None, list[int]]:
        pts, keyframes, untimed = [], [], 0
        for packet in self._container.demux(self._stream):
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            if packet.pts is None:
                untimed += 1
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
        if untimed:  # no timestamps to seek by: count frames and decode from the start
            self._count = untimed + len(pts)
            return None, []
        self._count = len(pts)
        return sorted(pts), sorted(keyframes)

    def __len__(self) -> int:
        return self._count

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._stream.codec_context.height, self._stream.codec_context.width

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None

    def _to_rgb(self, frame) -> np.ndarray:
        return self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(self.path, indices, len(self))
        if self._container is None:
            raise VideoDecodeError(f"{self.path}: reader already closed")
        try:
            found = self._decode_sequential(set(idx)) if self._pts is None else self._decode_seeking(set(idx))
        except VideoDecodeError:
            raise
        except Exception as exc:
            raise VideoDecodeError(f"{self.path}: PyAV failed to decode: {exc}") from exc
        missing = set(idx) - found.keys()
        if missing:
            raise VideoDecodeError(
                f"{self.path}: frames {sorted(missing)[:5]} not decodable (its index lists {len(self)} frames)"
            )
        return np.stack([found[i] for i in idx])

    def _decode_sequential(self, wanted: set[int]) -> dict[int, np.ndarray]:
        self._container.seek(0)
        found, last = {}, max(wanted)
        for i, frame in enumerate(self._container.decode(self._stream)):
            if i in wanted:
                found[i] = self._to_rgb(frame)
            if i >= last:
                break
        return found

    def _decode_seeking(self, wanted: set[int]) -> dict[int, np.ndarray]:
        by_pts = {self._pts[i]: i for i in wanted}
        found: dict[int, np.ndarray] = {}
        frames, position, floor = None, None, 0
        for i in sorted(wanted):
            target = self._pts[i]
            if i in found:
                continue
            keyframe = self._keyframe_before(target)
            # Keep decoding when the decoder already sits inside the target's group of pictures: seeking would
            # decode from the same keyframe again.
            if frames is None or position is None or position < keyframe or position >= target:
                frames, floor = self._seek(keyframe, target), keyframe
                position = None
            for frame in frames:
                if frame.pts is None or frame.pts < floor:  # leading pictures of an open GOP: not from this seek
                    continue
                position = frame.pts
                j = by_pts.get(frame.pts)
                if j is not None and j not in found:
                    found[j] = self._to_rgb(frame)
                if frame.pts >= target:
                    break
        return found

    def _keyframe_before(self, pts: int) -> int:
        k = bisect.bisect_right(self._keyframes, pts) - 1
        return self._keyframes[k] if k >= 0 else self._pts[0]

    def _seek(self, keyframe: int, target: int):
        """A frame iterator positioned at or before ``target``: seek to ``keyframe`` and check where the decoder
        landed; if past the target (some containers seek by decode time), go back a keyframe at a time."""
        candidates = [k for k in self._keyframes if k <= keyframe][::-1] or [self._pts[0]]
        for key in candidates:
            self._container.seek(key, stream=self._stream, backward=True, any_frame=False)
            frames = self._container.decode(self._stream)
            first = next(frames, None)
            if first is None:
                break
            if first.pts is not None and first.pts <= target:
                return itertools.chain([first], frames)
        self._container.seek(0)
        return self._container.decode(self._stream)


class TorchCodecReader:
    """torchcodec's decoder (``data.reader: torchcodec``) on the CPU or, with ``device='cuda'``, on the GPU's video
    decoder (what ``data.decode_on: device`` uses in the training process). Frame ``i`` is the ``i``-th in
    presentation order (its exact seek mode scans the file first), as for the other readers; on the CPU its frames
    equal PyAV's (tested)."""

    def __init__(self, path: Path, device: str = "cpu"):
        from torchcodec.decoders import VideoDecoder

        self.path = path
        try:
            self._decoder = VideoDecoder(str(path), device=device, seek_mode="exact", num_ffmpeg_threads=1,
                                         dimension_order="NHWC")
        except Exception as exc:  # RuntimeError / ValueError from FFmpeg
            raise VideoDecodeError(f"{path}: torchcodec cannot open it: {exc}") from exc

    def __len__(self) -> int:
        return len(self._decoder)

    @property
    def frame_size(self) -> tuple[int, int]:
        meta = self._decoder.metadata
        return meta.height, meta.width

    def frames_tensor(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames as a uint8 ``[T, H, W, 3]`` tensor on the decoder's device."""
        idx = _check_indices(self.path, indices, len(self))
        try:
            return self._decoder.get_frames_at(indices=idx).data
        except Exception as exc:
            raise VideoDecodeError(f"{self.path}: torchcodec failed to decode frames: {exc}") from exc

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        return self.frames_tensor(indices).cpu().numpy()

    def close(self) -> None:
        self._decoder = None


class DecodedVideo:
    """A reader over frames already decoded into memory (what :class:`FrameCache` hands out)."""

    def __init__(self, path: Path, frames: np.ndarray):
        self.path = path
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        return self.frames[_check_indices(self.path, indices, len(self))]

    def close(self) -> None:
        pass

    @property
    def frame_size(self) -> tuple[int, int]:
        return tuple(self.frames.shape[1:3])


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
        try:
            frames = reader.get_frames(range(len(reader)))
        finally:
            reader.close()
        if self.used + frames.nbytes > self.limit:
            self.full = True
            return DecodedVideo(path, frames)
        self.videos[path] = frames
        self.used += frames.nbytes
        return DecodedVideo(path, frames)
