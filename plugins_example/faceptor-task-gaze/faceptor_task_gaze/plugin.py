"""The ``faceptor`` entry point of this plugin."""

from __future__ import annotations

from collections.abc import Callable

from faceptor_core import TaskSpec, hookimpl

from .tasks import gaze_tasks


@hookimpl
def register_tasks(register: Callable[[TaskSpec], None]) -> None:
    for spec in gaze_tasks():
        register(spec)
