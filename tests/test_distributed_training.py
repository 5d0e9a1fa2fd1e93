"""Training under torchrun (2 gloo ranks: DDP with ``no_sync`` gradient accumulation) and under bf16 autocast, on
the CPU, on the tiny synthetic preset with the mini-CLIP (``ILA-mini-32``) and the ILA variant.

The DDP check compares a 2-rank run against a 1-rank run that sees the same clips in every optimiser step: the
gradients each optimiser step starts from, and the final weights of ``checkpoints/last.pt``. Probes installed in
each process (this file is also the torchrun worker: ``python -m torch.distributed.run ... <this file> KEY=VALUE...``)
record which clips every micro-batch held, how many gradient buckets DDP all-reduced during each micro-batch (a
pass-through comm hook), how often ``no_sync`` was entered, and the gradients before every optimiser step.

The bf16 check runs ``ila train ... train.precision=bf16`` for 2 steps and the evaluation, and reads the precision the
steps ran in from the run's own record (``train_precision`` in train_summary.json and metrics.json).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

STEPS = 3


def _overrides(root, out, *extra) -> list[str]:
    return [
        f"data.root={root}", "data.input_size=32", "data.num_frames=8", "data.hflip=remap", "data.test_clips=1",
        "model.variant=ila", "model.backbone=ILA-mini-32", "model.head=linear", "model.operator_args.hidden=16",
        f"train.steps={STEPS}", "train.mixup=0", "train.cutmix=0", "train.label_smoothing=0", "train.optim.lr=2e-3",
        "train.optim.warmup_steps=0", "train.log_every=1", "train.threads=1", "tracking.enabled=false",
        f"output_dir={out}", *extra,
    ]  # fmt: skip


# --------------------------------------------------------------------------- probes (in each training process)


@contextmanager
def _probes(record: dict):
    """Patch the trainer so that ``record`` collects, per process: ``micro`` — for every micro-batch, (last micro-batch
    of its step?, gradient buckets all-reduced while it ran, clip indices); ``no_sync`` — entries into DDP's
    ``no_sync``; ``grads`` — the parameters' gradients before every optimiser step."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from ila.engine import train as train_mod

    record.update(micro=[], no_sync=0, grads=[], buckets=0)
    batches: list[list[int]] = []
    real = {name: getattr(train_mod, name) for name in
            ("DistributedDataParallel", "iterate_batches", "_forward_backward", "_optimizer_step")}

    def counting_allreduce(state, bucket):
        record["buckets"] += 1
        # DDP's own averaging (divide by the world size, all-reduce): the built-in path's arithmetic, which multiplies
        # by 1/2 while copying into the bucket; both exact in float32.
        return default_hooks.allreduce_hook(state, bucket)

    class CountingDDP(real["DistributedDataParallel"]):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.register_comm_hook(dist.group.WORLD, counting_allreduce)

        @contextmanager
        def no_sync(self):
            record["no_sync"] += 1
            with super().no_sync():
                yield

    def iterate_batches(loader):
        for batch in real["iterate_batches"](loader):
            batches.append(batch["index"].tolist())
            yield batch

    def forward_backward(run, video, labels, last_micro):
        before = record["buckets"]
        out = real["_forward_backward"](run, video, labels, last_micro)
        record["micro"].append((last_micro, record["buckets"] - before, batches[-1]))
        return out

    def optimizer_step(run):
        record["grads"].append({n: p.grad.detach().clone() for n, p in run.model.named_parameters()
                                if p.grad is not None})
        real["_optimizer_step"](run)

    patched = {"DistributedDataParallel": CountingDDP, "iterate_batches": iterate_batches,
               "_forward_backward": forward_backward, "_optimizer_step": optimizer_step}
    for name, value in patched.items():
        setattr(train_mod, name, value)
    try:
        yield record
    finally:
        for name, value in real.items():
            setattr(train_mod, name, value)


def _train_with_probes(overrides: list[str]) -> dict:
    """Train (no evaluation) with the probes on; each rank writes its record to ``<output_dir>/probe_rank<r>.pt``."""
    from ila.config import load_run_config
    from ila.engine.train import train

    cfg = load_run_config(None, overrides)
    rank = int(os.environ.get("RANK", "0"))
    with _probes({}) as record:
        train(cfg, run_eval=False)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    torch.save(record, Path(cfg.output_dir) / f"probe_rank{rank}.pt")
    return record


# --------------------------------------------------------------------------- DDP + accumulation


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    from ila.engine import checkpoint as ckpt

    return ckpt.load(out / "checkpoints" / "last.pt")["model"]


@pytest.mark.slow
def test_two_rank_ddp_with_accumulation_matches_one_rank(tiny_dataset, tmp_path):
    """2 ranks x batch 1 x accum 2 == 1 rank x batch 1 x accum 4, step for step.

    Which clips: an epoch's order is DistributedSampler's (seed, epoch) permutation ``perm``; rank ``r`` of 2 takes
    ``perm[r::2]`` and cuts it into batches, so with batch 1 micro-batch ``b`` of rank ``r`` is ``perm[2b + r]`` and
    optimiser step ``s`` (micro-batches 2s, 2s+1 of both ranks) covers ``perm[4s:4s+4]``; one rank with batch 1
    and accum 4 takes ``perm[4s:4s+4]`` too, with the same augmentation (a clip's randomness is a function of
    (seed, epoch, index) only).

    Why batch 1: the alignment module has BatchNorm, and in training mode it normalises with the statistics of the
    micro-batch it sees. With several clips per rank, a rank's micro-batch (``perm[0], perm[2], ...``) groups clips
    unlike any 1-rank micro-batch, so the two runs would compute different functions; with one clip per micro-batch
    both normalise each clip with its own statistics, and the step's gradient is the mean of the same four per-clip
    gradients in both runs. The BatchNorm running statistics are not compared: they do not enter a training forward,
    and under DDP rank 0 broadcasts its own buffers (updated by its clips only) before every forward, so they
    legitimately differ from the 1-rank run's (which saw all four clips of each step).
    """
    one, two = tmp_path / "one_rank", tmp_path / "two_ranks"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           *_overrides(tiny_dataset, two, "data.batch_size=1", "train.accum_steps=2")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-5000:]
    single = _train_with_probes(_overrides(tiny_dataset, one, "data.batch_size=1", "train.accum_steps=4"))
    ranks = [torch.load(two / f"probe_rank{r}.pt", weights_only=False) for r in (0, 1)]

    # The premise: each optimiser step saw the same clips in both runs, 4 distinct clips a step.
    per_step = [sorted(i for r in ranks for _, _, idx in r["micro"][2 * s: 2 * s + 2] for i in idx)
                for s in range(STEPS)]
    assert per_step == [sorted(i for _, _, idx in single["micro"][4 * s: 4 * s + 4] for i in idx)
                        for s in range(STEPS)]
    assert all(len(set(clips)) == 4 for clips in per_step)

    # Accumulation used no_sync: on each rank the first micro-batch of a step all-reduced nothing, the last one
    # all-reduced the gradient buckets (1 on the first step, then as many as DDP rebuilt them into), and no_sync
    # was entered once per step.
    for r in ranks:
        assert [last for last, _, _ in r["micro"]] == [False, True] * STEPS
        counts = [n for _, n, _ in r["micro"]]
        assert counts[0::2] == [0] * STEPS and min(counts[1::2]) > 0, counts
        assert r["no_sync"] == STEPS

    # The gradients each optimiser step started from: averaged across ranks (both ranks hold the very same values),
    # and equal to the 1-rank run's mean over the same clips. Compared directly because AdamW's update is nearly
    # invariant to the gradient's scale: a loss divided by the wrong count would hardly show in the weights.
    # Tolerance: the two runs add the same per-clip gradients in another order and scaling (per rank l1/2 + l2/2, then
    # / 2 and summed across ranks, against l1/4 + ... + l4/4), so they differ by float32 rounding, a few ulps of the
    # largest terms (measured: about 1e-7 of the step's largest gradient entry); 1e-5 of it leaves 100x margin, while
    # a gradient left unaveraged or scaled wrongly is off by the order of the gradient itself. That holds while both
    # runs hold the same weights (steps 1 and 2 here); after AdamW has turned rounding noise into weight differences
    # (below) the gradients drift apart by more: measured up to 1.7e-5 of the largest entry at step 3 (ILA's
    # interaction convolutions), so later steps get 1e-4, still far below a wrongly scaled gradient.
    for s in range(STEPS):
        g0, g1, g = ranks[0]["grads"][s], ranks[1]["grads"][s], single["grads"][s]
        assert g0.keys() == g.keys() and len(g) > 100
        scale = max(v.abs().max().item() for v in g.values())
        tolerance = (1e-5 if s < 2 else 1e-4) * scale
        for k in g:
            torch.testing.assert_close(g0[k], g1[k], rtol=0, atol=0, msg=f"step {s + 1}, {k}: the ranks disagree")
            torch.testing.assert_close(g0[k], g[k], rtol=0, atol=tolerance, msg=f"step {s + 1}, {k}")

    # The checkpoint rank 0 wrote holds the same weights as the 1-rank run's. Tolerance: AdamW moves a weight by up to
    # about its lr a step (2e-3 for the CLIP weights, 2e-2 for new ones). Where a gradient is zero in exact arithmetic
    # or nearly so (attention key biases, which softmax ignores; conv biases right before a BatchNorm, which subtracts
    # them out; the point convolutions behind the zero-initialised point head) the float32 gradient is mostly rounding
    # noise (~1e-11) that differs between the runs, and AdamW, dividing by the gradient's own magnitude plus eps
    # (1e-8), turns it into steps far above the noise: measured up to 7e-6 after 3 steps, all on such weights. atol
    # 1e-4 (lr / 20) covers that, while a step from wrongly averaged gradients moves weights by the order of lr.
    # The alignment modules are left out: their convolutions sit behind the zero-initialised point head, so their
    # gradients start as rounding noise that AdamW (dividing by the gradient's own magnitude plus eps) turns into steps
    # of up to a fraction of their lr (measured up to 6e-3 after 3 steps with the per-part initialisation of
    # ila.models.video_clip.part_rng); the gradient comparison above covers them.
    a, b = _final_weights(two), _final_weights(one)
    assert a.keys() == b.keys()
    compared = [k for k in a if "running_" not in k and "num_batches_tracked" not in k  # BatchNorm buffers: above
                and not k.startswith("video_vit.operators.")]
    assert len(compared) > 100
    for k in compared:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-4, msg=k)


# --------------------------------------------------------------------------- bf16


@pytest.mark.slow
def test_bf16_training_on_the_cpu_runs_records_its_precision_and_evaluates(tiny_dataset, tmp_path, monkeypatch,
                                                                           capsys):
    """``ila train ... train.precision=bf16`` on the CPU: 2 steps under bf16 autocast, then the evaluation."""
    from ila.cli import main
    from ila.engine import train as train_mod
    from ila.engine.runs import load_trained

    seen: set = set()  # (output dtype, autocast on, autocast dtype) of every Linear in a training forward
    real_create_model = train_mod.create_model

    def create_model_with_hooks(*args, **kwargs):
        model = real_create_model(*args, **kwargs)

        def on_linear(module, inputs, output):
            if module.training:  # training steps only, not the evaluation after them
                seen.add((output.dtype, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))

        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.register_forward_hook(on_linear)
        return model

    monkeypatch.setattr(train_mod, "create_model", create_model_with_hooks)
    out = tmp_path / "bf16"
    overrides = _overrides(tiny_dataset, out, "data.batch_size=4", "train.precision=bf16", "train.steps=2")
    assert main(["train", *overrides]) == 0
    assert "top1=" in capsys.readouterr().out
    # Every Linear of the training forwards computed in bf16 under CPU autocast.
    assert seen == {(torch.bfloat16, True, torch.bfloat16)}, seen

    # The run records the precision it trained in (not only the one asked for), and finite losses.
    summary = json.loads((out / "train_summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert summary["train_precision"] == metrics["train_precision"] == "bf16" and summary["train_steps"] == 2
    losses = [float(line.split("train/loss=")[1].split()[0]) for line in (out / "train.log").read_text().splitlines()
              if "train/loss=" in line]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    assert metrics["num_videos"] == 36 and math.isfinite(metrics["top1"]) and math.isfinite(metrics["top5"])

    # The checkpoint loads (verified, weights-only) into the run's model, with finite fp32 weights.
    from ila.config import load_run_config
    from ila.engine import checkpoint as ckpt

    state = ckpt.load(out / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state["model"].values()
               if v.is_floating_point())
    model, _ = load_trained(load_run_config(out / "config.yaml"))
    assert not model.training


def test_fp32_is_what_auto_precision_records_on_the_cpu(tiny_dataset, tmp_path):
    """The other side of the record: 'auto' on the CPU trains in fp32, and says so."""
    from ila.config import load_run_config
    from ila.engine.train import train

    out = tmp_path / "auto"
    train(load_run_config(None, _overrides(tiny_dataset, out, "data.batch_size=2", "train.steps=1")), run_eval=False)
    assert json.loads((out / "train_summary.json").read_text())["train_precision"] == "fp32"

if __name__ == "__main__":  # a torchrun worker: python -m torch.distributed.run ... <this file> OVERRIDES...
    _train_with_probes(sys.argv[1:])
