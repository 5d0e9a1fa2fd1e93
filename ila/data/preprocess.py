"""Re-encode a directory of videos to a smaller short side (H.264 MP4), in parallel, resumably.

Why: decoding cost grows with the pixel count, and raw Kinetics-400 is often 720p or more, while training reads
224-pixel crops. The suite's data-throughput benchmark measured decord at 67 ms per 8-frame clip at 340x256 and
375 ms at 1280x720 on one core; re-encoding once to short side 256 takes that cost off every epoch.

* Resumable: an output is written to a temporary name and renamed when complete, so a video present in the output
  directory is done; a rerun does only the rest.
* Undecodable inputs (truncated, empty, not a video) are skipped, counted and named in ``<dst>.report.json``; they
  never stop the others, not even one that crashes its decoder process (it is found and retried alone).
* Frames keep their rate; a source no larger than the target keeps its size (never upscaled).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from ila.paths import write_json
from ila.progress import progress_bar

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov")


@dataclass(frozen=True)
class EncodeSettings:
    """How videos are re-encoded. The last three trade disk for decode time; their defaults were chosen by
    measurement (``python benchmarks/data_throughput.py --keyframes``; docs/paper-scale.md, "What it costs")."""

    short_side: int = 256
    crf: int = 23
    preset: str = "veryfast"
    # Frames between keyframes. A reader that seeks decodes from the keyframe before each frame it needs: with
    # x264's default (250, i.e. 2 keyframes per 10 s clip) a training clip of 8 frames decodes most of its video;
    # with 8 it decodes ~4.5 frames per frame kept. None keeps the encoder's default.
    keyframe_interval: int | None = 8
    # B-frames make the decoder hold frames back, so reaching a frame means decoding the next few as well.
    bframes: int | None = 0
    # x264's fastdecode tune (no CABAC, no deblocking, no weighted prediction): decoding is cheaper per frame.
    tune: str | None = "fastdecode"

    def x264_options(self) -> dict[str, str]:
        options = {"crf": str(self.crf), "preset": self.preset}
        if self.tune:
            options["tune"] = self.tune
        return options


def output_name(source_name: str) -> str:
    """The file a source video becomes (always MP4: SSv2's WebM files are re-encoded to H.264 too)."""
    return Path(source_name).stem + ".mp4"


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale so the short side is ``short_side`` (never up), keeping the aspect ratio; even sizes for yuv420p."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def reencode(src: Path, dst: Path, settings: EncodeSettings) -> None:
    """Raise on any decode or encode failure; ``dst`` appears only when complete."""
    import av

    tmp = dst.with_name(f".{dst.stem}.partial.mp4")
    frames = 0
    try:
        with av.open(str(src)) as source, av.open(str(tmp), mode="w", format="mp4") as out:
            if not source.streams.video:
                raise ValueError("no video stream")
            video = source.streams.video[0]
            video.thread_count = 1
            rate = Fraction(video.average_rate or video.guessed_rate or 30)
            time_base = 1 / rate
            width, height = target_size(video.codec_context.width, video.codec_context.height, settings.short_side)
            stream = out.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.thread_count = 1
            stream.options = settings.x264_options()
            if settings.keyframe_interval:
                stream.codec_context.gop_size = settings.keyframe_interval
            if settings.bframes is not None:
                stream.codec_context.max_b_frames = settings.bframes
            for frame in source.decode(video):
                # threads=1: swscale's automatic pool is sized from the CPU count, per frame (16 threads per 8 frames
                # on 2 cores here, 128 on a 16-core node) and oversubscribes the cores the other workers use.
                scaled = frame.reformat(width=width, height=height, format="yuv420p", threads=1)
                # Frame numbers as timestamps in the output's 1/rate time base: the source's own timestamps (VFR,
                # offsets, other time bases) would otherwise leak into the re-encoded file.
                scaled.pts = frames
                scaled.time_base = time_base
                for packet in stream.encode(scaled):
                    out.mux(packet)
                frames += 1
            for packet in stream.encode():
                out.mux(packet)
        if frames == 0:
            raise ValueError("no decodable frames")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _job(args: tuple[str, str, EncodeSettings, str]) -> tuple[str, str | None]:
    src, dst, settings, inflight = args
    name = Path(src).name
    # While a video is being worked on, its name sits in a file named after this process: if the process dies (a
    # decoder crash), the file is left behind and names the suspect.
    marker = Path(inflight) / str(os.getpid())
    marker.write_text(name)
    try:
        reencode(Path(src), Path(dst), settings)
        return name, None
    except Exception as exc:  # any failure of one video is that video's, reported with its name
        return name, f"{type(exc).__name__}: {exc}"
    finally:
        marker.unlink(missing_ok=True)


def _run(jobs: list, workers: int, failures: dict[str, str], bar: tqdm) -> set[str]:
    """Run ``jobs`` in a pool; returns the names finished. Stops early (returning what finished) if a worker dies."""
    finished: set[str] = set()
    with ProcessPoolExecutor(workers) as pool:
        try:
            for future in as_completed([pool.submit(_job, job) for job in jobs]):
                name, error = future.result()
                finished.add(name)
                if error:
                    failures[name] = error
                bar.update()
        except BrokenProcessPool:
            pass
    return finished


def usable_cores() -> int:
    """The cores this process may run on (a SLURM job's allocation, not the node's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _up_to_date(source: Path, output: Path) -> bool:
    return output.is_file() and output.stat().st_mtime >= source.stat().st_mtime


def report_path(dst_dir: str | Path) -> Path:
    dst_dir = Path(dst_dir)
    return dst_dir.with_name(dst_dir.name + ".report.json")


SETTINGS_FILE = ".encode-settings.json"


def _clear_other_settings(dst_dir: Path, settings: EncodeSettings) -> None:
    """Remove the videos in ``dst_dir`` unless they were written with ``settings``, and record ``settings``.

    The record is written before any video, so an interrupted run resumes; outputs without one predate it (this
    suite's earlier settings) and count as other settings."""
    path, wanted = dst_dir / SETTINGS_FILE, asdict(settings)
    try:
        recorded = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        recorded = None
    old = sorted(dst_dir.glob("*.mp4"))
    if recorded != wanted and old:
        # Removed first, then the new settings recorded: an interrupted re-encode never leaves old videos counted
        # as new.
        log.warning("%s holds %d videos written with other settings (%s): removing them to re-encode every video "
                    "with %s", dst_dir, len(old), recorded or "from before settings were recorded", wanted)
        for video in old:
            video.unlink()
    write_json(wanted, path)


def _encode_all(todo: list[tuple], src_dir: Path, dst_dir: Path, workers: int, progress: bool | None) -> dict[str, str]:
    """Re-encode ``todo`` with a pool of ``workers``; the videos that failed -> why. A worker that dies takes the
    pool with it: the videos then in flight (each marked in a folder beside ``dst_dir``) are retried one at a time."""
    failures: dict[str, str] = {}
    inflight = dst_dir.with_name(f".{dst_dir.name}.inflight")
    shutil.rmtree(inflight, ignore_errors=True)
    inflight.mkdir()
    pending = [(*job, str(inflight)) for job in todo]
    with progress_bar(total=len(todo), unit="video", desc=f"preprocess {src_dir.name}",
                      disable=progress is False) as bar:
        while pending:
            finished = _run(pending, workers, failures, bar)
            pending = [job for job in pending if Path(job[0]).name not in finished]
            if not pending:
                break
            # A worker died and took the pool with it: the videos then in flight are the suspects. Each is retried
            # alone (a second death names it undecodable); every other video goes back to a full pool.
            suspects = {marker.read_text() for marker in inflight.iterdir()}
            if not suspects and not finished:
                raise RuntimeError(f"the re-encoding processes for {src_dir} die before starting any video "
                                   "(out of memory?); nothing was lost: rerun to continue")
            shutil.rmtree(inflight)
            inflight.mkdir()
            log.warning("a re-encoding process died (decoder crash?) with %s in flight: retrying them one at a time",
                        sorted(suspects))
            for job in [j for j in pending if Path(j[0]).name in suspects]:
                if not _run([job], 1, failures, bar):
                    failures[Path(job[0]).name] = "the re-encoding process died on it (decoder crash)"
                    bar.update()
            pending = [job for job in pending if Path(job[0]).name not in suspects]
    shutil.rmtree(inflight, ignore_errors=True)
    return failures


def preprocess_videos(
    src_dir: str | Path,
    dst_dir: str | Path,
    settings: EncodeSettings = EncodeSettings(),
    workers: int | None = None,
    progress: bool | None = None,
) -> dict:
    """Re-encode every video of ``src_dir`` into ``dst_dir``; returns (and writes) the report with the counts."""
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"{src_dir}: no such directory of videos to preprocess")
    dst_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in src_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    # Done = an output newer than its source (a source replaced later, e.g. by Kinetics-400's replacement clips,
    # is re-encoded again), written with these settings: outputs of other settings (e.g. this suite's earlier
    # keyframe spacing, 250 frames, which made every clip decode most of its video) are all re-encoded.
    _clear_other_settings(dst_dir, settings)
    todo = [(str(p), str(dst_dir / output_name(p.name)), settings) for p in sources
            if not _up_to_date(p, dst_dir / output_name(p.name))]
    workers = workers or usable_cores()
    log.info("%s: %d videos, %d already done, %d to re-encode to short side %d with %d workers", src_dir,
             len(sources), len(sources) - len(todo), len(todo), settings.short_side, workers)
    failures = _encode_all(todo, src_dir, dst_dir, workers, progress)
    for name, error in sorted(failures.items()):
        log.warning("skipped %s: %s", src_dir / name, error)
    report = {
        "source": str(src_dir),
        "settings": asdict(settings),
        "short_side": settings.short_side,
        "videos": len(sources),
        "encoded_now": len(todo) - len(failures),
        "already_done": len(sources) - len(todo),
        "undecodable": dict(sorted(failures.items())),
    }
    write_json(report, report_path(dst_dir))
    log.info("%s: %d re-encoded now, %d already done, %d undecodable (named in %s)", dst_dir, report["encoded_now"],
             report["already_done"], len(failures), report_path(dst_dir))
    return report
