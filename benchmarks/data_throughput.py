"""Decode + augmentation throughput (clips/s, T=8) for each video reader on the synthetic default preset.

    python benchmarks/data_throughput.py [--clips 400] [--root data/synth-default]

Generates the default preset first if it is missing. Single process, one thread, so the figures compare the
readers rather than the machine's core count; a DataLoader with N workers scales them roughly N-fold.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from ila.config import DataConfig
from ila.data.dataset import VideoDataset
from ila.data.readers import available_backends, open_video
from ila.data.synth import PRESETS, generate
from ila.paths import data_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(data_dir() / "synth-default"))
    p.add_argument("--clips", type=int, default=400)
    p.add_argument("--frames", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)
    if not (os.path.exists(os.path.join(args.root, "val.txt"))):
        print(f"generating the default preset in {args.root} ...")
        generate(PRESETS["default"], args.root)

    print(f"{'reader':8} {'decode only':>14} {'decode+train aug':>18} {'decode+test view':>18}   (clips/s, T={args.frames})")
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


if __name__ == "__main__":
    main()
