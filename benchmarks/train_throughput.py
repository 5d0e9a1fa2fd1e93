"""Training throughput: clips/s and the fraction of time spent waiting for data, per model variant.

    python benchmarks/train_throughput.py [--steps 40] [--variants baseline ila] [--workers 1] [--threads 1]

CPU part: the real trainer (`ila train`) on the synthetic default preset (generated first if missing) with the
embedded mini-CLIP, 8 frames at 32x32, batch 16; the figures exclude the first optimiser step.
GPU part (only when CUDA is available): the paper configuration — ViT-B/32, 8 frames, 224x224, synthetic input
tensors (no decoding), bf16 autocast — forward + backward + AdamW step, with model FLOPs utilisation
MFU = 3 x forward FLOPs x clips/s / peak bf16 dense FLOP/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from ila.config import load_run_config
from ila.data.synth import PRESETS, generate
from ila.engine.train import build_optimizer, train
from ila.models import create_model
from ila.models.flops import model_cost
from ila.paths import data_dir

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def cpu_benchmark(args) -> None:
    root = Path(args.root)
    if not (root / "train.txt").exists():
        print(f"generating the default preset in {root} ...")
        generate(PRESETS["default"], root)
    print(f"\nCPU: trainer on {root.name}, ILA-mini-32, T=8, 32x32, batch 16, {args.steps} steps, "
          f"{args.workers} loader workers, {args.threads} torch threads")
    print(f"{'variant':14} {'clips/s':>9} {'data wait':>10} {'s/step':>8}")
    for variant in args.variants:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_run_config(None, [
                f"data.root={root}", "data.input_size=32", "data.batch_size=16", "data.hflip=remap",
                f"data.num_workers={args.workers}", "data.val_list=" + str(_small_val(root, Path(tmp))),
                f"model.variant={variant}", "model.backbone=ILA-mini-32", f"train.steps={args.steps}",
                f"train.threads={args.threads}", "train.checkpoint_every=100000", "tracking.enabled=false",
                f"output_dir={tmp}/run",
            ])  # fmt: skip
            m = train(cfg, resume=False)
        print(f"{variant:14} {m['train_clips_per_s']:9.1f} {m['train_data_wait_frac']:10.1%} "
              f"{16 / m['train_clips_per_s']:8.3f}")


def _small_val(root: Path, tmp: Path) -> Path:
    """A 20-clip validation list: the benchmark measures training, not evaluation."""
    lines = (root / "val.txt").read_text().splitlines()
    path = tmp / "val_small.txt"
    path.write_text("\n".join(lines[:: max(1, len(lines) // 20)][:20]) + "\n")
    return path


def gpu_benchmark(args) -> None:
    if not torch.cuda.is_available():
        print("\nGPU: CUDA not available here; the paper-configuration benchmark is skipped.")
        return
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"\nGPU: {name}, ViT-B/32, T=8, 224x224, synthetic input, bf16 autocast, batch {args.gpu_batch}")
    print(f"{'variant':14} {'clips/s':>9} {'ms/step':>9} {'GFLOPs/clip':>12} {'MFU':>7}")
    classes = [f"class {i}" for i in range(400)]
    for variant in args.variants:
        cfg = {"variant": variant, "backbone": "ViT-B-32", "num_frames": 8}
        model = create_model(cfg, classes).to(dev).train()
        opt = build_optimizer(model, load_run_config(None, []))
        video = torch.randn(args.gpu_batch, 8, 3, 224, 224, device=dev)
        labels = torch.randint(0, 400, (args.gpu_batch,), device=dev)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(video)
                loss = torch.nn.functional.cross_entropy(out.logits.float(), labels) + out.aux_loss.float()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.gpu_steps):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - start) / args.gpu_steps
        clips = args.gpu_batch / dt
        # Video-side forward multiply-adds per clip (the 400 class texts are encoded once and cached).
        gmacs = model_cost({**cfg, "head": "linear"}).gflops
        mfu = f"{3 * 2 * gmacs * 1e9 * clips / (peak * 1e12):.1%}" if peak else "n/a"
        print(f"{variant:14} {clips:9.1f} {dt * 1e3:9.1f} {gmacs:12.2f} {mfu:>7}")
        del model, opt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(data_dir() / "synth-default"))
    p.add_argument("--variants", nargs="+", default=["baseline", "ila"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--gpu-batch", type=int, default=32)
    p.add_argument("--gpu-steps", type=int, default=20)
    p.add_argument("--skip-cpu", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.skip_cpu:
        cpu_benchmark(args)
    gpu_benchmark(args)


if __name__ == "__main__":
    main()
