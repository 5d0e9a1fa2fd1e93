"""How much a trained ILA run's output depends on its temporal path: the logit change when each validation clip is
played backwards, the change when the MI tokens are left out of the spatial attention, and how widely the
interactive points spread over clips.

    python analysis/ila_probe.py results/table4/ila/seed0 [--clips 64]

Reads the run's ``config.yaml`` and ``checkpoints/last.pt``; deterministic test views (first temporal clip). A model
whose logits hardly move when the clip is reversed cannot tell time-reversed twins apart, whatever its points do.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ila.config import load_run_config
from ila.data.dataset import build_dataset, collate_clips
from ila.engine import checkpoint as ckpt
from ila.models import create_model
from ila.models.operators.base import OperatorOutput


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--clips", type=int, default=64, help="validation clips to probe (spread over all classes)")
    args = p.parse_args()
    cfg = load_run_config(args.run_dir / "config.yaml")
    if cfg.model.operator not in ("ila", "ila_released"):
        raise SystemExit(f"{args.run_dir}: model.operator is {cfg.model.operator!r}; this probe is for ILA runs")
    val = build_dataset(cfg.data, "val", train=False, seed=cfg.seed)
    model = create_model(cfg.model, val.class_names)
    model.load_state_dict(ckpt.evaluated_weights(ckpt.load(args.run_dir / "checkpoints" / "last.pt", "cpu")))
    model.eval()
    # Every k-th clip of the split, so the probe sees all classes, not only the first ones of the list; only
    # those clips are decoded.
    step = max(1, len(val) // args.clips)
    picked = [val[i] for i in range(0, len(val), step)][: args.clips]
    video = collate_clips(picked)["video"][:, 0]  # the first temporal view

    points: dict[str, list[torch.Tensor]] = {}
    hooks = [op.align.register_forward_hook(lambda m, i, out, k=k: points.setdefault(k, []).append(out[0]))
             for k, op in model.video_vit.operators.items() if hasattr(op, "align")]
    with torch.no_grad():
        logits = model(video).logits
        reversed_logits = model(video.flip(1)).logits
    for h in hooks:
        h.remove()
    drop = [op.register_forward_hook(lambda m, i, out: OperatorOutput(out.x, None, out.aux_loss))
            for op in model.video_vit.operators.values()]
    with torch.no_grad():
        without_tokens = model(video).logits
    for h in drop:
        h.remove()

    scale = logits.std().item()
    print(f"{args.run_dir}: {len(video)} clips, logit std {scale:.4f}")
    print(f"  mean |logit change|, clip reversed:      {(logits - reversed_logits).abs().mean().item():.4f}")
    print(f"  mean |logit change|, MI tokens left out: {(logits - without_tokens).abs().mean().item():.4f}"
          + ("" if cfg.model.operator == "ila" else "  (the release injects additively; this drops its extras only)"))
    for k, (forward, backward) in points.items():
        print(f"  block {k}: interactive points mean |p| {forward.abs().mean().item():.3f}, spread over clips "
              f"{forward.std(0).mean().item():.3f}, moved by reversal {(forward - backward).abs().mean().item():.3f}")


if __name__ == "__main__":
    main()
