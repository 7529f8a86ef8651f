"""The ``faceptor`` command line: the core's commands, then those plugins add through ``register_commands``.

Every parser (sub-commands included) shows each option's help followed by its default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .command import CommandSpec
from .errors import FaceptorError
from .registry import TaskRegistry, default_registry


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: ...)`` to an option's help unless the help already speaks of its default or there is
    none worth showing (``None``, a flag's ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text == argparse.SUPPRESS
            or "default" in text.lower()
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or (not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
        ):
            return action.help
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _MainHelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """The top-level parser keeps its epilog's lines (one per broken plugin)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`DefaultsHelpFormatter`; sub-parsers (``add_subparsers``) are of
    this class too, so a plugin's nested commands show their defaults as well."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def cmd_tasks(args: argparse.Namespace) -> int:
    specs = default_registry().list_tasks()
    reg = default_registry()
    rows = [("task", "family", "head", "output", "queries", "size", "plugin")]
    for s in specs:
        rows.append((s.name, s.family, s.head_type, s.output, str(s.num_queries), str(s.input_size), reg.owner(s.name)))
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
            cmds = f"; commands: {', '.join(p.commands)}" if p.commands else ""
            print(f"{p.name}{where}: {len(p.tasks)} tasks: {', '.join(p.tasks)}{dets}{cmds}")
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


def build_parser(registry: TaskRegistry | None = None) -> argparse.ArgumentParser:
    """The core's commands, then every plugin command of ``registry`` (default: the process-wide one). A plugin
    command that cannot be added is left out and its plugin blamed (``faceptor plugins``); ``--help`` lists
    the broken plugins below the commands."""
    reg = registry or default_registry()
    parser = ArgumentParser(
        prog="faceptor", description="Faceptor: one model for face perception.", formatter_class=_MainHelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="print the version and exit"
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="one of the commands below; `faceptor COMMAND --help` tells more",
    )
    for name, (func, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
    _add_module_commands(sub)
    for spec in reg.list_commands():
        _add_plugin_command(sub, spec, reg)
    broken = [f"  plugin {p.name!r}: {p.error}" for p in reg.list_plugins() if p.error]
    if broken:
        parser.epilog = (
            "broken plugins (their commands or tasks may be missing; see `faceptor plugins`):\n" + "\n".join(broken)
        )
    return parser


def _add_module_commands(sub) -> None:
    """The core's commands that live in their own modules (training, photos, serving, interop)."""
    from .interop import commands as interop_commands
    from .photo import commands as photo_commands
    from .serve import command as serve_commands
    from .train import commands as train_commands

    for module in (train_commands, photo_commands, serve_commands, interop_commands):
        module.add_commands(sub)


#: Where a plugin command's runner is kept in the parsed arguments (not ``func``: a plugin's own nested parsers
#: may set that, and a nested parser's defaults override its parent's).
_PLUGIN_RUN = "_faceptor_plugin_run"


def _add_plugin_command(sub, spec: CommandSpec, reg: TaskRegistry) -> None:
    owner = reg.command_owner(spec.name)
    try:  # a dry run on a scratch parser: a command whose arguments break is left out whole
        spec.add_arguments(ArgumentParser(prog=f"faceptor {spec.name}"))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # argparse errors, a plugin's sys.exit ...: only this command is lost
        reg.record_command_error(spec.name, f"add_arguments failed: {type(exc).__name__}: {exc}")
        return
    p = sub.add_parser(spec.name, help=f"{spec.help} [plugin {owner}]", description=spec.description or spec.help)
    spec.add_arguments(p)
    p.set_defaults(**{_PLUGIN_RUN: _plugin_runner(spec, owner)})


def _plugin_runner(spec: CommandSpec, owner: str) -> Callable[[argparse.Namespace], int | None]:
    def run(args: argparse.Namespace) -> int | None:
        try:
            return spec.run(args)
        except (FaceptorError, KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # a bug, not an input error: keep the traceback, say whose code it is
            print(f"error: command {spec.name!r} of plugin {owner!r} failed (traceback below)", file=sys.stderr)
            raise

    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = getattr(args, _PLUGIN_RUN, None) or args.func
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except FaceptorError as exc:  # a mistake in the input: its message says what and where, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
