"""Checkpoints: ``model.safetensors`` plus a small ``faceptor.json`` manifest. Nothing is unpickled."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from . import __version__
from .model.config import ModelConfig

WEIGHTS = "model.safetensors"
MANIFEST = "faceptor.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file."""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def save_pretrained(model, directory: str | os.PathLike) -> Path:
    """Write the model's weights and manifest into ``directory`` (created if needed), atomically per file."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=out, prefix=WEIGHTS + ".")
    os.close(fd)
    save_file(state, tmp, metadata={"format": "pt", "library": "faceptor"})
    os.replace(tmp, out / WEIGHTS)
    manifest = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "num_parameters": model.num_parameters(),
        "config": model.config.model_dump(mode="json"),
    }
    _atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=2).encode())
    return out


def read_manifest(directory: str | os.PathLike) -> tuple[ModelConfig, dict]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{path}: no manifest (is this a Faceptor checkpoint directory?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    try:
        config = ModelConfig.model_validate(manifest.get("config"))
    except ValidationError as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from exc
    return config, manifest


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several error types for corrupt files
        raise CheckpointError(f"{path}: cannot read safetensors weights: {exc}") from exc
