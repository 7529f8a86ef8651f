"""CLI commands come from plugins (``register_commands``); every option of every command explains itself."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import faceptor_core
from faceptor_core import TaskRegistry, hookimpl
from faceptor_core.cli import build_parser, main
from faceptor_core.command import CORE_COMMANDS, CommandSpec
from faceptor_core.errors import FaceptorError


class CommandPlugin:
    def __init__(self, *commands: CommandSpec):
        self.commands = commands

    @hookimpl
    def register_commands(self, register):
        for c in self.commands:
            register(c)


def _greet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("who", help="whom to greet")
    parser.add_argument("--times", type=int, default=2, help="how often")


def _greet(args: argparse.Namespace) -> int:
    print(" ".join([f"hello {args.who}"] * args.times))
    return 3


GREET = CommandSpec(name="greet", help="say hello", add_arguments=_greet_arguments, run=_greet)


@pytest.fixture
def plugins():
    """Register plugins on the process-wide registry (which ``main`` uses) and take them away afterwards."""
    reg = faceptor_core.default_registry()
    names: list[str] = []

    def add(plugin, name: str) -> None:
        reg.register_plugin(plugin, name=name)
        names.append(name)

    yield add
    for name in names:
        reg.unregister_plugin(name)


def test_an_inline_plugin_adds_a_command_that_main_runs(plugins, capsys):
    plugins(CommandPlugin(GREET), "greeter")
    assert main(["greet", "Ada", "--times", "3"]) == 3
    assert capsys.readouterr().out.strip() == "hello Ada hello Ada hello Ada"
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listing = capsys.readouterr().out
    assert "greet" in listing and "say hello [plugin greeter]" in listing
    with pytest.raises(SystemExit):
        main(["greet", "--help"])
    assert "how often (default: 2)" in capsys.readouterr().out
    assert main(["plugins"]) == 0
    assert "greeter: 0 tasks: ; commands: greet" in capsys.readouterr().out


def test_builtin_commands_come_from_the_builtin_plugin():
    reg = faceptor_core.default_registry()
    assert reg.command_owner("synth") == reg.command_owner("demo") == "faceptor_tasks"
    core_only = build_parser(TaskRegistry(load_entry_points=False))
    sub = next(a for a in core_only._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(CORE_COMMANDS)  # the names plugins are refused are exactly the core's


def test_a_broken_command_hook_is_reported_by_name_and_the_rest_works(plugins, capsys):
    class Broken:
        @hookimpl
        def register_commands(self, register):
            raise RuntimeError("boom in the command hook")

    plugins(Broken(), "broken_cmds")
    plugins(CommandPlugin(GREET), "greeter")
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "broken plugins" in out and "plugin 'broken_cmds': failed to register commands" in out
    assert "boom in the command hook" in out
    assert main(["greet", "Bo", "--times", "1"]) == 3
    assert main(["tasks"]) == 0 and "landmarks_300w" in capsys.readouterr().out
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "broken_cmds: BROKEN: failed to register commands: RuntimeError: boom in the command hook" in out


def test_a_command_whose_arguments_break_is_left_out(plugins, capsys):
    def bad_arguments(parser):
        parser.add_argument("--x", help="first")
        parser.add_argument("--x", help="again")  # argparse refuses a second --x

    plugins(
        CommandPlugin(CommandSpec(name="wobbly", help="breaks", add_arguments=bad_arguments, run=_greet), GREET),
        "half_broken",
    )
    assert main(["greet", "Cy", "--times", "1"]) == 3
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["wobbly"])
    assert exit_info.value.code == 2 and "invalid choice: 'wobbly'" in capsys.readouterr().err
    info = {p.name: p for p in faceptor_core.list_plugins()}["half_broken"]
    assert "command 'wobbly': add_arguments failed: ArgumentError" in info.error


@pytest.mark.parametrize(
    "name, blamed", [("train", "one of the core's commands"), ("demo", "built-in command of plugin 'faceptor_tasks'")]
)
def test_a_command_name_clash_is_refused_naming_the_plugin(plugins, capsys, name, blamed):
    plugins(CommandPlugin(CommandSpec(name=name, help="an impostor", run=_greet), GREET), "impostor")
    assert main(["plugins"]) == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("impostor"))
    assert "BROKEN" in line and f"command {name!r}" in line and blamed in line
    with pytest.raises(SystemExit):
        main([name, "--help"])
    assert "an impostor" not in capsys.readouterr().out  # the core's / built-in command is kept
    assert main(["greet", "Di", "--times", "1"]) == 3  # the plugin's other command still works


def test_two_plugins_claiming_a_command_both_named(plugins, capsys):
    plugins(CommandPlugin(CommandSpec(name="twice", help="a", run=_greet)), "plugin_a")
    plugins(CommandPlugin(CommandSpec(name="twice", help="b", run=_greet)), "plugin_b")
    reg = faceptor_core.default_registry()
    assert "twice" not in [c.name for c in reg.list_commands()]
    error = {p.name: p for p in reg.list_plugins()}["plugin_b"].error
    assert "plugin_a" in error and "plugin_b" in error and "twice" in error


def test_invalid_command_specs_are_refused():
    with pytest.raises(ValueError, match="name"):
        CommandSpec(name="Bad Name", help="x", run=_greet)
    with pytest.raises(ValueError, match="help"):
        CommandSpec(name="fine", help="", run=_greet)


def test_plugin_command_errors(plugins, capsys):
    def user_error(args):
        raise FaceptorError("the file x.json: line 3: field 'age' is missing")

    def bug(args):
        raise ZeroDivisionError("division by zero")

    def nested(parser):  # a plugin's own sub-commands may use `func`: the CLI keeps its runner elsewhere
        sub = parser.add_subparsers(dest="what", required=True, help="what to do")
        sub.add_parser("bug", help="crash").set_defaults(func=bug)

    plugins(
        CommandPlugin(
            CommandSpec(name="user-error", help="x", run=user_error),
            CommandSpec(name="nested", help="y", add_arguments=nested, run=lambda a: a.func(a)),
        ),
        "faulty",
    )
    assert main(["user-error"]) == 2
    assert capsys.readouterr().err == "error: the file x.json: line 3: field 'age' is missing\n"
    with pytest.raises(ZeroDivisionError):
        main(["nested", "bug"])
    assert "command 'nested' of plugin 'faulty' failed" in capsys.readouterr().err


def _parsers(parser: argparse.ArgumentParser, prog: str = "faceptor") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{prog} {name}")


FLAGS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
    argparse._HelpAction,
    argparse._VersionAction,
)


def test_every_option_of_every_command_has_a_help_text_and_shows_its_default():
    parsers = dict(_parsers(build_parser()))
    assert {"faceptor predict", "faceptor synth export", "faceptor synth preview", "faceptor demo"} <= set(parsers)
    missing, no_default = [], []
    for prog, parser in parsers.items():
        formatter = parser.formatter_class(prog=prog)
        for action in parser._actions:
            where = f"{prog} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(where)
                continue
            if action.option_strings and not action.required and not isinstance(action, FLAGS):
                text = formatter._get_help_string(action) % {**vars(action), "prog": prog}
                if "default" not in text:
                    no_default.append(where)
    assert not missing, f"options without a help text: {missing}"
    assert not no_default, f"options whose help shows no default: {no_default}"
    help_text = parsers["faceptor eval"].format_help()
    assert "(default: 32)" in help_text and "(default: test)" in help_text


def test_the_core_imports_nothing_from_faceptor_tasks():
    root = Path(faceptor_core.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if any(n.split(".")[0] == "faceptor_tasks" for n in names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, f"faceptor_core imports faceptor_tasks at {offenders}"
