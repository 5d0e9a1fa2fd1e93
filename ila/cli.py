"""The ``ila`` command: one entry point, a subcommand per stage.

The same conventions hold for every subcommand, so a user learns them once:
* configuration is an optional YAML file followed by ``KEY=VALUE`` overrides (values parsed as YAML);
* ``--workers N`` is the one name for how many processes or threads a command may use (default: all cores);
* ``--no-progress`` turns off the progress bars of any command that draws one;
* a mistake in the user's input is one line on stderr saying what to do, and exit code 2 (``-v`` adds the traceback);
* only the suite's own log lines are shown; ``-v`` shows the libraries' (open_clip, MLflow, ...) and debug lines too.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from ila import __version__
from ila.data.kinds import PUBLISHED_DATASETS
from ila.defaults import DEFAULT_MLFLOW_URI, MAX_SEEDS, MLFLOW_DB, TRACKING_URI_HELP
from ila.errors import IlaError


class UserError(IlaError):
    """A mistake in the command line's input that the user fixes: printed as one line, exit code 2."""


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's default in its help text, unless the default is "nothing" (None, False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        # `is`, not `in`: a default of 0 is worth showing (0 == False); on/off flags (nargs 0) have no value to show.
        nothing = action.default is None or action.default is False or action.default == [] or action.nargs == 0
        if "%(default)" in text or nothing or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line that says where to look (its default prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see: {self.prog} --help)\n")


def _command(sub: argparse._SubParsersAction, name: str, summary: str, description: str = "") -> _Parser:
    return sub.add_parser(name, help=summary, description=description or summary[0].upper() + summary[1:] + ".",
                          formatter_class=_HelpFormatter)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML run config (optional: every key has a default)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.steps=100 model.variant=ila data.root=data/synth-default")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _add_workers(p: argparse.ArgumentParser, what: str, default: int | None = None) -> None:
    p.add_argument("--workers", type=_positive_int, default=default, metavar="N",
                   help=what + ("" if default is not None else " (default: all cores)"))


def _add_no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    from ila.data.synth import PRESETS, SynthSpec

    p = _command(sub, "synth", "generate the synthetic video benchmark",
                 "Generate the synthetic video benchmark: H.264 MP4 clips, train.txt, val.txt, labels.csv and "
                 "synth.json (its spec), deterministically from the seed. Resumable: clips already written with the "
                 "same spec are kept. Presets (what each changes from the spec's defaults): "
                 + "; ".join(f"{name}: {_changed_fields(spec, SynthSpec())}" for name, spec in PRESETS.items()))
    p.add_argument("--preset", choices=sorted(PRESETS), default="default", help="the spec to start from")
    p.add_argument("--out", help="output directory (default: data/synth-<preset>, the one the workflow uses; write "
                   "a customised spec elsewhere)")
    _add_workers(p, "encoding processes")
    _add_no_progress(p)
    for f in dataclasses.fields(SynthSpec):
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=str if f.type == "str" else int,
                       default=None, metavar="TEXT" if f.type == "str" else "N",
                       help=f"override the preset's {f.name.replace('_', ' ')}")
    p.set_defaults(func=_run_synth)


def _changed_fields(spec, base) -> str:
    changed = [f"{f.name}={getattr(spec, f.name)}" for f in dataclasses.fields(spec)
               if getattr(spec, f.name) != getattr(base, f.name)]
    return ", ".join(changed) or "the defaults"


def _run_synth(args: argparse.Namespace) -> int:
    from ila.data.synth import PRESETS, generate
    from ila.paths import resolve_root, synth_root

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PRESETS[args.preset])
                 if getattr(args, f.name) is not None}
    spec = dataclasses.replace(PRESETS[args.preset], **overrides)
    out = Path(args.out) if args.out else resolve_root(synth_root(args.preset))
    try:
        spec.validate()
    except ValueError as exc:
        raise UserError(f"{exc}; change the option") from None
    # The lists are written last, so a directory with both was complete: a rerun then only checks it.
    was_complete = (out / "train.txt").exists() and (out / "val.txt").exists()
    clips_before = sum(1 for _ in out.glob("videos/*/*.mp4"))
    start = time.perf_counter()
    try:
        generate(spec, out, workers=args.workers)
    except FileExistsError as exc:
        raise UserError(f"{exc} (e.g. --out {out.parent / (out.name + '-custom')})") from None
    written = sum(1 for _ in out.glob("videos/*/*.mp4")) - clips_before
    if was_complete and written == 0:
        print(f"{out}: already complete with this spec, nothing to do")
    else:
        print(f"wrote {written} clips to {out} in {time.perf_counter() - start:.1f} s")
    return 0


def _add_flops(sub: argparse._SubParsersAction) -> None:
    from ila.ablations import PAPER_MAIN_CONFIG  # light: reads no file until asked

    p = _command(sub, "flops", "GFLOPs per view and parameter counts of model variants",
                 "Multiply-adds per view (one video [1,T,3,H,W] and one text; multiply-adds counted as FLOPs, as "
                 "fvcore does), counted on the meta device (nothing is downloaded or allocated), and parameter "
                 "counts. KEY=VALUE overrides are model config keys (model. prefix optional), e.g. "
                 "prompt_generator=false aggregator=mit.")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="model config overrides")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="model variant (repeatable; default: every catalogued one)")
    p.add_argument("--backbone", default=PAPER_MAIN_CONFIG["backbone"], metavar="NAME",
                   help="backbone name (open_clip's, or the suite's ILA-mini-*)")
    p.add_argument("--frames", type=int, default=PAPER_MAIN_CONFIG["num_frames"], metavar="N",
                   help="frames per view")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=_run_flops)


def _run_flops(args: argparse.Namespace) -> int:
    import json

    from ila.catalog import list_variants
    from ila.config import apply_overrides, resolve_model_config
    from ila.models.flops import model_cost

    overrides = [o.removeprefix("model.") for o in args.overrides]
    # Every config is checked before the first line is printed, so a mistake is the only output.
    configs = [resolve_model_config(apply_overrides({"variant": v, "backbone": args.backbone,
                                                      "num_frames": args.frames}, overrides))
               for v in args.variant or list_variants()]
    if not args.json:
        print(f"{'variant':16} {'GFLOPs/view':>12} {'params (M)':>11} {'trainable (M)':>14} {'operator (M)':>13}")
    for cfg in configs:
        cost = model_cost(cfg)
        if args.json:
            print(json.dumps({"variant": cfg.variant, **dataclasses.asdict(cost)}))
        else:
            print(f"{cfg.variant:16} {cost.gflops:12.2f} {cost.params_total / 1e6:11.2f} "
                  f"{cost.params_trainable / 1e6:14.2f} {cost.params_operator / 1e6:13.2f}")
    return 0


def _add_catalog(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "catalog", "what a row or run config can name: model variants, temporal operators (with their "
                 "options), aggregators and backbone adapters")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=_run_catalog)


def _run_catalog(args: argparse.Namespace) -> int:
    import json

    from ila import catalog

    sections = {
        "variants (model.variant)": {n: catalog.describe_variant(n) for n in catalog.list_variants()},
        "operators (model.operator; options under model.operator_args)": {
            n: ", ".join(f.name for f in dataclasses.fields(catalog.OPERATORS[n].options)) or "no options"
            for n in catalog.list_operators()},
        "aggregators (model.aggregator)": {n: catalog.AGGREGATORS[n].description for n in catalog.list_aggregators()},
        "backbone adapters (tried in this order)": {n: a.description for n, a in catalog.ADAPTERS.items()},
    }
    if args.json:
        print(json.dumps(sections, indent=1))
        return 0
    for title, entries in sections.items():
        print(f"{title}:")
        for name, text in entries.items():
            print(f"  {name:16} {text}")
    return 0


def _add_run_commands(sub: argparse._SubParsersAction) -> None:
    what = {"train": "The resolved config, train.log, checkpoints and (unless --skip-eval) metrics go to the run's "
                     "directory, output_dir (default: results/runs/default). An interrupted training resumes from its "
                     "last checkpoint.",
            "evaluate": "Evaluates the run's last checkpoint (or --checkpoint) on the validation split's "
                        "deterministic views and writes metrics.json and evaluate.log in the run's directory, "
                        "output_dir (default: results/runs/default)."}
    for name, summary in (("train", "train a run, then evaluate it"), ("evaluate", "evaluate a run's checkpoint")):
        p = _command(sub, name, summary, f"{summary[0].upper() + summary[1:]}. {what[name]} For several GPUs: "
                     f"torchrun --nproc_per_node N -m ila.cli {name} ...")
        _add_config(p)
        _add_no_progress(p)
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
    """The run config of a command, with its dataset checked: a missing dataset is named with how to build it, before
    a run directory is made."""
    from ila.config import load_run_config
    from ila.data.synth import PRESETS

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not config.endswith((".yaml", ".yml")):
        config, overrides = None, [config, *overrides]
    cfg = load_run_config(config, overrides)
    from ila.paths import resolve_root, synth_preset_of

    root = resolve_root(cfg.data.root)  # where the dataset is read from: relative to ILA_ROOT when that is set
    if not (root / cfg.data.labels).exists():
        preset = synth_preset_of(root)
        build = (f"ila synth --preset {preset} --out {cfg.data.root}"
                 if preset in PRESETS
                 else f"ila data lists --dataset kinetics400|ssv2 --root {cfg.data.root}")
        raise UserError(f"{cfg.data.root}/{cfg.data.labels}: not found (data.root); build the dataset first: "
                        f"{build}, or run the workflow (snakemake --cores all results/table4.csv), or set data.root")
    return cfg


def _run_train(args: argparse.Namespace) -> int:
    from ila.engine.train import train

    metrics = train(_load(args), resume=args.resume, run_eval=not args.skip_eval)
    if "top1" in metrics:
        print(f"top1={metrics['top1']:.4f} top5={metrics['top5']:.4f} videos={metrics['num_videos']}")
    return 0


def _parse_cost_at(items: list[str]) -> list[tuple[str, int, str | None]]:
    cost_at = []
    for item in items:
        head = None
        rest, _, last = item.rpartition(":")
        if last in ("text", "linear"):
            item, head = rest, last
        backbone, _, frames = item.rpartition(":")
        if not backbone or not frames.isdigit():
            raise UserError(f"--cost-at expects BACKBONE:FRAMES[:text|linear], e.g. ViT-B-32:8, got {item!r}")
        cost_at.append((backbone, int(frames), head))
    return cost_at


def _run_evaluate(args: argparse.Namespace) -> int:
    from ila.engine.evaluate import evaluate

    cost_at = _parse_cost_at(args.cost_at)
    metrics = evaluate(_load(args), args.checkpoint, cost_at)
    print(f"top1={metrics['top1']:.4f} top5={metrics['top5']:.4f} videos={metrics['num_videos']}")
    return 0


def _add_emd(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "emd", "Table 5: adjacent-frame Earth Mover's Distance of a trained run",
                 "Mean exact W1 (Earth Mover's) distance between adjacent frames' last-layer patch tokens over the "
                 "validation split (ila.emd says what is computed and which choices are ours); writes "
                 "<output_dir>/emd.json.")
    _add_config(p)
    p.add_argument("--checkpoint", help="checkpoint file (default: <output_dir>/checkpoints/last.pt)")
    p.add_argument("--out", help="JSON to write (default: <output_dir>/emd.json)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", help="do not L2-normalise tokens")
    p.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean", help="ground metric")
    p.add_argument("--num-itermax", type=int, default=None,
                   help="network-simplex iteration limit (default: ila.emd.NUM_ITERMAX)")
    _add_workers(p, "CPU threads for the model and the transport problems")
    _add_no_progress(p)
    p.set_defaults(func=_run_emd)


def _run_emd(args: argparse.Namespace) -> int:
    import torch

    from ila import emd
    from ila.engine.distributed import job_threads
    from ila.engine.runs import run_dir_of
    from ila.paths import write_json

    torch.set_num_threads(job_threads(args.workers))
    cfg = _load(args)
    options = emd.EMDOptions(args.normalize, args.metric, args.num_itermax or emd.NUM_ITERMAX)
    result = emd.measure_run(cfg, args.checkpoint, options)
    out = write_json(result, args.out or run_dir_of(cfg) / "emd.json")
    print(f"emd={result['emd']:.4f} videos={result['num_videos']} -> {out}")
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    from ila.backbone_configs import suite_backbones  # light: reads a directory
    from ila.config import PretrainConfig
    from ila.paths import PRETRAINING_OBJECTIVES

    p = _command(sub, "pretrain-clip", "pretrain the embedded mini-CLIP on synthetic image-caption pairs",
                 "Pretrain one of the suite's small CLIP-style backbones (the embedded default's stand-in for "
                 "OpenAI's CLIP) on synthetic image-caption pairs, and write its state dict and a JSON summary "
                 "with a held-out score. The workflow runs this once per backbone.")
    p.add_argument("--out", required=True, help="state-dict file to write (a .json summary goes beside it)")
    p.add_argument("--backbone", default="ILA-mini-32", choices=suite_backbones(),
                   help="the suite's backbone to pretrain (open_clip's come pretrained: ila fetch-weights)")
    p.add_argument("--objective", choices=PRETRAINING_OBJECTIVES, default=PRETRAINING_OBJECTIVES[0],
                   help="CLIP's loss on the captions, or one-hot labels (each caption a class) for the image tower")
    defaults = PretrainConfig()
    p.add_argument("--steps", type=int, metavar="N", default=defaults.steps, help="optimiser steps")
    p.add_argument("--batch-size", type=int, metavar="N", default=defaults.batch_size,
                   help="image-caption pairs per step")
    p.add_argument("--pool-size", type=int, metavar="N", default=defaults.pool_size, help="distinct pairs drawn from")
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (cosine schedule, 5%% warm-up)")
    p.add_argument("--seed", type=int, metavar="N", default=defaults.seed,
                   help="seed of the pairs and the initialisation")
    _add_workers(p, "CPU threads")
    _add_no_progress(p)
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from ila.pretrain import pretrain_clip

    summary = pretrain_clip(args.out, args.backbone, args.steps, args.batch_size, args.pool_size, args.lr,
                            args.seed, args.workers, objective=args.objective)
    score = next(k for k in summary if k.startswith("heldout_"))
    print(f"wrote {args.out}: {score} {summary[score]:.3f}")
    return 0


def _add_tracking_init(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "tracking-init", "create the MLflow store and experiments before parallel jobs",
                 "Create the MLflow tracking store and the named experiments, so that parallel training jobs do not "
                 "race to create them (the workflow runs this first).")
    p.add_argument("--experiment", action="append", required=True, help="experiment name, e.g. table4 (repeatable)")
    p.add_argument("--uri", help=TRACKING_URI_HELP)
    p.set_defaults(func=_run_tracking_init)


def _run_tracking_init(args: argparse.Namespace) -> int:
    from ila.config import TrackingConfig
    from ila.engine.tracking import init_store, tracking_uri

    uri = tracking_uri(TrackingConfig(uri=args.uri))
    for name, exp_id in init_store(uri, args.experiment).items():
        print(f"experiment {name!r} (id {exp_id}) at {uri}")
    return 0


def _add_fetch_weights(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "fetch-weights", "download a backbone's weights once into a local checkpoint file",
                 "Download a backbone's pretrained weights (resumably; OpenAI's checked against the sha256 in their "
                 "URL), check they load, and store them as a state dict that training jobs load offline. Paper "
                 "backbones: ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336 (tag openai; add -quickgelu to the name, as "
                 "OpenAI's weights were trained with QuickGELU), and Table 10's ViT-B-16-in21k (tags augreg_in21k, "
                 "orig_in21k: timm's ImageNet-21k ViT-B/16 from the Hugging Face Hub).")
    p.add_argument("--backbone", required=True, help="open_clip model name, e.g. ViT-B-32-quickgelu")
    p.add_argument("--tag", default="openai", help="pretrained tag (open_clip's, or augreg_in21k / orig_in21k)")
    p.add_argument("--url", help="fetch this URL (a mirror) instead of the tag's own")
    p.add_argument("--sha256", help="expected sha256 (prefix) of the downloaded file")
    p.add_argument("--retries", type=int, default=5, help="attempts per file before giving up")
    p.add_argument("--out", required=True, help="state-dict file to write, e.g. resources/weights/<name>-<tag>.pt")
    p.set_defaults(func=_run_fetch_weights)


def _run_fetch_weights(args: argparse.Namespace) -> int:
    from ila.models.backbone import fetch_weights

    try:
        print(f"wrote {fetch_weights(args.backbone, args.tag, args.out, args.url, args.sha256, args.retries)}")
    except ValueError as exc:  # an unknown backbone or tag
        raise UserError(f"{exc}; see ila fetch-weights --help for the paper's backbones and tags") from None
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from ila.data.preprocess import EncodeSettings  # light: no video stack

    p = _command(sub, "data", "fetch, extract, re-encode and list a real dataset (Kinetics-400, SSv2)",
                 "The steps the workflow's data rules run, one at a time. Layout under --root: downloads/<split>/, "
                 "videos/<split>/, videos_s<N>/<split>/, train.txt, val.txt, labels.csv. Each step's options: ila "
                 "data STEP --help.")
    steps = p.add_subparsers(dest="step", required=True, metavar="STEP", parser_class=_Parser)
    datasets = PUBLISHED_DATASETS

    d = _command(steps, "download", "Kinetics-400: fetch a split (or the replacement tarball), resumably; SSv2: "
                 "check the user's files")
    d.add_argument("--dataset", choices=datasets, required=True, help="which dataset")
    d.add_argument("--root", required=True, help="the dataset's directory")
    d.add_argument("--split", default="train", help="train, val, test, or 'replacement' (Kinetics-400)")
    d.add_argument("--base-url", default=None, help="mirror with the CVDF layout (default: the CVDF S3 bucket)")
    _add_workers(d, "files fetched at once", default=4)
    d.add_argument("--verify", choices=("size", "sha256"), default="size",
                   help="how files already downloaded are checked against the manifest")
    d.add_argument("--retries", type=int, default=5, help="attempts per file before giving up")
    _add_no_progress(d)

    e = _command(steps, "extract", "extract the downloaded archives into videos/<split>/")
    e.add_argument("--dataset", choices=datasets, required=True, help="which dataset")
    e.add_argument("--root", required=True, help="the dataset's directory")
    e.add_argument("--split", default="train", help="Kinetics-400 split")
    _add_workers(e, "tarballs extracted at once (Kinetics-400)", default=1)
    e.add_argument("--no-replacement", action="store_true", help="do not apply Kinetics-400's replacement clips")

    r = _command(steps, "preprocess", "re-encode a directory of videos to a short side (H.264 MP4)")
    r.add_argument("--src", required=True, help="directory of source videos")
    r.add_argument("--dst", required=True, help="directory to write <stem>.mp4 files to")
    r.add_argument("--short-side", type=int, default=256, help="pixels of the shorter side after re-encoding")
    r.add_argument("--crf", type=int, default=23, help="H.264 constant rate factor (lower: larger, better)")
    r.add_argument("--keyframe-interval", type=int, default=EncodeSettings().keyframe_interval,
                   help="frames between keyframes (fewer decode faster and take more disk)")
    _add_workers(r, "encoding processes")
    _add_no_progress(r)

    li = _command(steps, "lists", "write train.txt, val.txt and labels.csv from the official annotations")
    li.add_argument("--dataset", choices=datasets, required=True, help="which dataset")
    li.add_argument("--root", required=True, help="the dataset's directory")
    li.add_argument("--video-dir", default="videos", help="directory under the root the lists point into")
    li.add_argument("--preprocessed", action="store_true", help="the video dir holds re-encoded <stem>.mp4 files")
    p.set_defaults(func=_run_data)


def _run_data(args: argparse.Namespace) -> int:
    root = Path(args.root) if hasattr(args, "root") else None
    if args.step == "preprocess":  # the only step without the download stack (requests), e.g. on a GPU node
        from ila.data import preprocess

        if not Path(args.src).is_dir():
            raise UserError(f"--src {args.src}: no such directory; give the directory of the videos to re-encode")
        settings = preprocess.EncodeSettings(short_side=args.short_side, crf=args.crf,
                                             keyframe_interval=args.keyframe_interval)
        report = preprocess.preprocess_videos(args.src, args.dst, settings, args.workers)
        print(f"{args.dst}: {report['videos']} videos, {len(report['undecodable'])} undecodable")
        return 0
    from ila.data import kinetics, ssv2

    if args.step == "download":
        if args.dataset == "ssv2":
            ssv2.check_downloads(root)
            print(f"{root / 'downloads'}: every Something-Something-v2 file is there")
            return 0
        options = {"jobs": args.workers, "verify": args.verify, "retries": args.retries}
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
    p = _command(sub, "compare", "print MLflow UI addresses that compare a table's runs",
                 "Print the MLflow UI addresses of a table's experiment: its runs with the key figures as columns, "
                 "and every finished run side by side. Start the UI first: mlflow ui --backend-store-uri "
                 f"{DEFAULT_MLFLOW_URI}")
    p.add_argument("table", help="the table's experiment, e.g. table4")
    p.add_argument("--uri", help=TRACKING_URI_HELP)
    p.add_argument("--ui", default="http://127.0.0.1:5000", help="where the MLflow UI serves")
    p.set_defaults(func=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from ila.engine.tracking import row_runs, sqlite_path, tracking_uri, ui_urls

    uri = args.uri or tracking_uri()
    run_first = f"run the workflow first (snakemake --cores all results/{args.table}.csv)"
    store = sqlite_path(uri)
    if store is not None and not store.exists():  # MLflow would create an empty store: say why instead
        raise UserError(f"no MLflow store at {store}; {run_first}, from the directory that holds {MLFLOW_DB}, or "
                        "pass --uri")
    try:
        urls = ui_urls(args.table, uri, args.ui)
    except LookupError as exc:
        raise UserError(f"{exc}; {run_first}") from None
    print(f"{args.table}: {len(row_runs(args.table, uri))} finished runs")
    print(f"  runs table, key figures as columns: {urls['runs']}")
    print(f"  side by side:                       {urls['compare']}")
    return 0


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _add_power(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "power", "seeds per row for a target minimum detectable difference, from a table's statistics",
                 "For each row's comparison with its reference in a table's statistics file (results/stats/"
                 "<table>.json, written with the table): the minimum detectable difference (MDE) measured, and the "
                 "seeds per row that would bring it to --mde, projected from the measured "
                 "seed, video and residual variances (ila.stats.VarianceComponents.mde_at); then the median and the "
                 "most seeds needed. Needs a table of two seeds or more.")
    p.add_argument("stats", help="a table's statistics file, e.g. results/stats/table4.json")
    p.add_argument("--mde", type=_positive_number, required=True, metavar="D",
                   help="the target MDE, in the table's primary measure's unit (points for top-1)")
    p.add_argument("--videos", type=_positive_int, metavar="N",
                   help="validation videos to project at (default: as many as the table measured)")
    p.add_argument("--max-seeds", type=_positive_int, default=MAX_SEEDS, metavar="N",
                   help="the most seeds per row to try; more are reported as 'over N'")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=_run_power)


def _run_power(args: argparse.Namespace) -> int:
    import json

    from ila.power import format_plan, plan_as_dict, plan_seeds

    if args.max_seeds < 2:
        raise UserError(f"--max-seeds {args.max_seeds}: a projection needs two seeds or more")
    plan = plan_seeds(args.stats, args.mde, args.videos, args.max_seeds)
    print(json.dumps(plan_as_dict(plan), indent=1) if args.json else "\n".join(format_plan(plan)))
    return 0


def _add_costs(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "costs", "what each table of a workflow run cost (job time) and can resolve (MDE)",
                 "Per table of a workflow run: its trainings, evaluations and other jobs and their summed wall and "
                 "CPU time in minutes, from Snakemake's benchmark records (RESULTS/benchmarks/), and the median and "
                 "range of its rows' minimum detectable differences against their references, from its statistics "
                 "file (RESULTS/stats/<table>.json); jobs no one table owns are counted as shared. Job time is the "
                 "sum of the jobs' own wall times: on N busy cores the run's wall clock is about that over N.")
    p.add_argument("results", nargs="?", default="results", help="the workflow's results folder")
    p.set_defaults(func=_run_costs)


def _run_costs(args: argparse.Namespace) -> int:
    from ila.run_costs import format_costs, table_costs

    print("\n".join(format_costs(table_costs(args.results))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ila", formatter_class=_HelpFormatter,
                     description="The ILA reproduction suite's command line: data, training, evaluation and analysis. "
                     "The workflow (snakemake) runs these steps for every table; each is usable on its own.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug lines, the libraries' log lines, and tracebacks of user errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for add in (_add_synth, _add_flops, _add_catalog, _add_run_commands, _add_emd, _add_pretrain, _add_tracking_init,
                _add_fetch_weights, _add_data, _add_compare, _add_power, _add_costs):
        add(sub)
    return parser


# Errors caused by the user's input, printed as one tidy line (exit code 2) instead of a traceback: each already names
# the file or key and what was expected. FileNotFoundError too: a missing input (a run's checkpoint, a source run,
# metrics), whose messages name the file and the step to run first.
USER_ERRORS = (IlaError, FileNotFoundError)


class _OwnLogLines(logging.Filter):
    """The suite's log lines, and only errors from the libraries (open_clip logs every model it builds at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "ila" or record.name.startswith("ila.") or record.levelno >= logging.ERROR


def _log_handler(verbose: bool) -> logging.Handler:
    """The command's stderr log handler, on the root logger for as long as the command runs (not basicConfig: a
    caller such as a test session keeps its own handlers)."""
    import os

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_OwnLogLines())
    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun one rank speaks for all; the others only warn
        handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    return handler


def subcommand_parser(parser: argparse.ArgumentParser, *words: str) -> argparse.ArgumentParser:
    """The parser of ``ila WORD [WORD]`` (e.g. ``data``, ``download``): argparse keeps them only in private fields."""
    for word in words:
        parser = parser._subparsers._group_actions[0].choices[word]
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """argparse reads a command's KEY=VALUE overrides only before its first option; users also write them after
    (``ila train run.yaml --no-progress train.steps=10``), so leftovers of that form join the overrides."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            words = [args.command, *([args.step] if getattr(args, "step", None) else [])]
            subcommand_parser(parser, *words).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    from ila.progress import set_progress

    args = _parse(argv)
    root_logger, level = logging.getLogger(), logging.getLogger().level
    root_logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    handler = _log_handler(args.verbose)
    set_progress(not getattr(args, "no_progress", False))
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        kind = getattr(exc, "kind", "")
        message = " ".join(str(exc).split())  # one line, whatever the message's own line breaks
        command = " ".join(filter(None, ("ila", args.command, getattr(args, "step", None))))
        print(f"{command}: {kind + ': ' if kind else ''}{message}", file=sys.stderr)
        if args.verbose:
            raise
        return 2
    finally:
        set_progress(True)
        root_logger.removeHandler(handler)
        root_logger.setLevel(level)


if __name__ == "__main__":
    raise SystemExit(main())
