"""The ``faceptor`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import FaceptorError
from .registry import default_registry


def cmd_tasks(args: argparse.Namespace) -> int:
    specs = default_registry().list_tasks()
    reg = default_registry()
    rows = [("task", "family", "head", "output", "queries", "size", "plugin")]
    for s in specs:
        rows.append((s.name, s.family, s.head, s.output, str(s.num_queries), str(s.input_size), reg.owner(s.name)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    status = 0
    for p in default_registry().list_plugins():
        where = f" ({p.distribution} {p.version})" if p.distribution else ""
        if p.disabled:
            print(f"{p.name}{where}: disabled by FACEPTOR_DISABLE_PLUGINS")
        elif p.error:
            status = 1
            print(f"{p.name}{where}: BROKEN: {p.error}")
        else:
            dets = f"; detectors: {', '.join(p.detectors)}" if p.detectors else ""
            print(f"{p.name}{where}: {len(p.tasks)} tasks: {', '.join(p.tasks)}{dets}")
    return status


def cmd_detectors(args: argparse.Namespace) -> int:
    reg = default_registry()
    for d in reg.list_detectors():
        print(f"{d.name} (plugin {reg.detector_owner(d.name)}; {d.license or 'licence not stated'}): {d.description}")
    return 0


COMMANDS = {
    "tasks": (cmd_tasks, "list the registered tasks"),
    "plugins": (cmd_plugins, "list plugins, their tasks, and broken plugins with their errors"),
    "detectors": (cmd_detectors, "list the registered face detectors"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceptor", description="Faceptor: one model for face perception.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
    _add_module_commands(sub)
    return parser


def _add_module_commands(sub) -> None:
    """Commands that live in their own modules (training, SynthFaces, interop)."""
    from faceptor_tasks.synthfaces import commands as synth_commands

    from .interop import commands as interop_commands
    from .photo import commands as photo_commands
    from .serve import command as serve_commands
    from .train import commands as train_commands

    for module in (train_commands, photo_commands, serve_commands, synth_commands, interop_commands):
        module.add_commands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except FaceptorError as exc:  # a mistake in the input: its message says what and where, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
