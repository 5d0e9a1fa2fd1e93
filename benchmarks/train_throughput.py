"""Training throughput: clips/s and the fraction of time spent waiting for data, per model variant.

    python benchmarks/train_throughput.py [--steps 40] [--variants baseline ila] [--workers 1] [--threads 1]
        [--ops] [--gpu-batch 32 128] [--skip-cpu]

Op counts (--ops, CPU): one training step (forward, backward, gradient clipping, AdamW) of the embedded configuration
on synthetic tensors under torch.profiler: top-level aten ops, and of those the ones that compute (views, casts and
bookkeeping left out: on a GPU each compute op is roughly one kernel launch). The ratio to the Baseline is the
CPU-side proxy for how far a variant's step is from costing what its FLOPs say.

CPU part: the real trainer (`ila train`) on the synthetic default preset (generated first if missing) with the
embedded mini-CLIP, 8 frames at 32x32, batch 16, each variant built as the embedded default profile builds it (linear
head, the alignment module's 40 channels); the figures exclude the first optimiser step.
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
import yaml

from ila.config import load_run_config
from ila.data.synth import PRESETS, generate
from ila.engine.train import build_optimizer, train
from ila.models import create_model
from ila.models.flops import model_cost
from ila.paths import resolve_root, synth_root

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
                f"data.frame_cache_mb={args.frame_cache_mb}",
                *embedded_overrides(variant), f"train.steps={args.steps}",
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


# Ops that only change metadata (no kernel on a GPU).
VIEW_OPS = {
    "aten::view", "aten::reshape", "aten::t", "aten::permute", "aten::transpose", "aten::unsqueeze", "aten::squeeze",
    "aten::select", "aten::slice", "aten::expand", "aten::detach", "aten::alias", "aten::as_strided", "aten::unbind",
    "aten::split", "aten::chunk", "aten::narrow", "aten::flatten", "aten::unflatten", "aten::_unsafe_view",
    "aten::contiguous", "aten::empty", "aten::empty_like", "aten::result_type", "aten::item",
    "aten::_local_scalar_dense", "aten::is_nonzero", "aten::to", "aten::lift_fresh", "aten::detach_",
    "aten::new_empty_strided", "aten::empty_strided",
}  # fmt: skip


def _profile() -> dict:
    return yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/config/default.yaml").read_text())


def embedded_overrides(variant: str) -> list[str]:
    """Model overrides that build a variant as the embedded default profile does (its per-operator options, e.g.
    the alignment module's 40 channels, and its linear head)."""
    profile = _profile()
    over = ["model.backbone=ILA-mini-32", "model.head=linear", f"model.variant={variant}"]
    operator = load_run_config(None, over).model.operator
    op_args = profile.get("operator_args", {}).get(operator)
    return over + ([f"model.profile_operator_args={op_args}"] if op_args else [])


def _embedded_model(variant: str, classes: list[str]):
    cfg = load_run_config(None, embedded_overrides(variant))
    return create_model(cfg.model, classes), cfg


def forward_backward_update(model, opt, video, labels, autocast_device=None, cache_enabled=True) -> None:
    """One optimiser step as the trainer takes it: (bf16 autocast) forward, loss, backward, clipping, AdamW."""
    with torch.autocast(autocast_device or "cpu", dtype=torch.bfloat16, enabled=autocast_device is not None,
                        cache_enabled=cache_enabled):
        out = model(video)
        loss = torch.nn.functional.cross_entropy(out.logits.float(), labels) + out.aux_loss.float()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True if autocast_device == "cuda" else None)
    opt.step()


def training_step_fn(model, opt, video, labels, autocast_device=None):
    def step():
        forward_backward_update(model, opt, video, labels, autocast_device)
        opt.zero_grad(set_to_none=True)

    return step


def count_ops(step) -> tuple[int, int]:
    """Top-level aten ops of one call of ``step``, and how many of them compute."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    top = [e.name for e in prof.events()
           if e.name.startswith("aten::") and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::"))]
    return len(top), sum(1 for n in top if n not in VIEW_OPS)


def ops_benchmark(args) -> None:
    torch.set_num_threads(args.threads)
    print(f"\nCPU op counts: one training step of the embedded config (ILA-mini-32, T=8, 32x32, batch 16, synthetic "
          f"tensors), {args.threads} torch threads; ms/step = median of 10 after 3 warm-up steps")
    print(f"{'variant':14} {'aten ops':>9} {'compute':>8} {'x Base':>7} {'ms/step':>8} {'x Base':>7}")
    classes = [f"class {i}" for i in range(20)]
    base = None
    for variant in args.variants:
        torch.manual_seed(0)
        model, cfg = _embedded_model(variant, classes)
        model.train()
        opt = build_optimizer(model, cfg)
        g = torch.Generator().manual_seed(0)
        step = training_step_fn(model, opt, torch.randn(16, 8, 3, 32, 32, generator=g),
                                torch.randint(0, 20, (16,), generator=g))
        for _ in range(3):
            step()
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        ms = sorted(times)[len(times) // 2] * 1e3
        total, compute = count_ops(step)
        if variant == "baseline":
            base = (compute, ms)
        ratios = (f"{compute / base[0]:7.2f}", f"{ms / base[1]:7.2f}") if base else ("      –",) * 2
        print(f"{variant:14} {total:9d} {compute:8d} {ratios[0]} {ms:8.1f} {ratios[1]}")
        del model, opt


def count_cuda_kernels(step) -> int:
    """GPU kernels (and copies) launched by one call of ``step``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def maybe_compile(model, enabled: bool):
    """torch.compile when asked and it works here; otherwise the eager model, saying why."""
    if not enabled:
        return model, "eager"
    try:
        return torch.compile(model), "compiled"
    except Exception as exc:  # noqa: BLE001 - any backend failure falls back to eager
        print(f"  torch.compile unavailable ({type(exc).__name__}: {str(exc)[:120]}); eager")
        return model, "eager"


def graphed_training_step(model, opt_groups, video, labels):
    """The whole training step (forward, backward, clipping, fused AdamW) captured once as a CUDA graph and replayed:
    one launch per step instead of thousands. Static shapes; the optimiser must be capturable."""
    opt = torch.optim.AdamW(opt_groups, betas=(0.9, 0.98), fused=True, capturable=True)

    def body():  # autocast's weight cache cannot live across graph replays
        forward_backward_update(model, opt, video, labels, "cuda", cache_enabled=False)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph (allocator, cuDNN plans, optimiser state)
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        body()
    return graph.replay


def _mean_step_seconds(step, steps: int) -> float:
    """Mean wall time of ``steps`` calls of ``step``, the GPU synchronised before and after (its peak memory counter
    reset first, so that the peak printed is the timed steps')."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def gpu_benchmark(args) -> None:
    if not torch.cuda.is_available():
        print("\nGPU: CUDA not available here; the paper-configuration benchmark is skipped.")
        return
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(f"\nGPU: {name}, ViT-B/32, T=8, 224x224, synthetic input, bf16 autocast, fused AdamW; "
          f"ms/step = mean of {args.gpu_steps} after 3 warm-up steps")
    print(f"{'variant':14} {'batch':>5} {'mode':>8} {'clips/s':>9} {'ms/step':>9} {'x Base':>7} {'kernels':>8} "
          f"{'GFLOPs/clip':>12} {'MFU':>7} {'peak GiB':>9}")
    classes = [f"class {i}" for i in range(400)]
    base: dict[int, float] = {}
    for variant in args.variants:
        for batch in args.gpu_batch:
            cfg = {"variant": variant, "backbone": "ViT-B-32", "num_frames": 8}
            torch.manual_seed(0)
            model = create_model(cfg, classes).to(dev).train()
            opt = build_optimizer(model, load_run_config(None, []))
            video = torch.randn(batch, 8, 3, 224, 224, device=dev)
            labels = torch.randint(0, 400, (batch,), device=dev)
            runner, mode = maybe_compile(model, args.compile)
            step = training_step_fn(runner, opt, video, labels, autocast_device="cuda")
            if args.cuda_graph:
                groups = [{"params": g["params"], "lr": g["lr"], "weight_decay": g["weight_decay"]}
                          for g in opt.param_groups]
                try:
                    step, mode = graphed_training_step(model, groups, video, labels), "graph"
                except Exception as exc:  # noqa: BLE001 - e.g. ATA's Hungarian step cannot be captured
                    print(f"  {variant}: CUDA graph capture failed ({type(exc).__name__}: {str(exc)[:120]}); eager")
                    torch.cuda.synchronize()
            try:
                for _ in range(3):
                    step()
            except Exception as exc:  # noqa: BLE001 - a compile failure shows at the first call
                print(f"  {variant}: {mode} step failed ({type(exc).__name__}: {str(exc)[:160]})")
                if mode != "compiled":
                    del model, opt, runner, step
                    continue
                runner, mode = model, "eager"
                step = training_step_fn(runner, opt, video, labels, autocast_device="cuda")
                for _ in range(3):
                    step()
            dt = _mean_step_seconds(step, args.gpu_steps)
            kernels = count_cuda_kernels(step)
            clips = batch / dt
            if variant == "baseline":
                base[batch] = dt
            rel = f"{dt / base[batch]:7.2f}" if batch in base else "      –"
            # Video-side forward multiply-adds per clip (the 400 class texts are encoded once and cached).
            gmacs = model_cost({**cfg, "head": "linear"}).gflops
            mfu = f"{3 * 2 * gmacs * 1e9 * clips / (peak * 1e12):.1%}" if peak else "n/a"
            gib = torch.cuda.max_memory_allocated() / 2**30
            print(f"{variant:14} {batch:5d} {mode:>8} {clips:9.1f} {dt * 1e3:9.1f} {rel} {kernels:8d} {gmacs:12.2f} "
                  f"{mfu:>7} {gib:9.1f}", flush=True)
            del model, opt, runner, step
            torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(resolve_root(synth_root("default"))))
    p.add_argument("--variants", nargs="+", default=["baseline", "ila"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--frame-cache-mb", type=int, default=_profile()["run"]["data"].get("frame_cache_mb", 0),
                   help="data.frame_cache_mb of the CPU trainer run (default: the embedded profile's)")
    p.add_argument("--gpu-batch", type=int, nargs="+", default=[32])
    p.add_argument("--compile", action="store_true", help="GPU: try torch.compile (falls back to eager)")
    p.add_argument("--cuda-graph", action="store_true", help="GPU: capture the whole step as a CUDA graph")
    p.add_argument("--gpu-steps", type=int, default=20)
    p.add_argument("--skip-cpu", action="store_true", help="skip the CPU trainer run (and the op counts)")
    p.add_argument("--ops", action="store_true", help="only the CPU op counts (no trainer run, no GPU)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.ops:
        ops_benchmark(args)
        return
    if not args.skip_cpu:
        cpu_benchmark(args)
        ops_benchmark(args)
    gpu_benchmark(args)


if __name__ == "__main__":
    main()
