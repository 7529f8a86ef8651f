"""The ``faceptor`` entry point of the built-in tasks."""

from __future__ import annotations

from collections.abc import Callable

from faceptor_core.command import CommandSpec
from faceptor_core.detect import DetectorSpec
from faceptor_core.hookspecs import hookimpl
from faceptor_core.spec import TaskSpec

from .builtin import builtin_tasks
from .detectors import builtin_detectors
from .synth_tasks import synth_tasks
from .synthfaces.commands import commands


@hookimpl
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    for spec in [*builtin_tasks(), *synth_tasks()]:
        register(spec)


@hookimpl
def register_detectors(register: Callable[[DetectorSpec], None]) -> None:
    for spec in builtin_detectors():
        register(spec)


@hookimpl
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    for spec in commands():
        register(spec)
