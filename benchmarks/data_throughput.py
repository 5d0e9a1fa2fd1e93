"""Decode + augmentation throughput (clips/s, T=8) for each video reader.

    python benchmarks/data_throughput.py [--clips 400] [--root data/synth-default] [--kinetics-like-only]
    python benchmarks/data_throughput.py --reencode-only   # the preprocessing rule's cost per video
    python benchmarks/data_throughput.py --keyframes       # decode ms per clip against MB per clip, per setting

Two parts, single process and one thread each, so the figures are per core (a DataLoader with N workers scales them
roughly N-fold):
* the synthetic default preset (32x32; generated first if missing);
* Kinetics-like clips that the benchmark encodes itself — 10 s, 30 fps, H.264 CRF 23, at 340x256 (the size the
  community re-encodes Kinetics to) and 1280x720 (a raw upload) — with the training view at 224x224: decode ms,
  augmentation ms, total, and clips/s per core. What one GPU trains (~800-1000 clips/s for the Baseline at ViT-B/32 on
  an H100) divided by this is the number of cores the data path needs.
* ``--reencode``: what the workflow's ``preprocess_videos`` rule costs per Kinetics-like video (10 s, 30 fps) from
  1280x720 and 640x360 to short side 256 (one process, one thread), and what that is for Kinetics-400's ~260k train
  and val clips per core.
* ``--keyframes``: the re-encoding settings side by side (keyframe interval, B-frames, x264's fastdecode tune), from
  640x360 to 456x256: encode seconds and MB per clip, and ms to decode one training clip (8 frames) per reader.
  The choice of ``EncodeSettings``' defaults rests on this table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ila.config import DataConfig
from ila.data.dataset import VideoDataset
from ila.data.readers import available_backends, open_video
from ila.data.synth import PRESETS, generate
from ila.paths import resolve_root, synth_root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(resolve_root(synth_root("default"))))
    p.add_argument("--clips", type=int, default=400)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--kinetics-like-only", action="store_true")
    p.add_argument("--kinetics-clips", type=int, default=12, help="training views timed per reader and size")
    p.add_argument("--reencode", action="store_true", help="also time the re-encoding to short side 256")
    p.add_argument("--reencode-only", action="store_true", help="time only the re-encoding")
    p.add_argument("--reencode-videos", type=int, default=3, help="videos re-encoded per source size")
    p.add_argument("--keyframes", action="store_true", help="only the table of re-encoding settings")
    p.add_argument("--keyframe-videos", type=int, default=8, help="videos per setting in --keyframes")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.keyframes:
        keyframe_settings(args)
        return
    if not args.reencode_only:
        if not args.kinetics_like_only:
            synthetic_preset(args)
        kinetics_like(args)
    if args.reencode or args.reencode_only:
        reencode_cost(args)


K400_TRAIN_VAL_CLIPS = 260_000  # 240,258 train + 19,881 val clips on disk (cvdfoundation/kinetics-dataset)


def reencode_cost(args) -> None:
    from ila.data.preprocess import EncodeSettings, reencode

    print(f"\nRe-encoding to short side 256 (H.264 CRF 23, veryfast; ila.data.preprocess), one process, one thread, "
          f"mean of {args.reencode_videos} videos of 10 s at 30 fps")
    print(f"{'source':>9} {'s/video':>8} {'out MB':>7} {'K400 train+val, core-hours':>27}")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((1280, 720), (640, 360)):
            took, size = 0.0, 0
            for k in range(args.reencode_videos):
                src = encode_kinetics_like(Path(tmp) / f"src_{width}_{k}.mp4", width, height, seed=k)
                dst = Path(tmp) / f"dst_{width}_{k}.mp4"
                start = time.perf_counter()
                reencode(src, dst, EncodeSettings(short_side=256))
                took += time.perf_counter() - start
                size += dst.stat().st_size
            per = took / args.reencode_videos
            print(f"{f'{width}x{height}':>9} {per:8.2f} {size / args.reencode_videos / 1e6:7.2f} "
                  f"{per * K400_TRAIN_VAL_CLIPS / 3600:27.0f}", flush=True)


# (keyframe interval, B-frames, tune): x264's defaults first (this suite's settings before the keyframe study).
KEYFRAME_SETTINGS = [(None, None, None), (16, None, None), (16, None, "fastdecode"), (8, None, "fastdecode"),
                     (16, 0, "fastdecode"), (8, 0, "fastdecode"), (4, 0, "fastdecode"), (1, None, "fastdecode")]


def decode_ms(paths: list[Path], backend: str, frames: int = 8, repeats: int = 3) -> float:
    """Mean ms to open a video and decode one training clip's frames (segment sampling), one thread."""
    from ila.data.sampling import train_indices

    start, n = time.perf_counter(), 0
    for k, path in enumerate(paths * repeats):
        reader = open_video(path, backend)
        reader.get_frames(train_indices(len(reader), frames, "segment", torch.Generator().manual_seed(k)))
        reader.close()
        n += 1
    return 1e3 * (time.perf_counter() - start) / n


def keyframe_settings(args) -> None:
    from ila.data.preprocess import EncodeSettings, reencode

    backends = available_backends()
    print(f"Re-encoding 640x360 -> 456x256 (H.264 CRF 23, veryfast), {args.keyframe_videos} Kinetics-like videos "
          f"(10 s, 30 fps) per setting; one process, one thread. Decode = open + one training clip of "
          f"{args.frames} frames. Default: {EncodeSettings()}")
    print(f"{'keyframe every':>14} {'B-frames':>8} {'tune':>10} {'encode s':>9} {'MB/clip':>8} "
          + " ".join(f"{b + ' ms':>10}" for b in backends))
    with tempfile.TemporaryDirectory() as tmp:
        sources = [encode_kinetics_like(Path(tmp) / f"src_{k}.mp4", 640, 360, seed=k)
                   for k in range(args.keyframe_videos)]
        for interval, bframes, tune in KEYFRAME_SETTINGS:
            settings = EncodeSettings(short_side=256, keyframe_interval=interval, bframes=bframes, tune=tune)
            out = Path(tmp) / f"k{interval}_{bframes}_{tune}"
            out.mkdir()
            start = time.perf_counter()
            for src in sources:
                reencode(src, out / src.name, settings)
            encode = (time.perf_counter() - start) / len(sources)
            paths = sorted(out.glob("*.mp4"))
            mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
            print(f"{interval or '250 (x264)':>14} {'x264' if bframes is None else bframes:>8} {tune or '-':>10} "
                  f"{encode:9.2f} {mb:8.2f} " + " ".join(f"{decode_ms(paths, b, args.frames):10.1f}" for b in backends),
                  flush=True)


def synthetic_preset(args) -> None:
    if not (os.path.exists(os.path.join(args.root, "val.txt"))):
        print(f"generating the default preset in {args.root} ...")
        generate(PRESETS["default"], args.root)

    print(f"{'reader':8} {'decode only':>14} {'decode+train aug':>18} {'decode+test view':>18}   "
          f"(clips/s, T={args.frames})")
    for backend in available_backends():
        cfg = DataConfig(root=args.root, input_size=32, num_frames=args.frames, reader=backend, hflip="remap")
        train = VideoDataset(cfg, "train", seed=0)
        val = VideoDataset(dataclasses.replace(cfg), "val")
        n = min(args.clips, len(train), len(val))
        idx = list(range(0, len(train), max(1, len(train) // n)))[:n]

        start = time.perf_counter()
        for i in idx:
            r = open_video(train.records[i].path, backend)
            r.get_frames(list(range(1, len(r), max(1, len(r) // args.frames)))[: args.frames])
        decode = n / (time.perf_counter() - start)

        start = time.perf_counter()
        for i in idx:
            train[i]
        aug = n / (time.perf_counter() - start)

        start = time.perf_counter()
        for i in range(n):
            val[i % len(val)]
        test = n / (time.perf_counter() - start)
        print(f"{backend:8} {decode:14.1f} {aug:18.1f} {test:18.1f}")


def encode_kinetics_like(path: Path, width: int, height: int, seconds: int = 10, fps: int = 30, seed: int = 0) -> Path:
    """An H.264 (CRF 23, yuv420p) clip with moving textured content, so the encoder has real work to keep."""
    import av

    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8, 1), dtype=np.uint8))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for t in range(seconds * fps):
            dx, dy = (3 * t) % 8, (2 * t) % 8  # a slow pan over the texture
            frame = texture[dy : dy + height, dx : dx + width].copy()
            y0, x0 = int(height / 2 + height / 3 * np.sin(t / 20)), int(width / 2 + width / 3 * np.cos(t / 25))
            frame[max(0, y0 - 30) : y0 + 30, max(0, x0 - 40) : x0 + 40] = (200, 60, 40)  # a moving object
            noise = rng.integers(-12, 13, frame.shape, dtype=np.int16)
            frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def kinetics_like(args) -> None:
    from ila.config import AugmentConfig
    from ila.data.sampling import train_indices
    from ila.data.transforms import TrainTransform

    transform = TrainTransform(224, 256, AugmentConfig(), flip=True)
    print(f"\nKinetics-like clips (10 s, 30 fps, H.264 CRF 23), training view {args.frames}x224x224, one core, "
          f"mean of {args.kinetics_clips} clips. 'geometry' = resize, crop and flip only: the workers' share with "
          "data.augment_on: device (colour jitter, grayscale and normalisation then run on the GPU)")
    print(f"{'reader':8} {'size':>9} {'MB':>5} {'decode ms':>10} {'augment ms':>11} {'total ms':>9} "
          f"{'clips/s/core':>13} "
          f"{'geometry ms':>12} {'clips/s/core (device aug)':>26}")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((340, 256), (1280, 720)):
            path = encode_kinetics_like(Path(tmp) / f"k_{width}x{height}.mp4", width, height)
            mb = path.stat().st_size / 1e6
            for backend in available_backends():
                decode = augment = geometry = 0.0
                for k in range(args.kinetics_clips):
                    g = torch.Generator().manual_seed(k)
                    start = time.perf_counter()
                    reader = open_video(path, backend)
                    frames = reader.get_frames(train_indices(len(reader), args.frames, "segment", g))
                    mid = time.perf_counter()
                    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)
                    transform(clip, torch.Generator().manual_seed(k))
                    end = time.perf_counter()
                    transform.geometry(clip, torch.Generator().manual_seed(k))
                    decode += mid - start
                    augment += end - mid
                    geometry += time.perf_counter() - end
                n = args.kinetics_clips
                d, a, geo = 1e3 * decode / n, 1e3 * augment / n, 1e3 * geometry / n
                print(f"{backend:8} {f'{width}x{height}':>9} {mb:5.2f} {d:10.1f} {a:11.1f} {d + a:9.1f} "
                      f"{1e3 / (d + a):13.1f} {geo:12.1f} {1e3 / (d + geo):26.1f}", flush=True)


if __name__ == "__main__":
    main()
