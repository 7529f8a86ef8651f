"""CLI commands: ``faceptor convert official ...`` and ``faceptor export ... --onnx ...``."""

from __future__ import annotations

import argparse
import sys


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices, got {text!r}") from None


def cmd_convert(args: argparse.Namespace) -> int:
    from .official import ConversionError, convert_official, save_converted

    try:
        model, report = convert_official(args.checkpoint, args.variant, strict=args.strict, new_levels=args.new_levels)
    except (ConversionError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = save_converted(model, report, args.out_dir)
    print(report.summary())
    print(f"wrote {out} ({model.num_parameters() / 1e6:.2f}M parameters; report in {out / 'conversion.json'})")
    if report.differences:
        print(
            "warning: outputs will differ from the reference implementation until the differences above are resolved",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    from ..build import load
    from ..checkpoint import CheckpointError
    from ..registry import TaskNotFoundError
    from .onnx_export import export_onnx, verify_onnx

    try:
        model = load(args.checkpoint)
        info = export_onnx(model, args.onnx, tasks=args.tasks, image_size=args.image_size, opset=args.opset)
    except (CheckpointError, TaskNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    inputs = ", ".join(f"{name} (B x 3 x {s} x {s})" for name, s in info.inputs.items())
    print(f"wrote {info.path}: inputs {inputs}; outputs {', '.join(info.outputs)}")
    if args.verify:
        try:
            diffs = verify_onnx(model, info.path, tasks=args.tasks, image_size=args.image_size)
        except ImportError:
            print("error: --verify needs onnxruntime (pip install 'faceptor[onnx]')", file=sys.stderr)
            return 2
        for name, d in diffs.items():
            print(f"  {name}: max |onnxruntime - torch| = {d.max_abs:.2e} (outputs up to {d.max_ref:.3g})")
        worst = max(d.scaled for d in diffs.values())
        if worst > args.tolerance:
            print(f"error: difference {worst:.2e} above tolerance {args.tolerance:g}", file=sys.stderr)
            return 1
    return 0


#: The released models ``convert official`` knows (the keys of :data:`.official.VARIANTS`; kept here so that
#: building the CLI does not import torch).
VARIANT_NAMES = ("base", "full", "naive")


def add_commands(sub) -> None:
    """Register ``convert`` and ``export`` on the ``faceptor`` CLI's subparsers."""
    p = sub.add_parser("convert", help="convert the authors' checkpoints into this library's format")
    p.add_argument("source", choices=["official"], help="checkpoint origin: 'official' = the reference release")
    p.add_argument("checkpoint", help="checkpoint_rank0_iter_50000.pth.tar (read without unpickling objects)")
    p.add_argument("out_dir", help="output directory (model.safetensors, faceptor.json, conversion.json)")
    p.add_argument("--variant", required=True, choices=VARIANT_NAMES, help="which released model it is")
    p.add_argument("--strict", action="store_true", help="fail when any key is unplaced or missing")
    p.add_argument(
        "--new-levels",
        type=_levels,
        default=None,
        metavar="L,L,...",
        help="Stage-2 Layer-Attention layers (default 1,3,5,7,9, as released)",
    )
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (needs the 'onnx' extra)")
    p.add_argument("checkpoint", help="a checkpoint directory (model.safetensors + faceptor.json)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks to export (default: all)")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="N",
        help="run every task at N x N with a single 'images' input (default: each task's own size)",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--verify", action="store_true", help="compare onnxruntime with torch on random images")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="max difference accepted by --verify (absolute; relative for outputs larger than 1)",
    )
    p.set_defaults(func=cmd_export)
