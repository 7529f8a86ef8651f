"""``faceptor synth export`` and ``faceptor synth preview``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .export import EXPORT_FORMATS, export_dataset
from .preview import make_preview


def cmd_export(args: argparse.Namespace) -> int:
    root = export_dataset(args.format, Path(args.out), count=args.count, seed=args.seed, size=args.size,
                          overwrite=args.overwrite)
    print(f"wrote {args.count} SynthFaces images in the {args.format} layout to {root}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    make_preview(Path(args.out), count=args.count, size=args.size, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def add_commands(sub) -> None:
    synth = sub.add_parser("synth", help="SynthFaces: export in a real dataset's layout, or preview")
    ssub = synth.add_subparsers(dest="synth_command", required=True)
    p = ssub.add_parser("export", help="write a SynthFaces sample in a real dataset's layout")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("out")
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--overwrite", action="store_true", help="write into OUT even if it is not empty")
    p.set_defaults(func=cmd_export)
    p = ssub.add_parser("preview", help="a contact sheet of faces with landmarks and parsing overlaid")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_preview)
