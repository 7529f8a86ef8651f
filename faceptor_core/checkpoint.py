"""Checkpoints: ``model.safetensors`` plus a small ``faceptor.json`` manifest. Nothing is unpickled.

Guarantees (docs/reliability.md):

- writing: every file is written through a temporary file, fsynced and renamed; weights holding NaN or
  infinite values are refused; the manifest records the SHA-256 of the weights file (``weights_sha256``);
- reading: the manifest is validated (bounded sizes, consistent heads), the weights' header is compared with
  the shapes the manifest implies *before* anything is allocated, the checksum is verified, and non-finite
  weights are refused. Every error names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import __version__
from .durable import write_atomic
from .errors import FaceptorError
from .model.config import ModelConfig

WEIGHTS = "model.safetensors"
MANIFEST = "faceptor.json"
FORMAT_VERSION = 1
#: Largest manifest accepted (a real one is a few kilobytes).
MAX_MANIFEST_BYTES = 1 << 20


class CheckpointError(FaceptorError, RuntimeError):
    """A checkpoint that cannot be read or written; the message names the file."""


class ChecksumWarning(UserWarning):
    """A checkpoint written before checksums were recorded: its weights cannot be verified."""


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def non_finite_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys of floating-point tensors holding NaN or infinite values."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _some(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def save_state(state: Mapping[str, torch.Tensor], path: str | os.PathLike, what: str = "weights") -> str:
    """Write a safetensors file atomically and durably; returns its SHA-256. Non-finite tensors are refused."""
    bad = non_finite_keys(state)
    if bad:
        raise CheckpointError(f"{path}: refusing to write {what} with NaN or infinite values in {_some(bad)}")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt", "library": "faceptor"}))
    return file_digest(path)


def write_json(path: str | os.PathLike, data: Mapping) -> None:
    write_atomic(path, json.dumps(data, indent=2).encode())


def save_pretrained(model, directory: str | os.PathLike) -> Path:
    """Write the model's weights and manifest into ``directory`` (created if needed), atomically per file.

    The manifest goes last and carries the weights' checksum, so a crash between the two files leaves a
    manifest that does not match the weights, which loading reports instead of using."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    digest = save_state(model.state_dict(), out / WEIGHTS)
    manifest = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "num_parameters": model.num_parameters(),
        "weights_sha256": digest,
        "config": model.config.model_dump(mode="json"),
    }
    write_json(out / MANIFEST, manifest)
    return out


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; every failure names the file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no {what}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes is too large for a {what}")
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not a JSON text ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())


def read_manifest(directory: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """The validated model config and the raw manifest of a checkpoint directory."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{path}: no manifest (is this a Faceptor checkpoint directory?)")
    manifest = read_json(path, "manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    digest = manifest.get("weights_sha256")
    if digest is not None and not _is_sha256(digest):
        raise CheckpointError(f"{path}: weights_sha256 must be 64 hexadecimal digits, got {digest!r}")
    try:
        config = ModelConfig.model_validate(manifest.get("config"))
    except ValidationError as exc:
        raise CheckpointError(f"{path}: invalid model config: {validation_message(exc)}") from None
    return config, manifest


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def read_header(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` from a safetensors file's header, without reading (or allocating) any tensor."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises several error types for corrupt files
        raise CheckpointError(f"{path}: cannot read safetensors weights: {exc}") from None


def check_shapes(
    path: str | os.PathLike,
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, tuple[int, ...]],
    manifest: str | os.PathLike | None = None,
) -> None:
    """The weights file holds exactly the tensors (and shapes) the manifest implies; else a
    :class:`CheckpointError` naming both files and the first differences. ``manifest``: where the expected shapes
    come from, a file or words ("the model" without)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k}: weights {found[k]} vs manifest {expected[k]}"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors: {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_some(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {'; '.join(shapes[:5])}")
    if problems:
        against = f" do not match {manifest}" if manifest else " do not match the model"
        raise CheckpointError(f"{path}: the weights{against}: " + " | ".join(problems))


def verify_digest(path: str | os.PathLike, expected: str | None, manifest: str | os.PathLike) -> str | None:
    """Compare a file's SHA-256 with the one recorded; ``None`` recorded means an old checkpoint (warned)."""
    if expected is None:
        warnings.warn(
            f"{manifest}: no weights_sha256 (written before checksums were recorded); {path} is loaded "
            "unverified. Save it again to record one.",
            ChecksumWarning,
            stacklevel=3,
        )
        return None
    actual = file_digest(path)
    if actual != expected:
        raise CheckpointError(
            f"{path}: SHA-256 {actual[:12]}... differs from {expected[:12]}... recorded in "
            f"{manifest}: the file is damaged or was replaced"
        )
    return actual


def read_weights(
    path: str | os.PathLike,
    expected: Mapping[str, tuple[int, ...]] | None = None,
    check_finite: bool = True,
    against: str | None = None,
) -> dict[str, torch.Tensor]:
    """Load a safetensors file (errors name it). With ``expected``, the header is checked against those
    shapes before any tensor is read (``against``: what they are, for the error); non-finite tensors are refused
    unless ``check_finite=False``."""
    path = Path(path)
    if expected is not None:
        check_shapes(path, expected, read_header(path), against)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several error types for corrupt files
        raise CheckpointError(f"{path}: cannot read safetensors weights: {exc}") from None
    if check_finite:
        bad = non_finite_keys(state)
        if bad:
            raise CheckpointError(f"{path}: NaN or infinite values in {_some(bad)}")
    return state


def shapes_of(keys_and_tensors: Iterable[tuple[str, torch.Tensor]]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in keys_and_tensors}
