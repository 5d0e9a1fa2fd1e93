"""What the data path feeds the trainer at the paper's configuration, on this machine, old path beside new.

    python benchmarks/paper_data_feed.py [--clips 240] [--feed-clips 1000] [--workers N] [--batch 32]
                                         [--train | --no-train] [--variants baseline ila] [--steps 60]

1. The machine: ``lscpu``'s summary, the cores this process may use, the GPU.
2. Clips: ``--clips`` Kinetics-like clips (10 s, 30 fps, 640x360 H.264; ``data_throughput.py``'s generator)
   re-encoded to short side 256 (456x256), as the workflow's preprocessing does to Kinetics-400, on every core,
   twice: with this suite's ``EncodeSettings`` and with the settings before (x264's defaults: a keyframe every 250
   frames, B-frames, CABAC). Videos/s, core-seconds and MB per clip for each.
3. Per core (one process, one thread): ms per clip to open and decode a training clip (8 frames) with each reader,
   on both sets of clips; to augment it on the CPU (all of it, and the geometric part alone); and the photometric
   part on the device, batched (CUDA when there is one, else this CPU).
4. The real loader (``VideoDataset`` + ``build_dataloader``, ``--workers`` processes, batch ``--batch``) over at
   least ``--feed-clips`` clips, every worker busy, in one run:
   * old path: old-settings clips, all augmentation in the workers (float32 batches), a new loader every epoch (what
     the trainer did before one loader served the whole run);
   * new path: the suite's clips, uint8 batches from one loader for the run (the paper profiles' loader); then the
     same followed by the photometric part on the device for every batch.
5. With CUDA (or ``--train``): the real trainer (``ila train``: ViT-B/32 with random weights, 8x224², batch
   ``--batch``, bf16 on CUDA, the paper profile's loader) per variant for ``--steps`` steps on the new clips: the
   clips/s it was fed, the share of step time spent waiting for data, and the clips/s the GPU trains when data is
   ready (steps alone), so the two rates can be compared.
On a GPU node this gives the figures behind docs/paper-scale.md's "What it costs".
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from data_throughput import decode_ms, encode_kinetics_like  # noqa: E402

from ila.config import AugmentConfig, DataConfig  # noqa: E402
from ila.data.dataset import VideoDataset, build_dataloader, iterate_batches  # noqa: E402
from ila.data.device import BatchOnDevice  # noqa: E402
from ila.data.preprocess import EncodeSettings, preprocess_videos, usable_cores  # noqa: E402
from ila.data.readers import available_backends  # noqa: E402
from ila.data.transforms import TrainTransform, apply_photometric_batch, draw_photometric  # noqa: E402

OLD_SETTINGS = EncodeSettings(keyframe_interval=None, bframes=None, tune=None)
NEW_SETTINGS = EncodeSettings()
LSCPU_FIELDS = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)", "CPU max MHz",
                "L3 cache")


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        summary = ", ".join(f"{k}: {fields[k].strip()}" for k in LSCPU_FIELDS if k in fields)
    except (OSError, subprocess.CalledProcessError):
        summary = "lscpu not available"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return f"{summary}\nusable cores: {usable_cores()}; GPU: {gpu}; torch {torch.__version__}"


def _encode(args):
    path, width, height, seed = args
    encode_kinetics_like(Path(path), width, height, seed=seed)


def make_clips(root: Path, n: int, source: str) -> dict[str, Path]:
    width, height = (int(v) for v in source.split("x"))
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    jobs = [(str(raw / f"clip_{i:05d}.mp4"), width, height, i) for i in range(n)
            if not (raw / f"clip_{i:05d}.mp4").exists()]
    start = time.perf_counter()
    with ProcessPoolExecutor(usable_cores()) as pool:
        list(pool.map(_encode, jobs))
    print(f"generated {len(jobs)} raw {source} clips in {time.perf_counter() - start:.1f} s")
    print(f"\n{'re-encoding to short side 256':32} {'videos/s':>9} {'core-s/video':>13} {'MB/clip':>8}   "
          f"({usable_cores()} processes)")
    out = {}
    for name, settings in (("old", OLD_SETTINGS), ("new", NEW_SETTINGS)):
        dst = root / f"videos_{name}"
        start = time.perf_counter()
        report = preprocess_videos(raw, dst, settings, usable_cores(), progress=False)
        took = time.perf_counter() - start
        mb = sum(p.stat().st_size for p in dst.glob("*.mp4")) / n / 1e6
        label = f"{name}: keyframe {settings.keyframe_interval or 250}, bf {settings.bframes}, {settings.tune}"
        rate = report["encoded_now"] / took if report["encoded_now"] else float("nan")
        print(f"{label:32} {rate:9.2f} {took * usable_cores() / max(1, report['encoded_now']):13.2f} {mb:8.2f}")
        out[name] = dst
    return out


def write_lists(root: Path, videos: Path, classes: int = 400) -> Path:
    """A Kinetics-format dataset over ``videos`` (labels, train and val lists), in its own directory."""
    data = root / f"data_{videos.name}"
    data.mkdir(exist_ok=True)
    names = sorted(p.name for p in videos.glob("*.mp4"))
    (data / "labels.csv").write_text("id,name\n" + "".join(f"{i},class {i}\n" for i in range(classes)))
    for split, chosen in (("train", names), ("val", names[:16])):
        (data / f"{split}.txt").write_text("".join(f"{videos}/{n} {i % classes}\n" for i, n in enumerate(chosen)))
    return data


def per_core(clips: dict[str, Path], device: torch.device) -> None:
    torch.set_num_threads(1)
    print("\nper core (one process, one thread), ms per training clip of 8 frames at 224²:")
    for name, folder in clips.items():
        paths = sorted(folder.glob("*.mp4"))[:12]
        for backend in available_backends():
            print(f"  decode, {name} clips, {backend:7} {decode_ms(paths, backend):7.1f}")
    from ila.data.readers import open_video

    reader = open_video(sorted(clips["new"].glob("*.mp4"))[0])
    frames = torch.from_numpy(reader.get_frames(range(0, 240, 30))).permute(0, 3, 1, 2)
    transform = TrainTransform(224, 256, AugmentConfig(), flip=True)
    for label, fn in (("augment, all on the CPU", transform), ("augment, geometry only", transform.geometry)):
        start = time.perf_counter()
        for k in range(20):
            fn(frames, torch.Generator().manual_seed(k))
        print(f"  {label:31} {1e3 * (time.perf_counter() - start) / 20:7.1f}")
    batch = torch.stack([transform.geometry(frames, torch.Generator().manual_seed(k))[0] for k in range(32)])
    params = torch.stack([draw_photometric(torch.Generator().manual_seed(k), AugmentConfig()) for k in range(32)])
    batch = batch.to(device)
    apply_photometric_batch(batch, params)  # warm-up (CUDA kernels)
    _sync(device)
    start = time.perf_counter()
    for _ in range(3):
        apply_photometric_batch(batch, params)
    _sync(device)
    print(f"  photometric on {device.type}, batched  {1e3 * (time.perf_counter() - start) / 3 / 32:7.1f}")
    torch.set_num_threads(usable_cores())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def feed(data: Path, args, augment_on: str, one_loader: bool, device: torch.device | None,
         decode_on: str = "loader") -> tuple[float, int]:
    """Clips/s the real loader delivers (and, with ``device``, after the trainer's last steps there: decoding with
    ``decode_on: device``, the photometric part)."""
    cfg = DataConfig(root=str(data), input_size=224, num_frames=8, hflip="on", batch_size=args.batch,
                     num_workers=args.workers, augment_on=augment_on, decode_on=decode_on)
    ds = VideoDataset(cfg, "train", seed=0)
    per_epoch = len(ds) // args.batch
    epochs = -(-args.feed_clips // (per_epoch * args.batch))
    loaders = [build_dataloader(ds, epochs=epochs)] if one_loader else \
        (build_dataloader(ds, epoch=e) for e in range(epochs))
    on_device = BatchOnDevice(ds, device) if device is not None else None
    clips, start = 0, None
    for loader in loaders:
        for batch in iterate_batches(loader):
            if start is None:  # timed from the first batch: the first start-up of the workers is left out
                start = time.perf_counter()
            if device is None:
                clips += len(batch["video"])
                continue
            video, _ = on_device(batch)
            _sync(device)
            clips += len(video)
    return clips / (time.perf_counter() - start), clips


def loader_feed(datasets: dict[str, Path], args, device: torch.device) -> None:
    print(f"\nthe real loader: {args.workers} workers, batch {args.batch}, >= {args.feed_clips} clips each "
          f"(timed from the first batch)")
    rows = [("old: x264-default clips, CPU augmentation, float32, a loader per epoch", "old", "loader", False, None),
            ("new: suite's clips, uint8, one loader for the run", "new", "device", True, None),
            (f"new + photometric part on {device.type}", "new", "device", True, device)]
    if torchcodec_loads():
        rows.append((f"new, decoded on {device.type} (torchcodec; the workers only draw)", "new", "device", True,
                     device, "device"))
    else:
        print("  (torchcodec does not load here: no row for data.decode_on: device)")
    for label, clips, augment_on, one_loader, dev, *decode_on in rows:
        rate, n = feed(datasets[clips], args, augment_on, one_loader, dev, *decode_on)
        print(f"  {label:72} {rate:7.1f} clips/s ({n} clips)", flush=True)


def torchcodec_loads() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:  # not installed, or FFmpeg's shared libraries missing
        return False
    return True


def train_feed(data: Path, args) -> None:
    print(f"\nthe real trainer (ViT-B/32 random weights, 8x224², batch {args.batch}, {args.workers} workers, "
          f"augment_on device, decode_on {args.decode_on}, {args.steps} steps, first step excluded)")
    print(f"  {'variant':10} {'fed clips/s':>12} {'data wait':>10} {'GPU alone clips/s':>18}")
    for variant in args.variants:
        out = data.parent / "runs" / variant
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "ila.cli", "train", f"model.variant={variant}", "model.backbone=ViT-B-32",
               "model.pretrained=null", f"data.root={data}", "data.input_size=224", "data.num_frames=8",
               f"data.batch_size={args.batch}", f"data.num_workers={args.workers}", "data.augment_on=device",
               f"data.decode_on={args.decode_on}",
               "data.hflip=on", f"train.steps={args.steps}", f"train.log_every={args.steps}",
               f"train.checkpoint_every={args.steps}", "tracking.enabled=false", f"output_dir={out}",
               "--skip-eval", "--no-resume"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"  {variant:10} failed: {res.stderr[-1500:]}")
            continue
        summary = json.loads((out / "train_summary.json").read_text())
        fed, wait = summary["train_clips_per_s"], summary["train_data_wait_frac"]
        print(f"  {variant:10} {fed:12.1f} {100 * wait:9.0f}% {fed / max(1e-9, 1 - wait):18.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=240, help="distinct clips generated and re-encoded")
    p.add_argument("--feed-clips", type=int, default=1000, help="clips each loader row delivers at least")
    p.add_argument("--source", default="640x360", help="WxH of the generated raw clips")
    p.add_argument("--workers", type=int, default=usable_cores(), help="loader processes")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--variants", nargs="+", default=["baseline", "ila"])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--decode-on", choices=["loader", "device"], default="loader",
                   help="the trainer's data.decode_on (device: torchcodec on the GPU)")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=None,
                   help="run the trainer part (default: only with CUDA)")
    p.add_argument("--keep", help="work in this directory (kept; reused by the next run), not a temporary one")
    args = p.parse_args()
    print(machine())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        clips = make_clips(root, args.clips, args.source)
        datasets = {name: write_lists(root, folder) for name, folder in clips.items()}
        per_core(clips, device)
        loader_feed(datasets, args, device)
        if args.train or (args.train is None and torch.cuda.is_available()):
            train_feed(datasets["new"], args)
        else:
            print("\nno CUDA: the trainer part is skipped (--train runs it on this CPU)")


if __name__ == "__main__":
    main()
