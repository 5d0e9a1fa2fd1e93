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
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=int, default=None,
                       help=f"override the preset's {f.name}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ila", description="ILA reproduction suite")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_synth(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
