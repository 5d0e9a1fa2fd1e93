"""Which kernel settings change a training's digits: a few AdamW steps of every Table 4 row (the embedded default's
model) on fixed inputs, once per setting, each in a fresh process (the settings are read when torch loads).

    python benchmarks/kernel_digits.py [--steps 3] [--rows baseline xclip ila] [--threads 1] [--timing]

Per setting and row it prints a hash of the weights after the steps and the sum of the logits on the inputs; a row
whose hash differs from the first setting's ("as is") took other kernels somewhere. Settings: the process as is and
again (determinism), torch's vectorised kernels forced to AVX2 and to the scalar default (``ATEN_CPU_CAPABILITY``),
oneDNN held to AVX2 (``ONEDNN_MAX_CPU_ISA``), MKL held to AVX2 (``MKL_ENABLE_INSTRUCTIONS``), two threads, and oneDNN
switched off (products by MKL) without and with MKL's conditional reproducibility (``MKL_CBWR``). ``--timing`` adds
ms per step of each setting (median of 12 after 3 warm-up steps; quiet machine only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

SETTINGS = {
    "as is": {},
    "as is, again": {},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL_ENABLE_INSTRUCTIONS=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "2 threads": {"KERNEL_DIGITS_THREADS": "2"},
    "oneDNN off": {"KERNEL_DIGITS_NO_ONEDNN": "1"},
    "oneDNN off, MKL_CBWR=AVX2,STRICT": {"KERNEL_DIGITS_NO_ONEDNN": "1", "MKL_CBWR": "AVX2,STRICT"},
    "oneDNN off, MKL_CBWR=COMPATIBLE": {"KERNEL_DIGITS_NO_ONEDNN": "1", "MKL_CBWR": "COMPATIBLE"},
}
DEFAULT_ROWS = ["baseline", "xclip", "divided_st", "temporal_shift", "ata", "avg_pool", "ila", "ila_released"]


def _one_setting(rows: list[str], steps: int, threads: int, timing: bool) -> dict:
    """In this process: each row's weight hash and logit sum after ``steps`` steps (and ms per step)."""
    import torch

    torch.set_num_threads(int(os.environ.get("KERNEL_DIGITS_THREADS", threads)))
    if os.environ.get("KERNEL_DIGITS_NO_ONEDNN"):
        torch.backends.mkldnn.enabled = False
    return {"capability": torch.backends.cpu.get_cpu_capability(),
            **{row: _row_digits(row, steps, timing) for row in rows}}


def _row_digits(row: str, steps: int, timing: bool) -> dict:
    import torch

    from benchmarks.train_throughput import _embedded_model, training_step_fn

    torch.manual_seed(0)
    model, _ = _embedded_model(row, [f"class {i}" for i in range(20)])
    g = torch.Generator().manual_seed(1)
    video, labels = torch.randn(16, 8, 3, 32, 32, generator=g), torch.randint(0, 20, (16,), generator=g)
    step = training_step_fn(model, torch.optim.AdamW(model.parameters(), lr=1e-3), video, labels)
    for _ in range(steps):
        step()
    with torch.no_grad():
        logits = model.eval()(video).logits
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    out = {"hash": digest[:12], "logit_sum": float(logits.double().sum())}
    if timing:
        model.train()
        times = []
        for _ in range(15):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        out["ms_per_step"] = 1000 * sorted(times[3:])[len(times[3:]) // 2]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rows", nargs="+", default=DEFAULT_ROWS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timing", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_one_setting(args.rows, args.steps, args.threads, args.timing)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = {}
    for name, env in SETTINGS.items():
        cmd = [sys.executable, "-m", "benchmarks.kernel_digits", "--child", "--steps", str(args.steps),
               "--threads", str(args.threads), "--rows", *args.rows] + (["--timing"] if args.timing else [])
        res = subprocess.run(cmd, env={**os.environ, **env}, cwd=root, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"{name}: failed\n{res.stderr[-2000:]}")
        results[name] = json.loads(res.stdout.strip().splitlines()[-1])
    reference = results["as is"]
    for name, got in results.items():
        changed = [r for r in args.rows if got[r]["hash"] != reference[r]["hash"]]
        timing = " ".join(f"{r} {got[r]['ms_per_step']:.0f}ms" for r in args.rows) if args.timing else ""
        print(f"{name:36} capability {got['capability']:8} changed: {', '.join(changed) or 'none':60} {timing}")


if __name__ == "__main__":
    main()
