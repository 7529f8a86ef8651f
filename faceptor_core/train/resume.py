"""What may change when a run is resumed: the saved ``config.json`` against the configuration given to ``--resume``.

A resumed run continues the trajectory the saved one started, so everything that shapes it (model, tasks and their
data, weights, optimizer, warm-up, training mode, seed, precision) must be what it was. Only what does not touch the
weights may differ: where the run and its data live, how often it logs, evaluates and saves, how many items it
scores, and ``schedule.steps`` (to extend a run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import ConfigError, RunConfig, validate_run_config

#: Field paths (``*`` for any task) that may differ between a run and its resumption.
RESUMABLE = frozenset(
    {
        "output_dir",
        "schedule.steps",
        "eval_every",
        "checkpoint_every",
        "log_every",
        "eval_batch_size",
        "num_workers",
        "progress",
        "tasks.*.root",
        "tasks.*.eval_limit",
    }
)


def config_changes(old: RunConfig, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``{field path: (old value, new value)}`` for every leaf that differs (lists of different length: the list)."""
    out: dict[str, tuple[Any, Any]] = {}
    _diff(old.model_dump(mode="json"), new.model_dump(mode="json"), "", out)
    return out


def _diff(a: Any, b: Any, path: str, out: dict[str, tuple[Any, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and path == "tasks":
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}.{i}", out)
    elif a != b:
        out[path] = (a, b)


def _pattern(path: str) -> str:
    parts = path.split(".")
    if parts[0] == "tasks" and len(parts) > 2:
        parts[1] = "*"
    return ".".join(parts)


def check_resume_config(saved: Path, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """The allowed changes from the run saved in ``saved`` (its ``config.json``) to ``new``; a change that would not
    continue the same run is a :class:`ConfigError` naming the file and each field. A run saved without a
    ``config.json`` (interrupted before its first step) is not compared."""
    if not saved.is_file():
        return {}
    try:
        data = json.loads(saved.read_text())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ConfigError(f"{saved}: cannot read the configuration the run was started with: {exc}") from None
    old = validate_run_config(data, saved)
    changes = config_changes(old, new)
    refused = {k: v for k, v in changes.items() if _pattern(k) not in RESUMABLE}
    if refused:
        lines = "\n".join(f"  {k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        raise ConfigError(
            f"{saved}: the run was started with another configuration; resuming would not continue it:\n{lines}\n"
            f"resume with the configuration it was started with (only {', '.join(sorted(RESUMABLE))} may change), "
            "or start a new output_dir"
        )
    return changes
