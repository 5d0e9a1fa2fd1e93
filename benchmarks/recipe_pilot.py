"""Recipe pilot: how far a recipe's trainings agree, measured on a few rows before a whole table is spent on it.

    python benchmarks/recipe_pilot.py [--steps 400 800] [--rows baseline xclip ata] [--seeds 0 1 2] [--ema 0.99]
        [--table table4] [--workers 2] [--out results/pilot] [--project .] [--design 5:1800 6:1800]

Each (steps, row, seed) is trained with the workflow's own run config of that table row under the embedded default
(ila.plan: the same data, weights and recipe as `snakemake`), only `train.steps` and `train.ema_decay` replaced, and
evaluated twice: on the last step's weights ("last") and on their moving average ("average"). Then, per recipe (steps
x weights) and per comparison (each row against the first of --rows), seed paired with seed and video with video
(ila.stats): the difference, the seed-to-seed SD of the difference, the video and seed-by-video terms, the MDE this
pilot measures, and the MDE projected at each --design `seeds:videos` (VarianceComponents.mde_at, with seeds - 1
degrees of freedom: an upper bound). Choose the recipe on rows you do not hope to see win, and every row of the
table then gets it.

Needs the embedded default's dataset and pretrained mini-CLIP (any table run makes them, or
`snakemake --cores all data/synth-default/val.txt resources/pretrained/ILA-mini-32.pt`). Runs finished before are
kept: rerun to add seeds or steps. Timing: one training takes 1.5-3 minutes per core at 400 steps.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ila.metrics import RunMetrics
from ila.plan import Plan, load_profile, validate_profile
from ila.stats import paired_difference

WEIGHTS = ("last", "average")


def _job_config(plan: Plan, project: Path, table: str, row: str, seed: int, steps: int, ema: float,
                out: Path) -> dict:
    config = plan.job(table, row, seed).config
    config["data"]["root"] = str(project / config["data"]["root"])
    config["model"]["pretrained"] = str(project / config["model"]["pretrained"])
    config["train"].update(steps=steps, ema_decay=ema, checkpoint_every=steps, threads=1)
    return {**config, "seed": seed, "tracking": {"enabled": False}, "output_dir": str(out)}


def _train_and_evaluate(args: tuple) -> str:
    """One pilot run: train, then evaluate the last weights and the average (each into its own metrics.json)."""
    import torch

    from ila.config import resolve_run_config
    from ila.engine import checkpoint as ckpt
    from ila.engine.distributed import DistInfo
    from ila.engine.evaluate import run_evaluation, write_metrics
    from ila.engine.runs import load_trained
    from ila.engine.train import train

    config, row, seed, steps, out = args
    run_dir = Path(config["output_dir"])
    targets = {w: out / f"steps{steps}" / w / row / f"seed{seed}" for w in WEIGHTS}
    if all((d / "metrics.json").exists() for d in targets.values()):
        return f"{row} seed {seed}, {steps} steps: done before"
    cfg = resolve_run_config(config)
    start = time.perf_counter()
    train(cfg, resume=True, run_eval=False)
    seconds = time.perf_counter() - start
    state = ckpt.load(run_dir / "checkpoints" / "last.pt")
    model, _ = load_trained(cfg)
    line = f"{row} seed {seed}, {steps} steps: trained in {seconds:.0f} s;"
    for weights, state_dict in zip(WEIGHTS, (state["model"], state["ema"]), strict=True):
        model.load_state_dict(state_dict)
        metrics = run_evaluation(model, cfg, DistInfo(0, 1, 0, torch.device("cpu")))
        targets[weights].mkdir(parents=True, exist_ok=True)
        write_metrics(metrics, targets[weights])
        line += f" top-1 {100 * metrics['top1']:.2f} ({weights})"
    return line


def _correct(path: Path) -> tuple[list[str], np.ndarray]:
    m = RunMetrics.read(path)
    pred, label = m.per_video_column("pred"), m.per_video_column("label")
    return m.per_video_column("video"), 100.0 * np.equal(pred, label)


def summarise(out: Path, steps: list[int], rows: list[str], seeds: list[int], designs: list[tuple[int, int]]) -> None:
    """Print each recipe's per-row means and each comparison's error terms, measured and projected MDE."""
    for n in steps:
        for weights in WEIGHTS:
            outcome = {}
            for row in rows:
                videos_and_hits = [_correct(out / f"steps{n}" / weights / row / f"seed{s}" / "metrics.json")
                                   for s in seeds]
                if len({tuple(v) for v, _ in videos_and_hits}) != 1:
                    raise SystemExit(f"{out}: {row}'s seeds were evaluated on different videos")
                outcome[row] = np.stack([hits for _, hits in videos_and_hits])
            means = ", ".join(f"{r} {outcome[r].mean():.2f}" for r in rows)
            print(f"\n{n} steps, {weights} weights ({len(seeds)} seeds): top-1 {means}")
            for row in rows[1:]:
                d = paired_difference(outcome[row], outcome[rows[0]])
                c = d.components
                projected = " ".join(f"{s}x{v}: {c.mde_at(s, v):.2f}" for s, v in designs)
                print(f"  {row} - {rows[0]}: {d.diff:+.2f}, seed SD {np.sqrt(c.seed):.2f}, video term "
                      f"{np.sqrt(c.video / c.n_videos):.2f}, seed-by-video term "
                      f"{np.sqrt(c.residual / (c.n_seeds * c.n_videos)):.2f}, MDE {d.mde:.2f} | projected "
                      f"(seeds x videos) {projected}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[400, 800])
    p.add_argument("--rows", nargs="+", default=["baseline", "xclip", "ata"], help="the first is the reference")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ema", type=float, default=0.99, help="the average's decay (timm ModelEmaV3, warmed up)")
    p.add_argument("--table", default="table4")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="trainings at once, one thread each")
    p.add_argument("--out", type=Path, default=Path("results/pilot"))
    p.add_argument("--project", type=Path, default=Path("."), help="where data/ and resources/ are")
    p.add_argument("--design", nargs="+", default=["5:1800", "6:1800"], help="seeds:videos to project the MDE at")
    args = p.parse_args(argv)
    if len(args.seeds) < 2:
        p.error("--seeds: at least two, or there is no seed-to-seed spread to measure")
    designs = [tuple(int(x) for x in d.split(":")) for d in args.design]
    plan, out = Plan(validate_profile(load_profile())), args.out.resolve()
    jobs = [(_job_config(plan, args.project.resolve(), args.table, row, seed, n, args.ema,
                         out / f"steps{n}" / "runs" / row / f"seed{seed}"), row, seed, n, out)
            for n in args.steps for seed in args.seeds for row in args.rows]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for line in pool.map(_train_and_evaluate, jobs):
            print(line, flush=True)
    summarise(out, args.steps, args.rows, args.seeds, designs)


if __name__ == "__main__":
    main()
