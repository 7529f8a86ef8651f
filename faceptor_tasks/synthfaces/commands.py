"""The SynthFaces commands the built-in plugin adds to the CLI: ``faceptor synth export|preview`` and
``faceptor demo`` (registered through ``register_commands`` in :mod:`faceptor_tasks.plugin`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceptor_core.command import CommandSpec


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_dataset

    root = export_dataset(
        args.format, Path(args.out), count=args.count, seed=args.seed, size=args.size, overwrite=args.overwrite
    )
    print(f"wrote {args.count} SynthFaces images in the {args.format} layout to {root}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .preview import make_preview

    make_preview(Path(args.out), count=args.count, size=args.size, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    from .export import EXPORT_FORMATS

    ssub = parser.add_subparsers(dest="synth_command", required=True, metavar="SUBCOMMAND", help="export or preview")
    p = ssub.add_parser(
        "export",
        help="write a SynthFaces sample in a real dataset's layout",
        description="Write SynthFaces images and labels in the file layout of a real dataset, "
        "so that its reader can be tested on them.",
    )
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="the dataset layout to write")
    p.add_argument("out", help="output folder (refused if not empty, unless --overwrite)")
    p.add_argument("--count", type=int, default=64, help="images to write")
    p.add_argument("--seed", type=int, default=0, help="generator seed (the same seed writes the same faces)")
    p.add_argument("--size", type=int, default=224, help="image side in pixels")
    p.add_argument("--overwrite", action="store_true", help="write into OUT even if it is not empty")
    p.set_defaults(func=cmd_export)
    p = ssub.add_parser("preview", help="a contact sheet of faces with landmarks and parsing overlaid")
    p.add_argument("out", help="the PNG file to write")
    p.add_argument("--count", type=int, default=16, help="faces on the sheet")
    p.add_argument("--size", type=int, default=112, help="side of each face in pixels")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.set_defaults(func=cmd_preview)


def run_synth(args: argparse.Namespace) -> int:
    """The sub-command's function (set by its parser)."""
    return args.func(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    preset = getattr(args, "preset", "standard")
    report = run_demo(Path(args.out), preset=preset, steps=args.steps, heads_steps=args.heads_steps)
    print(f"report: {report}")
    return 0


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    from .demo import PRESETS

    quick, standard, full = PRESETS["quick"], PRESETS["standard"], PRESETS["full"]
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--quick",
        dest="preset",
        action="store_const",
        const="quick",
        default=argparse.SUPPRESS,  # the standard run
        help=f"a short run ({quick.minutes} minutes on 2 cores) for CI",
    )
    length.add_argument(
        "--full",
        dest="preset",
        action="store_const",
        const="full",
        default=argparse.SUPPRESS,
        help=f"100 more stage-1 steps without pooled heads, and stage 2 without the grid readout: better on the dense "
        f"tasks and age, close on verification, worse on the attributes and expression ({full.minutes} "
        f"minutes on 2 cores with bf16 instructions; {full.minutes_fp32} minutes on 2 AVX2 cores, in float32)",
    )
    parser.add_argument(
        "--out", default="faceptor-demo", help="output folder (the demo only replaces its own earlier output)"
    )
    steps = f"training steps (default: {standard.steps}; {quick.steps} with --quick, {full.steps} with --full)"
    parser.add_argument("--steps", type=int, help=steps)
    heads = (
        f"steps of stage 2, which trains the decoders on the frozen encoder (default: {standard.heads.steps}; "
        f"{quick.heads.steps} with --quick, {full.heads.steps} with --full; 0: no stage 2)"
    )
    parser.add_argument("--heads-steps", type=int, help=heads)


def commands() -> list[CommandSpec]:
    """``synth`` and ``demo``."""
    from .demo import PRESETS

    return [
        CommandSpec(
            name="synth",
            help="SynthFaces: export in a real dataset's layout, or preview",
            add_arguments=add_synth_arguments,
            run=run_synth,
        ),
        CommandSpec(
            name="demo",
            help="train a small Faceptor on SynthFaces and write a report",
            description="Train a small Faceptor on every SynthFaces task on the CPU and write a report: metrics "
            "beside their trivial answers, loss curves and predictions (OUT/report/metrics.md). The standard run "
            f"takes {PRESETS['standard'].minutes} minutes on 2 cores with bf16 instructions and "
            f"{PRESETS['standard'].minutes_fp32} on 2 AVX2 cores without them (in float32); --quick and --full say "
            "theirs.",
            add_arguments=add_demo_arguments,
            run=cmd_demo,
        ),
    ]
