"""Prompt-tuning add-ons: the new tasks' parameters in a small file that loads on top of a base checkpoint.

``addon.json`` records the SHA-256 of the base checkpoint's weights (``base_sha256``, required: an add-on
loads onto the base it was tuned on and no other) and of its own weights (``weights_sha256``). Every
error names the file at fault.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from pydantic import ValidationError

from .checkpoint import (
    MANIFEST,
    WEIGHTS,
    CheckpointError,
    _is_sha256,
    check_shapes,
    file_digest,
    read_header,
    read_json,
    read_weights,
    save_state,
    validation_message,
    verify_digest,
    write_json,
)
from .model.base import FaceptorBase
from .spec import TaskHead

ADDON_WEIGHTS = "addon.safetensors"
ADDON_MANIFEST = "addon.json"
ADDON_FORMAT_VERSION = 1

__all__ = ["ADDON_MANIFEST", "ADDON_WEIGHTS", "file_digest", "load_addon", "save_addon"]


def _base_digest(base_dir: Path) -> str:
    """The base's weights checksum: the one its manifest records (verified when the base was loaded), else
    the file's own."""
    manifest = base_dir / MANIFEST
    if manifest.is_file():
        recorded = read_json(manifest, "manifest").get("weights_sha256")
        if _is_sha256(recorded):
            return recorded
    return file_digest(base_dir / WEIGHTS)


def save_addon(model: FaceptorBase, tasks: list[str], base_dir: str | os.PathLike, out: Path) -> Path:
    """Save the parameters of ``tasks`` (and anything else absent from the base) as an add-on tied to the
    base checkpoint ``base_dir``."""
    base_dir = Path(base_dir)
    base_keys = set(read_header(base_dir / WEIGHTS))
    state = model.state_dict()
    keys = [k for k in state if model.task_of_key(k) in tasks or k not in base_keys]
    out.mkdir(parents=True, exist_ok=True)
    digest = save_state({k: state[k] for k in keys}, out / ADDON_WEIGHTS, "add-on weights")
    manifest = {
        "format_version": ADDON_FORMAT_VERSION,
        "tasks": [model.tasks[t].model_dump(mode="json") for t in tasks],
        "base_sha256": _base_digest(base_dir),
        "weights_sha256": digest,
        "keys": keys,
        "num_parameters": int(sum(state[k].numel() for k in keys)),
    }
    write_json(out / ADDON_MANIFEST, manifest)
    return out


def read_addon_manifest(directory: Path) -> tuple[list[TaskHead], dict]:
    """The add-on's task heads and raw manifest, validated; errors name ``addon.json``."""
    path = directory / ADDON_MANIFEST
    manifest = read_json(path, "add-on manifest (addon.json)")
    base = manifest.get("base_sha256")
    if not _is_sha256(base):
        raise CheckpointError(
            f"{path}: base_sha256 must be the 64-digit SHA-256 of the base checkpoint's "
            f"{WEIGHTS}, got {base!r}; an add-on only loads onto the base it was tuned on"
        )
    own = manifest.get("weights_sha256")
    if own is not None and not _is_sha256(own):
        raise CheckpointError(f"{path}: weights_sha256 must be 64 hexadecimal digits, got {own!r}")
    raw_tasks = manifest.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise CheckpointError(f"{path}: 'tasks' must be a non-empty list of task heads")
    heads = []
    for i, raw in enumerate(raw_tasks):
        try:
            heads.append(TaskHead.model_validate(raw))
        except ValidationError as exc:
            raise CheckpointError(f"{path}: tasks.{i}: {validation_message(exc)}") from None
    return heads, manifest


def load_addon(
    model: FaceptorBase,
    directory: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    check_base: bool = True,
    base_digest: str | None = None,
) -> list[str]:
    """Add the add-on's tasks to ``model`` and load their parameters; returns the task names.

    The add-on must have been tuned on the base at ``base_dir`` (whose weights' SHA-256 is ``base_digest``
    when the caller already verified it). ``check_base=False`` skips that check (the caller vouches for the
    base)."""
    directory = Path(directory)
    path = directory / ADDON_MANIFEST
    heads, manifest = read_addon_manifest(directory)
    if check_base:
        if base_dir is None and base_digest is None:
            raise CheckpointError(
                f"{path}: the base checkpoint is unknown, so the add-on's base_sha256 cannot be "
                "checked; pass base_dir (or check_base=False)"
            )
        actual = base_digest or _base_digest(Path(base_dir))  # type: ignore[arg-type]
        if actual != manifest["base_sha256"]:
            raise CheckpointError(
                f"{path}: this add-on was tuned on another base checkpoint than {base_dir} "
                f"(base_sha256 {manifest['base_sha256'][:12]}..., this base {actual[:12]}...)"
            )
    weights_path = directory / ADDON_WEIGHTS
    clash = [h.name for h in heads if h.name in model.tasks]
    if clash:
        raise CheckpointError(f"{path}: the model already has task(s) {', '.join(clash)}")
    found = read_header(weights_path)
    if manifest.get("weights_sha256") is not None:
        verify_digest(weights_path, manifest["weights_sha256"], path)
    names = []
    try:
        for head in heads:
            model.add_task(head)
            names.append(head.name)
    except ValueError as exc:
        raise CheckpointError(f"{path}: task {head.name!r} cannot be added: {exc}") from None
    own = model.state_dict()
    unknown = [k for k in found if k not in own]
    if unknown:
        raise CheckpointError(f"{weights_path}: add-on keys the model does not have: {unknown[:5]}")
    expected = {k: tuple(own[k].shape) for k in found}
    check_shapes(weights_path, expected, found, path)
    missing = [k for n in names for k in own if model.task_of_key(k) == n and k not in found]
    if missing:
        raise CheckpointError(f"{weights_path}: the add-on's tasks lack tensors: {missing[:5]}")
    weights = read_weights(weights_path)
    with torch.no_grad():
        for k, v in weights.items():
            own[k].copy_(v)
    return names
