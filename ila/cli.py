"""The ``ila`` command: one entry point, a subcommand per stage."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time


def _add_synth(sub: argparse._SubParsersAction) -> None:
    from ila.data.synth import PRESETS, SynthSpec

    p = sub.add_parser(
        "synth",
        help="generate the synthetic video benchmark",
        description="Generate the synthetic video benchmark (H.264 MP4 + Kinetics-format lists). "
        "Presets: " + "; ".join(f"{k}: {v}" for k, v in PRESETS.items()),
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--out", help="output directory (default: data/synth-<preset>)")
    p.add_argument("--workers", type=int, default=None, help="encoding processes (default: all cores)")
    for f in dataclasses.fields(SynthSpec):
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=str if f.type == "str" else int,
                       default=None, help=f"override the preset's {f.name}")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from ila.data.synth import PRESETS, generate
    from ila.paths import data_dir

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PRESETS[args.preset])
                 if getattr(args, f.name) is not None}
    spec = dataclasses.replace(PRESETS[args.preset], **overrides)
    out = args.out or str(data_dir() / f"synth-{args.preset}")
    start = time.perf_counter()
    try:
        spec.validate()
    except ValueError as exc:
        print(f"ila synth: {exc}", file=sys.stderr)
        return 2
    generate(spec, out, workers=args.workers)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return 0


def _add_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flops",
        help="GFLOPs per view and parameter counts of model variants",
        description="Multiply-adds per view (one video [1,T,3,H,W] + one text, fvcore convention), counted on the "
        "meta device, and parameter counts.",
    )
    p.add_argument("--variant", action="append", help="model variant (repeatable; default: all registered)")
    p.add_argument("--backbone", default="ViT-B-32")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=_run_flops)


def _run_flops(args: argparse.Namespace) -> int:
    import json

    from ila.config import apply_overrides
    from ila.models.flops import model_cost
    from ila.variants import list_variants

    variants = args.variant or list_variants()
    if not args.json:
        print(f"{'variant':16} {'GFLOPs/view':>12} {'params (M)':>11} {'trainable (M)':>14} {'operator (M)':>13}")
    for v in variants:
        cfg = apply_overrides({"variant": v, "backbone": args.backbone, "num_frames": args.frames}, args.set)
        cost = model_cost(cfg)
        if args.json:
            print(json.dumps({"variant": v, **dataclasses.asdict(cost)}))
        else:
            print(f"{v:16} {cost.gflops:12.2f} {cost.params_total / 1e6:11.2f} {cost.params_trainable / 1e6:14.2f} "
                  f"{cost.params_operator / 1e6:13.2f}")
    return 0


def _add_run_commands(sub: argparse._SubParsersAction) -> None:
    for name, helptext in (("train", "train a run, then evaluate it"), ("evaluate", "evaluate a run's checkpoint")):
        p = sub.add_parser(name, help=helptext, description=f"{helptext}. Config: a YAML file plus key=value "
                           "overrides (e.g. train.steps=100 model.variant=ila); the resolved config is saved in "
                           "the run's output_dir. Use torchrun --nproc_per_node N -m ila.cli ... for several GPUs.")
        p.add_argument("config", nargs="?", help="YAML run config")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
        if name == "train":
            p.add_argument("--no-resume", dest="resume", action="store_false",
                           help="start from scratch even if the run has a checkpoint")
            p.add_argument("--skip-eval", action="store_true", help="train only (the workflow evaluates separately)")
        else:
            p.add_argument("--checkpoint", help="checkpoint file (default: <output_dir>/checkpoints/last.pt)")
            p.add_argument("--cost-at", action="append", default=[], metavar="BACKBONE:FRAMES[:HEAD]",
                           help="also record GFLOPs/params at this config in metrics.json (repeatable); HEAD "
                                "(text|linear) is the head to count there, by default the run's")
        p.set_defaults(func=_run_train if name == "train" else _run_evaluate)


def _load(args: argparse.Namespace):
    from ila.config import load_run_config

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not config.endswith((".yaml", ".yml")):
        config, overrides = None, [config, *overrides]
    return load_run_config(config, overrides)


def _run_train(args: argparse.Namespace) -> int:
    from ila.engine.train import train

    metrics = train(_load(args), resume=args.resume, run_eval=not args.skip_eval)
    if "top1" in metrics:
        print(f"top1={metrics['top1']:.4f} top5={metrics['top5']:.4f} videos={metrics['num_videos']}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from ila.engine.train import evaluate

    cost_at = []
    for item in args.cost_at:
        head = None
        rest, _, last = item.rpartition(":")
        if last in ("text", "linear"):
            item, head = rest, last
        backbone, _, frames = item.rpartition(":")
        if not backbone or not frames.isdigit():
            print(f"ila evaluate: --cost-at expects BACKBONE:FRAMES[:text|linear], got {item!r}", file=sys.stderr)
            return 2
        cost_at.append((backbone, int(frames), head))
    metrics = evaluate(_load(args), args.checkpoint, cost_at)
    print(f"top1={metrics['top1']:.4f} top5={metrics['top5']:.4f} videos={metrics['num_videos']}")
    return 0


def _add_emd(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emd", help="Table 5: adjacent-frame Earth Mover's Distance of a trained run",
                       description="Mean exact W1 distance between adjacent frames' last-layer patch tokens over the "
                       "validation split (ila.emd says what is computed and which choices are ours); writes "
                       "<output_dir>/emd.json.")
    p.add_argument("config", nargs="?", help="YAML run config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--checkpoint", help="checkpoint file (default: <output_dir>/checkpoints/last.pt)")
    p.add_argument("--out", help="JSON to write (default: <output_dir>/emd.json)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", help="do not L2-normalise tokens")
    p.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean", help="ground metric")
    p.add_argument("--num-itermax", type=int, default=None, help="network-simplex iteration limit")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_run_emd)


def _run_emd(args: argparse.Namespace) -> int:
    import torch

    from ila import emd
    from ila.engine.distributed import job_threads
    from ila.engine.runs import run_dir_of
    from ila.paths import write_json

    torch.set_num_threads(job_threads(args.threads))
    cfg = _load(args)
    options = emd.EMDOptions(args.normalize, args.metric, args.num_itermax or emd.NUM_ITERMAX)
    result = emd.measure_run(cfg, args.checkpoint, options)
    out = write_json(result, args.out or run_dir_of(cfg) / "emd.json")
    print(f"emd={result['emd']:.4f} videos={result['num_videos']} -> {out}")
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain-clip", help="pretrain the embedded mini-CLIP on synthetic image-caption pairs")
    p.add_argument("--out", required=True, help="state-dict file to write (a .json summary goes beside it)")
    p.add_argument("--backbone", default="ILA-mini-32")
    p.add_argument("--objective", choices=["contrastive", "supervised"], default="contrastive",
                   help="CLIP's loss on the captions, or one-hot labels (each caption a class) for the image tower")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pool-size", type=int, default=8192)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from ila.pretrain import pretrain_clip

    summary = pretrain_clip(args.out, args.backbone, args.steps, args.batch_size, args.pool_size, args.lr,
                            args.seed, args.threads, objective=args.objective)
    score = next(k for k in summary if k.startswith("heldout_"))
    print(f"wrote {args.out}: {score} {summary[score]:.3f}")
    return 0


def _add_tracking_init(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tracking-init", help="create the MLflow store and experiments before parallel jobs")
    p.add_argument("--experiment", action="append", required=True)
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.set_defaults(func=_run_tracking_init)


def _run_tracking_init(args: argparse.Namespace) -> int:
    from ila.config import TrackingConfig
    from ila.engine.tracking import init_store, tracking_uri

    uri = tracking_uri(TrackingConfig(uri=args.uri))
    for name, exp_id in init_store(uri, args.experiment).items():
        print(f"experiment {name!r} (id {exp_id}) at {uri}")
    return 0


def _add_fetch_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch-weights", help="download a backbone's weights once into a local checkpoint file",
                       description="Download a backbone's pretrained weights (resumably; OpenAI's checked against the "
                       "sha256 in their URL), check they load, and store them as a state dict that training jobs "
                       "load offline. Paper backbones: ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336 (tag openai; "
                       "add -quickgelu to the name, as OpenAI's weights were trained with QuickGELU), and Table 10's "
                       "ViT-B-16-in21k (tags augreg_in21k, orig_in21k: timm's ImageNet-21k ViT-B/16 from the "
                       "Hugging Face Hub).")
    p.add_argument("--backbone", required=True, help="open_clip model name, e.g. ViT-B-32-quickgelu")
    p.add_argument("--tag", default="openai", help="pretrained tag (open_clip's, or augreg_in21k / orig_in21k)")
    p.add_argument("--url", help="fetch this URL (a mirror) instead of the tag's own")
    p.add_argument("--sha256", help="expected sha256 (prefix) of the downloaded file")
    p.add_argument("--retries", type=int, default=5)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_run_fetch_weights)


def _run_fetch_weights(args: argparse.Namespace) -> int:
    from ila.models.backbone import fetch_weights

    try:
        print(f"wrote {fetch_weights(args.backbone, args.tag, args.out, args.url, args.sha256, args.retries)}")
    except ValueError as exc:  # an unknown backbone or tag
        print(f"ila fetch-weights: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from ila.data.preprocess import EncodeSettings  # light: no video stack

    p = sub.add_parser("data", help="fetch, extract, re-encode and list a real dataset (Kinetics-400, SSv2)",
                       description="The steps the workflow's data rules run, one at a time. Layout under --root: "
                       "downloads/<split>/, videos/<split>/, videos_s<N>/<split>/, train.txt, val.txt, labels.csv.")
    steps = p.add_subparsers(dest="step", required=True)
    datasets = ("kinetics400", "ssv2")

    d = steps.add_parser("download", help="Kinetics-400: fetch a split (or the replacement tarball), resumably; "
                         "SSv2: check the user's files")
    d.add_argument("--dataset", choices=datasets, required=True)
    d.add_argument("--root", required=True)
    d.add_argument("--split", default="train", help="train, val, test, or 'replacement' (Kinetics-400)")
    d.add_argument("--base-url", default=None, help="mirror with the CVDF layout (default: the CVDF S3 bucket)")
    d.add_argument("--jobs", type=int, default=4, help="files fetched at once")
    d.add_argument("--verify", choices=("size", "sha256"), default="size",
                   help="how files already downloaded are checked against the manifest")
    d.add_argument("--retries", type=int, default=5)
    d.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")

    e = steps.add_parser("extract", help="extract the downloaded archives into videos/<split>/")
    e.add_argument("--dataset", choices=datasets, required=True)
    e.add_argument("--root", required=True)
    e.add_argument("--split", default="train", help="Kinetics-400 split")
    e.add_argument("--workers", type=int, default=1, help="tarballs extracted at once (Kinetics-400)")
    e.add_argument("--no-replacement", action="store_true", help="do not apply Kinetics-400's replacement clips")

    r = steps.add_parser("preprocess", help="re-encode a directory of videos to a short side (H.264 MP4)")
    r.add_argument("--src", required=True)
    r.add_argument("--dst", required=True)
    r.add_argument("--short-side", type=int, default=256)
    r.add_argument("--crf", type=int, default=23)
    r.add_argument("--keyframe-interval", type=int, default=EncodeSettings().keyframe_interval,
                   help="frames between keyframes (default: %(default)s; fewer decode faster and take more disk)")
    r.add_argument("--workers", type=int, default=None, help="encoding processes (default: all cores)")
    r.add_argument("--no-progress", action="store_true")

    li = steps.add_parser("lists", help="write train.txt, val.txt and labels.csv from the official annotations")
    li.add_argument("--dataset", choices=datasets, required=True)
    li.add_argument("--root", required=True)
    li.add_argument("--video-dir", default="videos", help="directory under the root the lists point into")
    li.add_argument("--preprocessed", action="store_true", help="the video dir holds re-encoded <stem>.mp4 files")
    p.set_defaults(func=_run_data)


def _run_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    root = Path(args.root) if hasattr(args, "root") else None
    if args.step == "preprocess":  # the only step without the download stack (requests), e.g. on a GPU node
        from ila.data import preprocess

        settings = preprocess.EncodeSettings(short_side=args.short_side, crf=args.crf,
                                             keyframe_interval=args.keyframe_interval)
        report = preprocess.preprocess_videos(args.src, args.dst, settings, args.workers,
                                              progress=False if args.no_progress else None)
        print(f"{args.dst}: {report['videos']} videos, {len(report['undecodable'])} undecodable")
        return 0
    from ila.data import kinetics, ssv2

    if args.step == "download":
        if args.dataset == "ssv2":
            ssv2.check_downloads(root)
            print(f"{root / 'downloads'}: every Something-Something-v2 file is there")
            return 0
        options = {"jobs": args.jobs, "verify": args.verify, "retries": args.retries,
                   "progress": False if args.no_progress else None}
        base = args.base_url or kinetics.K400_BASE_URL
        if args.split == "replacement":
            kinetics.download_replacement(root, base, **options)
        else:
            print(f"{args.split}: {kinetics.download_split(root, args.split, base, **options)} parts downloaded")
    elif args.step == "extract":
        if args.dataset == "ssv2":
            print(f"{ssv2.extract(root)} clips extracted")
        else:
            print(kinetics.extract_split(root, args.split, args.workers, replacement=not args.no_replacement))
    else:
        module = kinetics if args.dataset == "kinetics400" else ssv2
        report = module.build_lists(root, args.video_dir, args.preprocessed)
        for split, c in report["splits"].items():
            print(f"{split}.txt: {c['written']} of {c['listed']} videos ({c['missing']} missing, "
                  f"{c['undecodable']} undecodable)")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="print MLflow UI addresses that compare a table's runs",
                       description="Print the MLflow UI addresses of a table's experiment: its runs with the key "
                       "figures as columns, and every finished run side by side. Start the UI first: "
                       "mlflow ui --backend-store-uri sqlite:///mlflow.db")
    p.add_argument("table", help="the table's experiment, e.g. table4")
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--ui", default="http://127.0.0.1:5000", help="where the MLflow UI serves")
    p.set_defaults(func=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from ila.engine.tracking import row_runs, ui_urls

    try:
        urls = ui_urls(args.table, args.uri, args.ui)
    except LookupError as exc:
        print(f"ila compare: {exc}", file=sys.stderr)
        return 2
    print(f"{args.table}: {len(row_runs(args.table, args.uri))} finished runs")
    print(f"  runs table, key figures as columns: {urls['runs']}")
    print(f"  side by side:                       {urls['compare']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ila", description="ILA reproduction suite")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_synth(sub)
    _add_flops(sub)
    _add_run_commands(sub)
    _add_emd(sub)
    _add_pretrain(sub)
    _add_tracking_init(sub)
    _add_fetch_weights(sub)
    _add_data(sub)
    _add_compare(sub)
    return parser


def _user_errors() -> dict[type, str]:
    """Errors caused by the user's input, printed as one tidy message (exit code 2) instead of a traceback: each
    already names the file or key and what was expected."""
    from ila.config import ConfigError
    from ila.data.annotations import AnnotationError
    from ila.data.dataset import BadDataError
    from ila.data.download import DownloadError
    from ila.data.prepare import DataPrepError
    from ila.engine.checkpoint import CheckpointError
    from ila.models.backbone import MissingWeightsError

    return {ConfigError: "config error", AnnotationError: "annotation error", BadDataError: "data error",
            CheckpointError: "checkpoint error", MissingWeightsError: "missing weights",
            DownloadError: "download error",
            DataPrepError: "data preparation error"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kinds = _user_errors()
    try:
        return args.func(args)
    except tuple(kinds) as exc:
        kind = next(k for t, k in kinds.items() if isinstance(exc, t))
        print(f"ila {args.command}: {kind}: {exc}", file=sys.stderr)
        if args.verbose:
            raise
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
