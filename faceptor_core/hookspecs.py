"""Hook specifications a Faceptor plugin implements: ``register_tasks`` and ``register_detectors`` (either or
both).

A plugin is a module (or object) with functions decorated by :data:`faceptor_core.hookimpl`, exposed
through the ``faceptor`` entry-point group::

    [project.entry-points.faceptor]
    gaze = "faceptor_task_gaze.plugin"
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

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
