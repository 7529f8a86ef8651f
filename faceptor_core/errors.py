"""Errors a user (or a plugin author) can act on: the message is the whole story, so the command line prints
it on one line, without a traceback.

Every such error derives from :class:`FaceptorError`; the core's specific errors (``CheckpointError``,
``ConfigError``, ``TaskNotFoundError``, ...) and the task families' ``DatasetFormatError`` all do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class FaceptorError(Exception):
    """A mistake in the input (a file, a configuration, a plugin); the message names what and where."""


class TaskNotFoundError(FaceptorError, KeyError):
    """An unknown task name; the message suggests close matches."""

    def __init__(self, name: str, known: Iterable[str], where: str = "registered; see `faceptor tasks`"):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        self.name = name
        self.suggestions = close
        super().__init__(f"unknown task {name!r}.{hint} ({len(known)} tasks {where})")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class PluginContractError(FaceptorError, TypeError):
    """A plugin's callable returned something its contract does not allow; names the task, the plugin and
    the callable."""


class RunDirectoryError(FaceptorError):
    """An output directory that already holds another run's results."""


def describe_callable(fn: Any) -> str:
    """``module.qualname`` of a function, a ``functools.partial`` or a callable object."""
    inner = getattr(fn, "func", fn)  # functools.partial
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    module = getattr(inner, "__module__", None) or type(inner).__module__
    return f"{module}.{name}" if module and module != "builtins" else name


def plugin_of(spec: Any) -> str:
    """The plugin that registered ``spec`` (``"unregistered"`` for a spec built by hand)."""
    return getattr(spec, "plugin", None) or "unregistered"


def contract_error(spec: Any, field: str, problem: str) -> PluginContractError:
    """``task 'x' (plugin 'p'): dataset callable mod.fn returned None; expected ...``."""
    fn = getattr(spec, field, None)
    what = describe_callable(fn) if fn is not None else "(none)"
    return PluginContractError(f"task {spec.name!r} (plugin {plugin_of(spec)!r}): {field} callable {what} {problem}")
