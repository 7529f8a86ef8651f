"""Loading pretrained encoder weights: timm layout or OpenAI-CLIP / FaRL layout, never unpickling objects.

``.pth`` / ``.pt`` / ``.pth.tar`` files are read with ``torch.load(weights_only=True)``: only tensors,
containers and primitives. Training checkpoints sometimes also hold a few harmless non-tensor objects
(an ``argparse.Namespace``, numpy scalars); :func:`safe_torch_load` admits exactly the classes in
:data:`SAFE_GLOBALS` and refuses anything else, naming it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from .model.encoder import ViTEncoder, resize_pos_grid

#: Encoder keys that exist only for checkpoint parity (CLIP's ``ln_post`` and ``proj``): never used in forward,
#: so they are loaded when the encoder has them and the shapes fit, and ignored otherwise.
UNUSED_ENCODER_KEYS = ("ln_post.", "proj.")


def _numpy_safe_globals() -> dict[str, object]:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        return {}
    out: dict[str, object] = {"numpy.dtype": np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            out[f"{mod}.scalar"] = __import__(mod, fromlist=["scalar"]).scalar
        except (ImportError, AttributeError):
            continue
    for name in dir(getattr(np, "dtypes", None)):
        if name.endswith("DType"):
            out[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    return out


#: The only non-tensor classes a checkpoint may contain (module.qualname -> class). All are inert records.
SAFE_GLOBALS: dict[str, object] = {"argparse.Namespace": argparse.Namespace, **_numpy_safe_globals()}


def safe_torch_load(path: str | os.PathLike) -> object:
    """``torch.load(path, weights_only=True)``; on refusal, retry admitting only :data:`SAFE_GLOBALS`.

    Raises ``ValueError`` naming the file and the classes it would have had to unpickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return _load(path)
    except pickle.UnpicklingError as exc:
        first = exc
    except Exception as exc:  # corrupt file, not a torch file at all, ...
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({exc})") from exc
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        names = finder(str(path)) if finder is not None else None
    except Exception:  # a legacy (non-zip) file cannot be scanned
        names = None
    if not names:
        raise ValueError(f"{path}: not a tensors-only checkpoint; refusing to unpickle it ({first})") from first
    refused = sorted(n for n in names if n not in SAFE_GLOBALS)
    if refused:
        raise ValueError(
            f"{path}: refusing to unpickle {', '.join(refused)} (only tensors, containers, primitives and "
            f"{', '.join(sorted(SAFE_GLOBALS)[:2])}... are allowed)"
        )
    with torch.serialization.safe_globals([SAFE_GLOBALS[n] for n in names]):
        return _load(path)


def _load(path: Path) -> object:
    """``weights_only`` load, memory-mapped when the file allows it (optimizer state is then never read)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc) and "zip" not in str(exc):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def unwrap_state_dict(obj: object, path: str | os.PathLike = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The tensor state dict inside a loaded checkpoint (``state_dict`` / ``model`` / ``module`` wrappers)."""
    for _ in range(3):
        if isinstance(obj, dict):
            for key in ("state_dict", "model", "module"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path}: the checkpoint holds no tensors")
    return tensors


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only``); ``module.`` prefixes stripped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:
            raise ValueError(f"{path}: cannot read safetensors weights ({exc})") from exc
    else:
        state = unwrap_state_dict(safe_torch_load(path), path)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


_CLIP_SIMPLE = {
    "conv1.weight": "patch_embed.weight",
    "class_embedding": "cls_token",
    "positional_embedding": "pos_embed",
    "ln_pre.weight": "norm_pre.weight",
    "ln_pre.bias": "norm_pre.bias",
    "ln_post.weight": "ln_post.weight",
    "ln_post.bias": "ln_post.bias",
}
_CLIP_BLOCK = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "attn.in_proj_weight": "attn.qkv.weight",
    "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj": "attn.proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


#: Visual-tower keys FaRL may carry beyond CLIP's (its masked-image-modeling head, linear pooling): not encoder
#: weights, ignored on load (the reference loads FaRL with ``strict=False`` for the same reason).
CLIP_EXTRA_PREFIXES = ("mask_token", "lm_transformer.", "ln_lm.", "lm_head.", "conv_pool.")


def clip_key(key: str) -> str | None:
    """One OpenAI-CLIP visual-tower key (without its ``visual.`` prefix) -> :class:`ViTEncoder` key, or None."""
    if key in _CLIP_SIMPLE:
        return _CLIP_SIMPLE[key]
    if key == "proj":
        return "proj.weight"
    if m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", key):
        rest = m.group(2)
        for src, dst in _CLIP_BLOCK.items():
            if rest == src or rest.startswith(src + "."):
                return f"blocks.{m.group(1)}.{dst}{rest[len(src) :]}"
    return None


def clip_value(target: str, value: torch.Tensor) -> torch.Tensor:
    """Reshape a CLIP tensor to its :class:`ViTEncoder` shape (class / position rows batched, proj transposed)."""
    if target == "cls_token":
        return value.reshape(1, 1, -1)
    if target == "pos_embed":
        return value.reshape(1, *value.shape[-2:])
    if target == "proj.weight":
        return value.t().contiguous()
    return value


def clip_to_encoder_keys(state: dict[str, torch.Tensor], prefix: str = "visual.") -> dict[str, torch.Tensor]:
    """OpenAI-CLIP visual-tower keys (``visual.conv1.weight`` ...) -> :class:`ViTEncoder` keys.

    Keys outside ``prefix`` (the text tower) and FaRL's extra heads (:data:`CLIP_EXTRA_PREFIXES`) are ignored;
    any other unrecognised key under ``prefix`` is named in a warning.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if not key.startswith(prefix) or key[len(prefix) :].startswith(CLIP_EXTRA_PREFIXES):
            continue
        target = clip_key(key[len(prefix) :])
        if target is None:
            unknown.append(key)
            continue
        out[target] = clip_value(target, value)
    if unknown:
        warnings.warn(f"ignored unrecognised OpenAI-CLIP visual keys: {unknown[:10]}", stacklevel=3)
    return out


def timm_to_encoder_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm VisionTransformer keys -> :class:`ViTEncoder` keys (classifier heads and pooling norms dropped).

    A bias-free ``head`` (timm's CLIP projection) maps onto ``proj``; ``norm`` onto ``ln_post``.
    """
    out = {}
    for key, value in state.items():
        if key.startswith("patch_embed.proj."):
            out["patch_embed." + key[len("patch_embed.proj.") :]] = value
        elif key.startswith(("blocks.", "norm_pre.")) or key in ("cls_token", "pos_embed"):
            out[key] = value
        elif key.startswith("norm."):
            out["ln_post." + key[len("norm.") :]] = value
        elif key == "head.weight" and "head.bias" not in state:
            out["proj.weight"] = value
    return out


def encoder_state(state: dict[str, torch.Tensor], encoder: ViTEncoder, source: str = "<weights>") -> dict:
    """Map a timm or OpenAI-CLIP state dict onto ``encoder``'s keys, resizing the position table to its grid.

    Shape mismatches and keys the encoder lacks raise ``ValueError`` (naming ``source``); the unused CLIP
    head (``ln_post``, ``proj``) is dropped when the encoder has no room for it.
    """
    clip = any(k.startswith("visual.") for k in state)
    mapped = clip_to_encoder_keys(state) if clip else timm_to_encoder_keys(state)
    if not mapped:
        raise ValueError(f"{source}: no encoder weights found (expected OpenAI-CLIP 'visual.*' or timm ViT keys)")
    own = encoder.state_dict()
    for key in [k for k in mapped if k.startswith(UNUSED_ENCODER_KEYS)]:
        if key not in own or own[key].shape != mapped[key].shape:
            del mapped[key]
    if "pos_embed" in mapped and mapped["pos_embed"].shape != own["pos_embed"].shape:
        pos = mapped["pos_embed"]
        grid = int(round((own["pos_embed"].shape[1] - 1) ** 0.5))
        if pos.shape[-1] == own["pos_embed"].shape[-1]:
            mapped["pos_embed"] = torch.cat([pos[:, :1], resize_pos_grid(pos[:, 1:], grid)], dim=1)
    unknown = [k for k in mapped if k not in own]
    if unknown:
        raise ValueError(f"{source}: keys the encoder does not have: {unknown[:5]}")
    bad = [
        f"{k}: file {tuple(v.shape)} vs encoder {tuple(own[k].shape)}"
        for k, v in mapped.items()
        if v.shape != own[k].shape
    ]
    if bad:
        raise ValueError(f"{source}: shape mismatches: {'; '.join(bad[:5])}")
    return mapped


def load_encoder_weights(encoder: ViTEncoder, path: str | os.PathLike) -> list[str]:
    """Load pretrained weights into ``encoder``; the position table is resized to the encoder's grid
    (bicubic, ``align_corners=False``, class row kept).

    Returns the encoder keys the file did not provide (a warning names them when they are used in forward).
    """
    path = Path(path)
    mapped = encoder_state(read_state_dict(path), encoder, str(path))
    encoder.load_state_dict(mapped, strict=False)
    missing = [k for k in encoder.state_dict() if k not in mapped]
    used = [k for k in missing if not k.startswith(UNUSED_ENCODER_KEYS)]
    if used:
        warnings.warn(f"{path}: encoder keys left at their initial values: {used[:10]}", stacklevel=2)
    return missing
