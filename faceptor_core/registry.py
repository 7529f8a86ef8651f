"""The task registry: a pluggy plugin manager plus the tasks, face detectors and CLI commands its plugins
registered.

Entry points in the ``faceptor`` group are loaded one by one, each in its own ``try``: a plugin that
fails to import or to register is recorded with its error and every other plugin keeps working.
Nothing registers at import time; the registry is filled on first use.
"""

from __future__ import annotations

import difflib
import os
import traceback
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from pydantic import ValidationError

from . import hookspecs
from .command import CORE_COMMANDS, CommandSpec
from .detect import DetectorError, DetectorSpec, as_detector
from .errors import FaceptorError, TaskNotFoundError
from .spec import TaskSpec

DISABLE_ENV = "FACEPTOR_DISABLE_PLUGINS"
#: The distribution whose plugins are built in: their task names cannot be taken by another plugin.
BUILTIN_DISTRIBUTION = "faceptor"


class DetectorNotFoundError(FaceptorError, KeyError):
    """An unknown detector name; the message suggests close matches."""

    def __init__(self, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        self.name, self.suggestions = name, close
        super().__init__(f"unknown detector {name!r}.{hint} (registered: {', '.join(known) or 'none'})")

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateTaskError(FaceptorError, ValueError):
    """Two plugins registered a task (or a detector, or a command) with the same name."""

    def __init__(self, task: str, first: str, second: str, kind: str = "task"):
        self.task, self.plugins = task, (first, second)
        super().__init__(f"{kind} {task!r} is registered by both plugin {first!r} and plugin {second!r}")


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
    detectors: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    load_error: str | None = None
    register_error: str | None = None
    command_error: str | None = None
    traceback: str | None = None
    disabled: bool = False
    builtin: bool = False

    @property
    def error(self) -> str | None:
        """Why the plugin is broken (failed import, failed registration, or a command the CLI could not add),
        or ``None``."""
        return self.load_error or "; ".join(e for e in (self.register_error, self.command_error) if e) or None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.disabled


def _format_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(spec)"
            parts.append(f"field {loc!r}: {err['msg']}")
        return f"invalid {exc.title}: {'; '.join(parts)}"
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
        self._detectors: dict[str, DetectorSpec] = {}
        self._detector_owner: dict[str, str] = {}
        self._detector_conflicts: dict[str, list[DuplicateTaskError]] = {}
        self._detector_cache: dict[tuple, Any] = {}
        self._commands: dict[str, CommandSpec] = {}
        self._command_owner: dict[str, str] = {}
        self._command_conflicts: dict[str, list[DuplicateTaskError]] = {}
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
        for info in self._plugins.values():
            info.tasks, info.detectors, info.commands = [], [], []
            info.register_error = info.command_error = None
        errors: dict[str, list[str]] = {}
        self._tasks, self._owner, self._conflicts = self._run_hook("register_tasks", TaskSpec, "task", errors)
        self._detectors, self._detector_owner, self._detector_conflicts = self._run_hook(
            "register_detectors", DetectorSpec, "detector", errors
        )
        self._commands, self._command_owner, self._command_conflicts = self._run_hook(
            "register_commands", CommandSpec, "command", errors, reserved=CORE_COMMANDS
        )
        self._detector_cache.clear()
        for pname, errs in errors.items():
            self._plugins[pname].register_error = "; ".join(errs) or None
        for tname, pname in self._owner.items():
            self._plugins[pname].tasks.append(tname)
        for dname, pname in self._detector_owner.items():
            self._plugins[pname].detectors.append(dname)
        for cname, pname in self._command_owner.items():
            self._plugins[pname].commands.append(cname)
        self._dirty = False

    def _run_hook(
        self, hook: str, spec_cls: type, kind: str, errors: dict[str, list[str]], reserved: Collection[str] = ()
    ):
        """Call every implementation of ``hook`` (built-in plugins first); returns ``(specs, owners, conflicts)``
        by name. A plugin that takes a built-in's name or a ``reserved`` one (the core's commands) is the one
        blamed; one that breaks is named in ``errors`` and what it registered before breaking is kept."""
        specs: dict[str, Any] = {}
        owners: dict[str, str] = {}
        conflicts: dict[str, list[DuplicateTaskError]] = {}
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        for impl in sorted(impls, key=lambda i: (not self._is_builtin(i.plugin_name), i.plugin_name)):
            pname = impl.plugin_name
            self._plugins.setdefault(pname, PluginInfo(name=pname))
            errs = errors.setdefault(pname, [])
            pending: dict[str, Any] = {}

            def register(spec: Any, _pname: str = pname, _pending: dict = pending, _errs: list = errs) -> None:
                if isinstance(spec, dict):
                    spec = spec_cls(**spec)
                if not isinstance(spec, spec_cls):
                    raise PluginRegistrationError(f"register() takes a {spec_cls.__name__}, got {type(spec).__name__}")
                if spec.name in _pending:
                    _errs.append(f"{kind} {spec.name!r} registered twice")
                    return
                if spec.name in reserved:
                    _errs.append(
                        f"{kind} {spec.name!r} is one of the core's {kind}s (`faceptor {spec.name}`); "
                        "this plugin cannot register that name (the core's is kept)"
                    )
                    return
                owner = owners.get(spec.name)
                if owner is not None and self._is_builtin(owner):
                    _errs.append(
                        f"{kind} {spec.name!r} is a built-in {kind} of plugin {owner!r}; "
                        "this plugin cannot register that name (the built-in is kept)"
                    )
                    return
                if owner is not None:
                    # record the clash, keep going: the plugin's other registrations are not lost
                    err = DuplicateTaskError(spec.name, owner, _pname, kind)
                    conflicts.setdefault(spec.name, []).append(err)
                    _errs.append(str(err))
                    return
                _pending[spec.name] = spec

            try:
                returned = impl.function(register=register)
                if returned is not None:
                    errs.append(
                        f"{hook} returned {type(returned).__name__} (it must call register(spec) for each "
                        f"{kind} and return None); the returned value is ignored"
                    )
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # report the plugin by name, keep the others
                errs.append(f"failed to register {kind}s: {_format_error(exc)}")
            # what was registered before a failure stays: nothing is silently lost
            for name, spec in pending.items():
                if isinstance(spec, TaskSpec):
                    spec = spec.model_copy()  # the registry's own copy, marked with its plugin
                    spec._plugin = pname
                specs[name] = spec
                owners[name] = pname
        return specs, owners, conflicts

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

    def list_commands(self) -> list[CommandSpec]:
        """Every usable plugin command, sorted by name (one that two plugins claim is left out)."""
        self._collect()
        return [self._commands[n] for n in sorted(self._commands) if n not in self._command_conflicts]

    def command_owner(self, name: str) -> str:
        """The plugin that registered command ``name``."""
        self._collect()
        return self._command_owner[name]

    def record_command_error(self, name: str, message: str) -> None:
        """The CLI could not add command ``name``: blame its plugin (shown by ``list_plugins``)."""
        info = self._plugins[self.command_owner(name)]
        info.command_error = "; ".join(e for e in (info.command_error, f"command {name!r}: {message}") if e)

    def list_detectors(self) -> list[DetectorSpec]:
        """Every usable detector, sorted by name."""
        self._collect()
        return [self._detectors[n] for n in sorted(self._detectors) if n not in self._detector_conflicts]

    def detector_owner(self, name: str) -> str:
        self.get_detector_spec(name)
        return self._detector_owner[name]

    def get_detector_spec(self, name: str) -> DetectorSpec:
        """The declaration of detector ``name``; :class:`DetectorNotFoundError` with suggestions when unknown."""
        self._collect()
        if name in self._detector_conflicts:
            raise self._detector_conflicts[name][0]
        try:
            return self._detectors[name]
        except KeyError:
            raise DetectorNotFoundError(name, self._detectors) from None

    def detector(self, name: str, **options: Any) -> Any:
        """A ready detector (made once per name and options, then reused); a factory that fails is reported
        with the detector's and the plugin's names."""
        spec = self.get_detector_spec(name)
        key = (name, tuple(sorted(options.items())))
        if key not in self._detector_cache:
            try:
                obj = spec.factory(**options)
            except DetectorError:
                raise
            except Exception as exc:
                raise DetectorError(
                    f"detector {name!r} (plugin {self._detector_owner[name]!r}) cannot be loaded: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self._detector_cache[key] = as_detector(obj, name)
        return self._detector_cache[key]


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


def list_detectors() -> list[DetectorSpec]:
    """All registered face detectors, sorted by name."""
    return default_registry().list_detectors()


def list_plugins() -> list[PluginInfo]:
    """Every plugin seen, with its tasks or the error that stopped it."""
    return default_registry().list_plugins()
