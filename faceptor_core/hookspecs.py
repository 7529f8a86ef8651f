"""Hook specifications a Faceptor plugin implements: ``register_tasks``, ``register_detectors`` and
``register_commands`` (any of them).

A plugin is a module (or object) with functions decorated by :data:`faceptor_core.hookimpl`, exposed
through the ``faceptor`` entry-point group::

    [project.entry-points.faceptor]
    gaze = "faceptor_task_gaze.plugin"
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from .command import CommandSpec
from .detect import DetectorSpec
from .spec import TaskSpec

PROJECT = "faceptor"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    """Register tasks by calling ``register(TaskSpec(...))`` once per task."""


@hookspec
def register_detectors(register: Callable[[DetectorSpec], None]) -> None:
    """Register face detectors by calling ``register(DetectorSpec(...))`` once per detector."""


@hookspec
def register_commands(register: Callable[[CommandSpec], None]) -> None:
    """Add ``faceptor <name>`` commands by calling ``register(CommandSpec(...))`` once per command.

    A command named like one of the core's (:data:`~faceptor_core.command.CORE_COMMANDS`) or a built-in
    plugin's is refused and the plugin is reported as broken; a hook that raises, or a command whose
    ``add_arguments`` raises, is reported with the plugin's name and leaves every other command working."""
