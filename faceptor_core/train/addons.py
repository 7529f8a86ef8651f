"""Prompt-tuning add-ons: the new tasks' parameters in a small file that loads on top of a base checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..checkpoint import WEIGHTS, CheckpointError
from ..model.base import FaceptorBase
from ..spec import TaskHead

ADDON_WEIGHTS = "addon.safetensors"
ADDON_MANIFEST = "addon.json"


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_addon(model: FaceptorBase, tasks: list[str], base_dir: str | os.PathLike | None, out: Path) -> Path:
    """Save the parameters of ``tasks`` (and anything else absent from the base) as an add-on."""
    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    base_keys: set[str] = set()
    digest = None
    if base_dir is not None:
        base_weights = Path(base_dir) / WEIGHTS
        base_keys = set(load_file(str(base_weights)).keys())
        digest = file_digest(base_weights)
    keys = [k for k in state if model.task_of_key(k) in tasks or (base_keys and k not in base_keys)]
    save_file({k: state[k].detach().contiguous().cpu() for k in keys}, str(out / ADDON_WEIGHTS))
    heads = [model.tasks[t].model_dump(mode="json") for t in tasks]
    manifest = {"tasks": heads, "base_sha256": digest, "keys": keys,
                "num_parameters": int(sum(state[k].numel() for k in keys))}
    (out / ADDON_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def load_addon(model: FaceptorBase, directory: str | os.PathLike, base_dir: str | os.PathLike | None = None,
               check_base: bool = True) -> list[str]:
    """Add the add-on's tasks to ``model`` and load their parameters; returns the task names."""
    directory = Path(directory)
    path = directory / ADDON_MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{path}: no add-on manifest")
    manifest = json.loads(path.read_text())
    if check_base and base_dir is not None and manifest.get("base_sha256"):
        actual = file_digest(Path(base_dir) / WEIGHTS)
        if actual != manifest["base_sha256"]:
            raise CheckpointError(f"{directory}: this add-on was tuned on another base checkpoint than {base_dir}")
    names = []
    for head in manifest["tasks"]:
        model.add_task(TaskHead.model_validate(head))
        names.append(head["name"])
    weights = load_file(str(directory / ADDON_WEIGHTS))
    own = model.state_dict()
    unknown = [k for k in weights if k not in own]
    if unknown:
        raise CheckpointError(f"{directory}: add-on keys the model does not have: {unknown[:5]}")
    with torch.no_grad():
        for k, v in weights.items():
            own[k].copy_(v)
    return names
