"""``CommandSpec``: a ``faceptor <name>`` command a plugin adds through the ``register_commands`` hook.

A plugin declares the command; the core's CLI makes its argparse sub-parser (with the help formatter every
command shares: each option's help text followed by its default), lets the plugin declare its arguments on
it, and calls ``run`` with the parsed arguments::

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("out", help="output folder")
        parser.add_argument("--count", type=int, default=16, help="faces to draw")

    def run(args: argparse.Namespace) -> int:
        ...
        return 0  # the exit status (None counts as 0)

    @hookimpl
    def register_commands(register):
        register(CommandSpec(name="sheet", help="draw a contact sheet", add_arguments=add_arguments, run=run))

Errors in a command's input are :class:`~faceptor_core.errors.FaceptorError`s: the CLI prints their one-line
message (no traceback) and exits with status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

#: The commands of the core itself (``faceptor_core.cli``): a plugin cannot register these names.
CORE_COMMANDS = ("convert", "detectors", "eval", "export", "plugins", "predict", "serve", "tasks", "train", "tune")


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command without arguments."""


class CommandSpec(BaseModel):
    """Declaration of one CLI command (what ``register_commands`` registers)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=40, description="The word after ``faceptor``.")
    help: str = Field(min_length=1, description="One line, shown in ``faceptor --help``.")
    run: Callable[[argparse.Namespace], int | None] = Field(
        description="run(args) -> exit status (None: 0); called with the parsed arguments."
    )
    add_arguments: Callable[[argparse.ArgumentParser], None] = Field(
        default=_no_arguments,
        description="add_arguments(parser): declares the command's arguments (and sub-commands, with "
        "parser.add_subparsers) on its parser, each with a help text. It only declares: it may be "
        "called more than once (the CLI tries it on a scratch parser first).",
    )
    description: str = Field(default="", description="Longer text for ``faceptor NAME --help`` (default: help).")
