"""What the data path feeds the trainer at the paper's configuration, on this machine, from prepared clips.

    python benchmarks/paper_data_feed.py [--clips 128] [--source 640x360] [--variants baseline ila] [--steps 30]

1. Encodes ``--clips`` Kinetics-like clips (10 s, 30 fps, H.264; ``benchmarks/data_throughput.py``'s generator) at
   the source size, in parallel;
2. re-encodes them to short side 256 with the workflow's preprocessing (``ila data preprocess``, every core) and
   prints videos/s — what ``preprocess_videos`` does to Kinetics-400;
3. trains each variant with the real trainer (``ila train``: ViT-B/32 with random weights, 8 frames, 224², batch
   ``--batch``, ``--workers`` loader processes, bf16 on CUDA) on those clips for ``--steps`` steps and prints the
   trainer's own clips/s and the share of step time spent waiting for data (first step excluded).
On a GPU machine this is the figure behind the GPU-hours per row in the README's "Running at paper scale".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from data_throughput import encode_kinetics_like  # noqa: E402

from ila.data.preprocess import usable_cores  # noqa: E402


def _encode(args):
    path, width, height, seed = args
    encode_kinetics_like(Path(path), width, height, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=128)
    p.add_argument("--source", default="640x360", help="WxH of the generated raw clips")
    p.add_argument("--variants", nargs="+", default=["baseline", "ila"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=max(1, usable_cores() - 1))
    p.add_argument("--reader", default="auto")
    p.add_argument("--keep", help="work in this directory (kept) instead of a temporary one")
    args = p.parse_args()
    width, height = (int(v) for v in args.source.split("x"))
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        raw = root / "videos" / "train"
        raw.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        jobs = [(str(raw / f"clip_{i:05d}.mp4"), width, height, i) for i in range(args.clips)
                if not (raw / f"clip_{i:05d}.mp4").exists()]
        with ProcessPoolExecutor(cores) as pool:
            list(pool.map(_encode, jobs))
        print(f"encoded {len(jobs)} {args.source} clips in {time.perf_counter() - start:.1f} s ({cores} processes)")

        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ila.cli", "data", "preprocess", "--src", str(raw), "--dst",
                        str(root / "videos_s256" / "train"), "--short-side", "256", "--workers", str(cores),
                        "--no-progress"], check=True, capture_output=True)
        took = time.perf_counter() - start
        print(f"preprocess: {args.clips} videos {args.source} -> short side 256 in {took:.1f} s with {cores} "
              f"workers = {args.clips / took:.2f} videos/s ({took * cores / args.clips:.2f} core-s per video)")

        names = sorted(p.name for p in (root / "videos_s256" / "train").glob("*.mp4"))
        (root / "labels.csv").write_text("id,name\n" + "".join(f"{i},class {i}\n" for i in range(400)))
        for split, chosen in (("train", names), ("val", names[:16])):
            (root / f"{split}.txt").write_text("".join(f"videos_s256/train/{n} {i % 400}\n"
                                                       for i, n in enumerate(chosen)))
        print(f"{'variant':10} {'clips/s':>8} {'data wait':>10}   (ViT-B/32, 8x224², batch {args.batch}, "
              f"{args.workers} loader workers, reader {args.reader})")
        for variant in args.variants:
            out = root / "runs" / variant
            cmd = [sys.executable, "-m", "ila.cli", "train", f"model.variant={variant}", "model.backbone=ViT-B-32",
                   "model.pretrained=null", f"data.root={root}", "data.input_size=224", "data.num_frames=8",
                   f"data.batch_size={args.batch}", f"data.num_workers={args.workers}", f"data.reader={args.reader}",
                   "data.hflip=on", f"train.steps={args.steps}", f"train.log_every={args.steps}",
                   f"train.checkpoint_every={args.steps}", "tracking.enabled=false", f"output_dir={out}",
                   "--skip-eval", "--no-resume"]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{variant:10} failed: {res.stderr[-1500:]}")
                continue
            summary = json.loads((out / "train_summary.json").read_text())
            print(f"{variant:10} {summary['train_clips_per_s']:8.1f} {100 * summary['train_data_wait_frac']:9.0f}%",
                  flush=True)


if __name__ == "__main__":
    main()
