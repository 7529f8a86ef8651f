"""The task registry: a pluggy plugin manager plus the tasks its plugins registered.

Entry points in the ``faceptor`` group are loaded one by one, each in its own ``try``: a plugin that
fails to import or to register is recorded with its error and every other plugin keeps working.
Nothing registers at import time; the registry is filled on first use.
"""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from pydantic import ValidationError

from . import hookspecs
from .errors import FaceptorError
from .spec import TaskSpec

DISABLE_ENV = "FACEPTOR_DISABLE_PLUGINS"
#: The distribution whose plugins are built in: their task names cannot be taken by another plugin.
BUILTIN_DISTRIBUTION = "faceptor"


class TaskNotFoundError(FaceptorError, KeyError):
    """An unknown task name; the message suggests close matches."""

    def __init__(self, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        self.name = name
        self.suggestions = close
        super().__init__(f"unknown task {name!r}.{hint} ({len(known)} tasks registered; see `faceptor tasks`)")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class DuplicateTaskError(FaceptorError, ValueError):
    """Two plugins registered a task with the same name."""

    def __init__(self, task: str, first: str, second: str):
        self.task, self.plugins = task, (first, second)
        super().__init__(f"task {task!r} is registered by both plugin {first!r} and plugin {second!r}")


class PluginRegistrationError(FaceptorError, ValueError):
    """A plugin registered something that is not a valid task."""


@dataclass
class PluginInfo:
    """What the registry knows about one plugin."""

    name: str
    module: str = ""
    distribution: str = ""
    version: str = ""
    tasks: list[str] = field(default_factory=list)
    load_error: str | None = None
    register_error: str | None = None
    traceback: str | None = None
    disabled: bool = False
    builtin: bool = False

    @property
    def error(self) -> str | None:
        """Why the plugin is broken (failed import or failed registration), or ``None``."""
        return self.load_error or self.register_error

    @property
    def ok(self) -> bool:
        return self.error is None and not self.disabled


def _format_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(spec)"
            parts.append(f"field {loc!r}: {err['msg']}")
        return f"invalid TaskSpec: {'; '.join(parts)}"
    return f"{type(exc).__name__}: {exc}"


class TaskRegistry:
    """Holds the plugin manager and the registered tasks.

    ``load_entry_points=False`` gives an empty registry (for tests and embedding); plugins can be added
    with :meth:`register_plugin` either way.
    """

    def __init__(self, load_entry_points: bool = True, group: str = hookspecs.PROJECT):
        self.group = group
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._entry_points_loaded = False
        self._plugins: dict[str, PluginInfo] = {}
        self._tasks: dict[str, TaskSpec] = {}
        self._owner: dict[str, str] = {}
        self._conflicts: dict[str, list[DuplicateTaskError]] = {}
        self._dirty = True

    # -- plugins -------------------------------------------------------------------------------------
    @staticmethod
    def disabled_names() -> set[str]:
        raw = os.environ.get(DISABLE_ENV, "")
        return {p.strip() for p in raw.split(",") if p.strip()}

    def _ensure_entry_points(self) -> None:
        if self._entry_points_loaded or not self._load_entry_points:
            return
        self._entry_points_loaded = True
        disabled = self.disabled_names()
        for ep in sorted(metadata.entry_points(group=self.group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else "",
                version=dist.version if dist is not None else "",
            )
            info.builtin = info.distribution == BUILTIN_DISTRIBUTION
            self._plugins[ep.name] = info
            if ep.name in disabled or info.distribution in disabled:
                info.disabled = True
                continue
            try:
                obj = ep.load()
                self.pm.register(obj, name=ep.name)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not break the others
                info.load_error = f"failed to load {ep.value!r}: {_format_error(exc)}"
                info.traceback = traceback.format_exc()
        self._dirty = True

    def register_plugin(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin object or module (its ``register_tasks`` hook is called on next use)."""
        self._ensure_entry_points()
        plugin_name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if plugin_name in self.disabled_names():
            self._plugins[plugin_name] = PluginInfo(name=plugin_name, disabled=True)
            return plugin_name
        self.pm.register(plugin, name=plugin_name)
        self._plugins[plugin_name] = PluginInfo(
            name=plugin_name, module=getattr(plugin, "__name__", type(plugin).__name__)
        )
        self._dirty = True
        return plugin_name

    def unregister_plugin(self, name: str) -> None:
        """Remove a plugin and every task it registered."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self._plugins.pop(name, None)
        self._dirty = True

    def _collect(self) -> None:
        self._ensure_entry_points()
        if not self._dirty:
            return
        self._tasks.clear()
        self._owner.clear()
        self._conflicts.clear()
        for info in self._plugins.values():
            info.tasks = []
            info.register_error = None
        impls = self.pm.hook.register_tasks.get_hookimpls()
        # built-in plugins first: a plugin that takes a built-in task's name is the one blamed
        order = sorted(impls, key=lambda i: (not self._is_builtin(i.plugin_name), i.plugin_name))
        for impl in order:
            pname = impl.plugin_name
            info = self._plugins.setdefault(pname, PluginInfo(name=pname))
            pending: dict[str, TaskSpec] = {}
            errors: list[str] = []

            def register(
                spec: TaskSpec | dict, _pname: str = pname, _pending: dict = pending, _errors: list = errors
            ) -> None:
                if isinstance(spec, dict):
                    spec = TaskSpec(**spec)
                if not isinstance(spec, TaskSpec):
                    raise PluginRegistrationError(f"register() takes a TaskSpec, got {type(spec).__name__}")
                if spec.name in _pending:
                    _errors.append(f"task {spec.name!r} registered twice")
                    return
                owner = self._owner.get(spec.name)
                if owner is not None and self._is_builtin(owner):
                    _errors.append(f"task {spec.name!r} is a built-in task of plugin {owner!r}; "
                                   "this plugin cannot register that name (the built-in is kept)")
                    return
                if owner is not None:
                    # record the clash, keep going: the plugin's other tasks are not lost
                    err = DuplicateTaskError(spec.name, owner, _pname)
                    self._conflicts.setdefault(spec.name, []).append(err)
                    _errors.append(str(err))
                    return
                _pending[spec.name] = spec

            try:
                returned = impl.function(register=register)
                if returned is not None:
                    errors.append(f"register_tasks returned {type(returned).__name__} (it must call "
                                  "register(spec) for each task and return None); the returned value is ignored")
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # report the plugin by name, keep the others
                errors.append(f"failed to register tasks: {_format_error(exc)}")
            info.register_error = "; ".join(errors) or None
            # tasks registered before a failure stay: nothing is silently lost
            for tname, spec in pending.items():
                spec = spec.model_copy()  # the registry's own copy, marked with its plugin
                spec._plugin = pname
                self._tasks[tname] = spec
                self._owner[tname] = pname
                info.tasks.append(tname)
        self._dirty = False

    def _is_builtin(self, plugin_name: str) -> bool:
        info = self._plugins.get(plugin_name)
        return info is not None and info.builtin

    # -- queries -------------------------------------------------------------------------------------
    def list_plugins(self) -> list[PluginInfo]:
        self._collect()
        return sorted(self._plugins.values(), key=lambda p: p.name)

    def list_tasks(self) -> list[TaskSpec]:
        """Every usable task, sorted by name (a name two plugins claim is left out: see ``list_plugins``)."""
        return [self._tasks[n] for n in self.task_names()]

    def task_names(self) -> list[str]:
        self._collect()
        return sorted(n for n in self._tasks if n not in self._conflicts)

    def owner(self, name: str) -> str:
        self.get_task(name)
        return self._owner[name]

    def get_task(self, name: str) -> TaskSpec:
        self._collect()
        if name in self._conflicts:
            raise self._conflicts[name][0]
        try:
            return self._tasks[name]
        except KeyError:
            raise TaskNotFoundError(name, self._tasks) from None


_default: TaskRegistry | None = None


def default_registry() -> TaskRegistry:
    """The process-wide registry, filled from entry points on first use."""
    global _default
    if _default is None:
        _default = TaskRegistry()
    return _default


def reset_default_registry() -> None:
    """Forget the process-wide registry (the next use reloads entry points)."""
    global _default
    _default = None


def list_tasks() -> list[TaskSpec]:
    """All registered tasks, sorted by name."""
    return default_registry().list_tasks()


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; :class:`TaskNotFoundError` with suggestions when unknown."""
    return default_registry().get_task(name)


def list_plugins() -> list[PluginInfo]:
    """Every plugin seen, with its tasks or the error that stopped it."""
    return default_registry().list_plugins()
